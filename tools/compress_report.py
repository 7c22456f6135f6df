"""Measures INT8/FP16 compression of ANAN models on Cats&Dogs and Fire; writes docs/compression.md.

For each data set: convert the Keras model (FP32 ANAN + base), compress it to INT8 (calibrated
on ``--calibration-size`` images drawn with seed 0) and FP16, then on *every* image of the set:
the share of predictions equal to the FP32 ANAN model, accuracy and F1 of each model (labels =
sorted class-folder index; all images, training ones included, so only the FP32-vs-compressed
comparison is meaningful), ``verify`` against the literal loop on the compressed base for
``--verify-images`` of them, the ORT-format round trip, and CPU latency medians of FP32, INT8
and FP16 at batch 1 and 64, measured in the same run.

Example::

    python tools/compress_report.py --out out/compress_report          # rewrites the section
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx

REPO = Path(__file__).resolve().parents[1]
#: the shared data beside the checkout (../shared, or ../../shared for a worktree)
DATA = next(
    (d for d in (REPO.parent / "shared/data", REPO.parents[1] / "shared/data") if d.is_dir()),
    REPO.parent / "shared/data",
)
DOC = REPO / "docs" / "compression.md"
BEGIN, END = "<!-- compress_report:begin -->", "<!-- compress_report:end -->"
SETS = {  # name: (Keras model, data folder, ANAN parameters: the paper's best per set)
    "cats_dogs": ("models/catsdogs_cnn.keras", "cats_dogs", dict(k=4, mu=2, a=1.05, b=0.30)),
    "fire": ("models/fire_cnn.keras", "fire", dict(k=4, mu=2, a=1.50, b=0.50)),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=REPO / "out" / "compress_report")
    p.add_argument("--data", type=Path, default=DATA)
    p.add_argument("--calibration-size", type=int, default=100)
    p.add_argument("--verify-images", type=int, default=48)
    p.add_argument(
        "--repeats", type=int, default=15, help="latency runs at batch 64 (10x at batch 1)"
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sets", default=",".join(SETS))
    args = p.parse_args()
    results = [measure(name, args) for name in args.sets.split(",")]
    (args.out / "report.json").write_text(json.dumps(results, indent=1))
    write_doc(results, args)
    return 0


def measure(name: str, args: argparse.Namespace) -> dict:
    from anan_onnx.compress import compress_file
    from anan_onnx.convert.pipeline import convert_file
    from anan_onnx.params import AnanParams
    from anan_onnx.reference.compressed import verify_compressed_models
    from anan_onnx.runtime.image_files import load_images
    from anan_onnx.runtime.labels import predicted_labels
    from anan_onnx.runtime.session import Session

    keras, folder, params = SETS[name]
    out = args.out / name
    out.mkdir(parents=True, exist_ok=True)
    fp32 = out / f"{name}.anan.onnx"
    if not fp32.is_file():
        convert_file(REPO / keras, fp32, AnanParams(**params))
    data = args.data / folder
    files = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    classes = sorted({f.parent.name for f in files})
    labels = np.array([classes.index(f.parent.name) for f in files])
    cal = [data / "train"] if (data / "train").is_dir() else [data]
    models = {"fp32": fp32}
    row: dict = {"set": name, "images": len(files), "params": params, "classes": classes}
    for mode in ("int8", "fp16"):
        start = time.perf_counter()
        res = compress_file(
            fp32, mode, calibration=cal if mode == "int8" else (),
            calibration_size=args.calibration_size,
        )  # fmt: skip
        row[f"{mode}_seconds"] = round(time.perf_counter() - start, 1)
        models[mode] = res.output
        row[f"{mode}_base"] = res.base_output
    res = compress_file(
        fp32, "int8", output=out / f"{name}.int8all.anan.onnx", calibration=cal,
        calibration_size=args.calibration_size, include_astrocytes=True,
    )  # fmt: skip
    models["int8_all"], row["int8_all_base"] = res.output, res.base_output
    sessions = {m: Session(path, threads=args.threads) for m, path in models.items()}
    x, _, _ = load_images(files, sessions["fp32"].input_spec(), progress=False)
    preds = {m: np.concatenate([s.predict(x[i : i + 64]) for i in range(0, len(x), 64)])
             for m, s in sessions.items()}  # fmt: skip
    ref = predicted_labels(preds["fp32"])
    for m, path in models.items():
        lab = predicted_labels(preds[m])
        row[m] = {
            "bytes": path.stat().st_size,
            "ratio": path.stat().st_size / fp32.stat().st_size,
            "agree_fp32": float((lab == ref).mean()),
            "agree_count": int((lab == ref).sum()),
            "accuracy": float((lab == labels).mean()),
            "f1": f1(lab, labels),
            "max_abs_diff_fp32": float(np.abs(preds[m] - preds["fp32"]).max()),
        }
        if m != "fp32":
            pick = np.random.default_rng(0).choice(len(x), args.verify_images, replace=False)
            rep = verify_compressed_models(
                onnx.load(str(path)), onnx.load(str(row[f"{m}_base"])), x[np.sort(pick)],
                fp32=fp32,
            )
            row[m]["verify"] = rep.summary()
            row[m]["verify_passed"] = rep.passed
            row[m]["ort_format"] = ort_round_trip(path, x[:8], preds[m][:8])
    row["latency_ms"] = latency({m: models[m] for m in ("fp32", "int8", "fp16")}, x, args)
    for m in ("int8_base", "fp16_base", "int8_all_base"):
        row[m] = str(row[m])
    return row


def f1(pred: np.ndarray, truth: np.ndarray) -> float:
    tp = int(((pred == 1) & (truth == 1)).sum())
    fp = int(((pred == 1) & (truth == 0)).sum())
    fn = int(((pred == 0) & (truth == 1)).sum())
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def ort_round_trip(path: Path, x: np.ndarray, expected: np.ndarray) -> str:
    """Converts to the ORT format and checks the outputs on a few images."""
    import onnxruntime as ort

    cmd = [sys.executable, "-m", "onnxruntime.tools.convert_onnx_models_to_ort", str(path),
           "--output_dir", str(path.parent / "ort")]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True)
    target = path.parent / "ort" / (path.name[: -len(".onnx")] + ".ort")
    if proc.returncode or not target.is_file():
        return f"conversion failed: {proc.stderr.strip().splitlines()[-1:]}"
    sess = ort.InferenceSession(str(target), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    return f"loads and runs; max abs diff vs .onnx {float(np.abs(got - expected).max()):.2g}"


def latency(models: dict, x: np.ndarray, args: argparse.Namespace) -> dict:
    """Median ms per batch, models interleaved so that machine load hits all alike."""
    from anan_onnx.runtime.session import Session

    sessions = {m: Session(p, threads=args.threads) for m, p in models.items()}
    result = {}
    for batch in (1, 64):
        xb = x[:batch]
        times: dict[str, list[float]] = {m: [] for m in sessions}
        for s in sessions.values():
            s.predict(xb)  # warm-up
        for _ in range(args.repeats * (10 if batch == 1 else 1)):  # batch 1: noisier
            for m, s in sessions.items():
                t = time.perf_counter()
                s.predict(xb)
                times[m].append((time.perf_counter() - t) * 1e3)
        result[str(batch)] = {m: round(statistics.median(v), 2) for m, v in times.items()}
    return result


def write_doc(results: list[dict], args: argparse.Namespace) -> None:
    lines = [
        BEGIN,
        f"Measured by `python tools/compress_report.py` ({time.strftime('%Y-%m-%d')}, "
        f"{platform.machine()}, {args.threads} onnxruntime threads on a shared 2-core machine; "
        f"calibration {args.calibration_size} images, seed 0).",
        "",
        "| set | model | size | × FP32 | = FP32 prediction | accuracy | F1 | "
        "verify vs compressed base | ORT format |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for m in ("fp32", "int8", "fp16", "int8_all"):
            d = r[m]
            label = "INT8 --include-astrocytes" if m == "int8_all" else m.upper()
            lines.append(
                f"| {r['set']} ({r['images']} images) | {label} | {d['bytes'] / 1e6:.2f} MB "
                f"| {d['ratio']:.3f} | {d['agree_count']}/{r['images']} "
                f"({d['agree_fp32']:.1%}) | {d['accuracy']:.3f} | {d['f1']:.3f} | "
                f"{d.get('verify', '—')} | {d.get('ort_format', '—')} |"
            )
    lines += [
        "",
        "CPU latency, median ms per call (same run, models interleaved; "
        f"{args.repeats} calls at batch 64, {10 * args.repeats} at batch 1):",
        "",
        "| set | batch | FP32 | INT8 | FP16 | INT8 / FP32 |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        for batch, t in r["latency_ms"].items():
            lines.append(f"| {r['set']} | {batch} | {t['fp32']} | {t['int8']} | {t['fp16']} | "
                         f"{t['int8'] / t['fp32']:.2f} |")  # fmt: skip
    lines.append(END)
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    DOC.write_text(head + "\n".join(lines) + tail)


if __name__ == "__main__":
    sys.exit(main())
