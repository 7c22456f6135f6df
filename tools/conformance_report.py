"""Writes docs/deployment.md from what the conformance matrix actually saw.

Runs tests/conformance/test_matrix.py with ``ANAN_CONFORMANCE_REPORT`` set, so that every
figure of the matrix (max abs diff vs the literal reference, "differs from base") is the
one the tests just produced; then measures, itself, the file sizes (ONNX and ORT format)
and the batch-1 latency of onnxruntime-web's WASM backend beside Python onnxruntime on the
CPU, and takes the screenshot of the web example (docs/figures/web_example.png)::

    .venv/bin/python tools/conformance_report.py                # all of it (a few minutes)
    .venv/bin/python tools/conformance_report.py --keep DIR     # ... keeping the cells in DIR
    .venv/bin/python tools/conformance_report.py --from DIR     # render cells written earlier

Needs what the matrix needs: node/npm, cmake and a C++ compiler, Chromium and Playwright.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # anan_onnx, conformance_cases

from anan_onnx.conformance import RUNTIMES  # noqa: E402
from anan_onnx.conformance.ort_format import to_ort  # noqa: E402
from anan_onnx.conformance.web import Browser  # noqa: E402
from anan_onnx.metadata import write_metadata  # noqa: E402
from anan_onnx.model_io import write_bytes_atomic  # noqa: E402
from anan_onnx.sidecar import write_sidecar  # noqa: E402
from benchmarks.ort_session import open_session  # noqa: E402

from conformance_cases import (  # noqa: E402
    BATCH,
    GRAPH_VARIANTS,
    MODELS,
    TOLERANCE,
    base_model,
    make_case,
)

DOC = ROOT / "docs" / "deployment.md"
FIGURE = ROOT / "docs" / "figures" / "web_example.png"
# hand-written sections between the generated ones and the sidecar: the minimal-build how-to
# and what each `anan-onnx export` target changes (edit that file, not docs/deployment.md)
EXPORT_SECTIONS = Path(__file__).with_name("deployment_export.md")
TEST = "tests/conformance/test_matrix.py"
TIMING = "matrix_seconds.txt"  # beside the cells: the matrix run's wall time
LATENCY_RUNS = 15
LATENCY_VARIANTS = ("default", "unroll-steps")
SHARED_DATA = Path(os.environ.get("ANAN_SHARED_DATA", ROOT.parent / "shared" / "data"))
SCREENSHOT_IMAGE = SHARED_DATA / "cats_dogs" / "test" / "cats" / "cat_109.jpg"


# --- the matrix, from the tests --------------------------------------------------------------


def run_matrix(folder: Path) -> tuple[int, float]:
    """Runs the matrix test writing one JSON file per cell; returns (exit code, seconds)."""
    env = dict(os.environ, ANAN_CONFORMANCE_REPORT=str(folder))
    # every runtime's row: most are in the integration tier (conftest.py), which a plain
    # pytest leaves out and which would leave their cells "not run"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "--tier",
        "all",
        TEST,
    ]
    start = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
    seconds = time.perf_counter() - start
    (folder / TIMING).write_text(f"{seconds:.1f}\n")  # for a later --from
    return code, seconds


def load_cells(folder: Path) -> dict[tuple[str, str, str], dict]:
    cells = {}
    for path in sorted(folder.glob("*.json")):
        row = json.loads(path.read_text())
        cells[row["runtime"], row["model"], row["variant"]] = row
    if not cells:
        raise SystemExit(f"conformance_report: no cells in {folder}: the matrix did not run")
    return cells


def _cell(row: dict | None) -> str:
    if row is None:
        return "not run"
    if "error" in row:
        message = row["error"].split(".onnx: ", 1)[-1]  # without "... failed on MODEL.onnx: "
        return f"**FAIL** (error: {message[:90]})"
    diff = row["max_abs_diff"]
    shown = "inf" if diff is None else f"{diff:.1e}"
    differs = f"{row['differs']}/{row['modulated']}"
    if row["passed"]:
        return f"{shown}, {differs}"
    return f"**FAIL** {shown}, {differs} ({_failure_kind(row)})"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _failure_kind(row: dict) -> str:
    if "error" in row:
        return "error"
    return "base output" if row["differs"] < row["modulated"] else "too far"


def failure_summary(cells: dict) -> list[str]:
    """One line per runtime with failing cells: which variants, and how they fail."""
    lines = []
    for runtime in RUNTIMES:
        bad = {
            (m, v): row
            for (r, m, v), row in cells.items()
            if r == runtime and not row.get("passed", False)
        }
        if not bad:
            continue
        per_variant = [
            f"`{v}` ({sum(key[1] == v for key in bad)} models)"
            for v in GRAPH_VARIANTS
            if any(key[1] == v for key in bad)
        ]
        kinds = [_failure_kind(row) for row in bad.values()]
        how = {
            "base output": "return the base model's output (the modulation is dropped)",
            "error": "raise an error",
            "too far": "differ from the reference by more than the tolerance",
        }
        counted = [f"{kinds.count(k)} {text}" for k, text in how.items() if k in kinds]
        lines.append(
            f"- **{runtime}** fails {len(bad)} cells: {', '.join(per_variant)}; "
            + "; ".join(counted)
            + "."
        )
    return lines


def matrix_section(cells: dict, seconds: float | None) -> list[str]:
    failed = sorted(key for key, row in cells.items() if not row.get("passed"))
    out = [
        "## Conformance matrix",
        "",
        f"Each cell: the largest absolute difference from the spec's literal per-image loop "
        f"over a batch of {BATCH} images (must be <= {TOLERANCE:g}), then on how many of the "
        "images the astrocytes changed (reference vs base model) the runtime's output also "
        "differs from the base model's (must be all of them: a runtime that silently drops "
        "the modulation returns the base CNN's output and fails here). Generated by "
        f"`tools/conformance_report.py` from `{TEST}`.",
        "",
        f"Cells: {len(cells)}, failing: {len(failed)}"
        + (
            f"; the matrix took {seconds:.0f} s on this machine (shared, 2 cores)."
            if seconds
            else "."
        ),
        "",
        *failure_summary(cells),
        "",
    ]
    for model, what in MODELS.items():
        out += [f"### {model} ({what})", ""]
        rows = [
            [f"`{variant}`", *[_cell(cells.get((r, model, variant))) for r in RUNTIMES]]
            for variant in GRAPH_VARIANTS
        ]
        out += _table(["variant", *RUNTIMES], rows) + [""]
    return out


# --- sizes and latency, measured here --------------------------------------------------------


def _ms(times: list[float]) -> str:
    """'min / median' of the samples, in ms."""
    shown = [f"{t:.3f}" if t < 1 else f"{t:.1f}" for t in (min(times), statistics.median(times))]
    return " / ".join(shown)


def python_latency(model: Path, x: np.ndarray, runs: int = LATENCY_RUNS) -> list[float]:
    """Milliseconds per run, one intra-op thread (as onnxruntime-web's WASM here), warm;
    each of the ``runs`` samples averages as many runs as take about 20 ms (like the page)."""
    session = open_session(model, threads=1, quiet=True)
    feeds = {session.get_inputs()[0].name: x}
    session.run(None, feeds)
    start = time.perf_counter()
    session.run(None, feeds)
    once = max(time.perf_counter() - start, 1e-4)
    inner = min(200, max(1, int(np.ceil(0.02 / once))))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(inner):
            session.run(None, feeds)
        times.append(1000 * (time.perf_counter() - start) / inner)
    return times


def _latency_row(model: str, what: str, path: Path, x: np.ndarray, browser: Browser) -> list[str]:
    cpu = python_latency(path, x)
    wasm = browser.latency(path, x, "wasm", LATENCY_RUNS)
    ratio = min(wasm) / min(cpu)
    return [model, what, _ms(cpu), _ms(wasm), f"{ratio:.0f}x"]


def measure(folder: Path, browser: Browser) -> tuple[list[list[str]], list[list[str]]]:
    """(size rows, latency rows) for every model: ONNX and ORT sizes per graph variant,
    and batch-1 latency of Python CPU vs WASM for the LATENCY_VARIANTS."""
    sizes, latency = [], []
    for model in MODELS:
        base = base_model(model)
        for variant in GRAPH_VARIANTS:
            case = make_case(model, variant, folder / model, base)
            ort_file, _ = to_ort(case.path, folder / model / "ort")
            kib = [case.base_path.stat().st_size, case.path.stat().st_size, ort_file.stat().st_size]
            nodes = len(onnx.load(case.path, load_external_data=False).graph.node)
            sizes.append([model, f"`{variant}`", *[f"{b / 1024:.1f}" for b in kib], str(nodes)])
            if variant in LATENCY_VARIANTS:
                x = np.ascontiguousarray(case.batch[:1])
                if variant == LATENCY_VARIANTS[0]:  # the base CNN once, for the ANAN overhead
                    latency.append(_latency_row(model, "base CNN", case.base_path, x, browser))
                latency.append(_latency_row(model, f"`{variant}`", case.path, x, browser))
    return sizes, latency


def screenshot(folder: Path, browser: Browser) -> str:
    """The web example on the bundled model and a cat photo (or a generated image)."""
    from PIL import Image

    case = make_case("catsdogs", "default", folder / "shot", base_model("catsdogs"))
    model = onnx.load(case.path)
    write_metadata(model, {"classes": json.dumps(["cats", "dogs"])})
    path = folder / "shot" / "catsdogs.anan.onnx"
    onnx.save(model, path)
    write_sidecar(path)
    image = SCREENSHOT_IMAGE
    if not image.is_file():
        rng = np.random.default_rng(0)
        image = folder / "shot" / "noise.png"
        Image.fromarray(rng.integers(0, 256, (160, 160, 3), dtype=np.uint8)).save(image)
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=FIGURE.parent, suffix=".png", delete=False) as tmp:
        browser.classify_image(path, image, "wasm", screenshot=tmp.name)
    os.replace(tmp.name, FIGURE)
    return image.name


# --- the document ----------------------------------------------------------------------------


def versions(browser: Browser | None) -> str:
    found = [f"Python {platform.python_version()}"]
    for name in ("onnxruntime", "onnx", "numpy", "playwright"):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    for example, package in (("node", "onnxruntime-node"), ("web", "onnxruntime-web")):
        pinned = json.loads((ROOT / "examples" / example / "package.json").read_text())
        found.append(f"{package} {pinned['dependencies'][package]}")
    if browser is not None:
        found.append(f"Chromium {browser.version} (WebGPU: SwiftShader)")
    return ", ".join(found)


def render(
    cells: dict, seconds: float | None, sizes: list, latency: list, browser: Browser | None
) -> str:
    out = [HEAD, "", f"Versions: {versions(browser)}.", ""]
    out += matrix_section(cells, seconds)
    out += [SIZES_INTRO, ""]
    out += _table(["model", "variant", "base ONNX KiB", "ANAN ONNX KiB", "ANAN .ort KiB",
                   "ANAN nodes"], sizes)  # fmt: skip
    out += ["", LATENCY_INTRO.format(runs=LATENCY_RUNS), ""]
    header = ["model", "graph", "Python CPU ms (min / median)", "WASM ms (min / median)",
              "WASM / CPU (min)"]  # fmt: skip
    out += _table(header, latency)
    # the minimal-build how-to and the export targets: hand-written (anan-onnx export)
    out += ["", EXPORT_SECTIONS.read_text(encoding="utf-8").rstrip("\n"), "", TAIL]
    return "\n".join(out) + "\n"


HEAD = """\
# Deployment: the same ANAN graph on every runtime

An ANAN model is a plain ONNX graph, so every onnxruntime build runs it. This page shows that
it runs *exactly* (the spec's literal per-image loop, within 1e-5) on each runtime the
project claims, and what a deployment costs in file size and latency. Everything below the
versions line, except the hand-written sections at the end, is generated by
`tools/conformance_report.py` (do not edit by hand; run the tool).

The runtimes (`anan_onnx.conformance`, one module each):

- **python-cpu**: onnxruntime from Python, CPU execution provider.
- **ort-format**: the model converted to the ORT format (`.ort`, what minimal and mobile
  builds load) with `python -m onnxruntime.tools.convert_onnx_models_to_ort
  --optimization_style Fixed`, run by onnxruntime.
- **node**: onnxruntime-node through `examples/node/anan_infer.mjs`.
- **cpp**: the onnxruntime C++ API through `examples/cpp` (`anan_infer`).
- **web-wasm** / **web-webgpu**: onnxruntime-web in headless Chromium (Playwright), the
  package's default build (`import 'onnxruntime-web'`, `dist/ort.min.mjs`): WASM backend
  (one thread) and WebGPU backend, which in this build is JSEP (WebGPU kernels written in
  JavaScript), on SwiftShader (Chromium's CPU Vulkan: the WebGPU code path without a GPU).
- **web-webgpu-ep**: the `onnxruntime-web/webgpu` build (`dist/ort.webgpu.min.mjs`), whose
  WebGPU backend is the native (C++) WebGPU execution provider, also on SwiftShader.

  All three run through `examples/web/anan_web.js`, the module the web example uses.

Graph variants: `default` (`anan-onnx convert`), `tunable` (`--tunable`: the parameters are
graph inputs with defaults), `batch-3` (`--batch 3`), `unroll-steps` (`--no-fold-steps`: the
k steps unrolled rather than folded into one pick of the final gains), `signal-post`
(`--signal post`), `reduce-max` (`--reduce max`)."""

SIZES_INTRO = """\
## File sizes

The ANAN graph adds the per-image monitoring steps and gain tables to the base CNN; the
`.ort` file is the same graph in the ORT format, optimised at conversion (fixed style)."""

LATENCY_INTRO = """\
## Latency: WASM beside Python CPU

One image (batch 1), {runs} samples after warm-up runs in the same session, each sample
the mean of as many runs as take about 20 ms (the page's clock is coarse); both on one CPU
thread (onnxruntime-web's WASM runs one thread here; Python onnxruntime with
`intra_op_num_threads=1`). Measured on a shared 2-core machine while other jobs ran (load
average above 10): the median carries that noise, the minimum is the better estimate of the
unloaded cost, and the ratio is of the minima. The base CNN's row shows what the ANAN graph adds on
each runtime. WebGPU is not timed: SwiftShader emulates the GPU on
the CPU, so its times say nothing about a real GPU."""

TAIL = """\
## The sidecar (`MODEL.anan.json`)

onnxruntime-web and onnxruntime-node do not expose a model's `metadata_props`, so the
preprocessing and ANAN parameters that `anan-onnx` records there are also written to a JSON
file beside the model (format `anan-sidecar/1`: every `anan.*` key as stored, the typed
parameters and preprocessing, class names from `anan.classes` when present, the inputs and
outputs with their shapes). `anan-onnx export MODEL --target web` writes it beside the
exported model (as do the other targets); for any other model
`anan_onnx.sidecar.write_sidecar(model_path)` does. `examples/web` reads it; see its README.

## Preprocessing on each runtime

What turns an image file into the model input is recorded with the model (metadata
`anan.*`, and the sidecar's `"preprocess"` object): `layout`, `height`, `width`,
`channels`; `scale` and `offset`, each one number or one per channel in the order of the
model's input channels (metadata: `0.0171,0.0175,0.0174`; sidecar: a JSON list), so that
`x[c] = pixel[c] * scale[c] + offset[c]` with pixels 0-255 in float32; `channel_order`
(`RGB`, the default, or `BGR`: the decoded image is reordered before scaling; ignored for
one channel); `resize` (`bilinear`, Pillow's filter, the default) and `aspect` (`stretch`,
the default). Models recorded before these keys existed (one scale and offset, no
order) keep working unchanged.

Who reads image files and does this:

- **Python** (`predict`, `verify --inputs`, tune/evaluate): any Pillow format; the
  reference (`anan_onnx.runtime.image_files`).
- **The web page** (`examples/web`): what the browser decodes; per-channel scale and
  offset, channel order, bilinear resize as Pillow; another `resize` or `aspect` is
  refused. The steps after decoding are `examples/web/preprocess.js` (no browser API),
  which Node imports too.
- **C++** (`examples/cpp`): PPM/PGM at the model's size (no resize); per-channel scale and
  offset, channel order; another `resize` or `aspect` is refused, and so is a model without
  `anan.scale` unless `--scale` is given.
- **Node** (`examples/node`): PNG and JPEG files (pure-JavaScript decoders `pngjs` 7.0.0 and
  `jpeg-js` 0.4.4), preprocessed from the model's sidecar `MODEL.anan.json` (onnxruntime-node
  cannot read metadata; `anan-onnx export MODEL --target web` writes it) by the web page's
  own `examples/web/preprocess.js`: the same resize, per-channel scale and offset, channel
  order, layout, and the same refusals. Images without a sidecar (or one whose `"preprocess"`
  is null) are refused, naming that command; a `.npy` batch (the tensor itself) needs none.
  PNG (8-bit; 16-bit keeps each sample's high byte, as Python) gives Python's tensor
  exactly. **JPEG may differ**: jpeg-js is not libjpeg-turbo (Pillow's decoder): its IDCT and
  colour conversion round differently and it upsamples 4:2:0 chroma by replication, not
  libjpeg's smoothing. Measured on 60 cats_dogs test photos (224×224, 4:2:0): 45 % of the
  decoded samples equal Pillow's, 41 % differ by 1, the worst by 77 levels (at sharp colour
  edges); after the bilinear resize to 128×128, 54 % equal, 42 % differ by 1, 0.9 % by more
  than 2, the worst by 27. A 4:4:4 JPEG differs by at most 3 levels. On the per-channel test
  model the outputs from JPEG files differ from Python's by at most 3e-4
  (`tests/examples/test_node_images.py`). Where JPEG pixels must match exactly, decode
  with Pillow and pass a `.npy`, or convert the images to PNG first.

Checked by `tests/conformance/test_per_channel_images.py`: a generated ANAN model whose
preprocessing is ImageNet `(pixel/255 - mean)/std` per channel on BGR input, given image
files, on the C++ program (PPM), the Node program (PNG) and the web page (PNG; WASM,
WebGPU and the `/webgpu` build), equals onnxruntime Python on the tensor numpy computes
from the definition above (within 1e-5) and differs from the base model's output.

Decisions shared by every runtime that decodes images:

- **EXIF orientation is ignored**: the stored pixels are used, unrotated, as Pillow and
  Keras' `load_img` give them (a model trained with Keras saw them so). The web page
  enforces this by resetting the Orientation tag in a copy of the file's bytes, because
  Chromium rotates JPEG and PNG images in `createImageBitmap` even when asked not to.
  Node's decoders (pngjs, jpeg-js) never rotate.
  Rotate photos yourself (e.g. `PIL.ImageOps.exif_transpose`) if your model expects them
  upright.
- **Image size**: more than 89,478,485 pixels (Pillow's decompression-bomb threshold) is
  refused before decoding (Python, web page, Node: from the PNG/JPEG header); the C++
  program bounds PPM/PGM sides at 32768.
- **No non-finite result**: an output that is NaN or infinite is an error (one line,
  exit status != 0; on the page an error message), never printed or shown as a prediction
  (Python, web page, Node, C++).
- **Regular files only, bounded sizes**: a FIFO, device or folder is refused without
  blocking (Python, Node, C++); Node reads at most 2 GiB per file.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="source", type=Path, help="cell JSON files written earlier")
    parser.add_argument("--keep", type=Path, help="write the cell JSON files here (for --from)")
    parser.add_argument("-o", "--output", type=Path, default=DOC, help="default docs/deployment.md")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="anan_conformance_") as scratch:
        folder = args.source or args.keep or Path(scratch) / "cells"
        seconds = None
        if args.source is None:
            code, seconds = run_matrix(folder)
            if code != 0:
                print(
                    "conformance_report: some cells failed; the report shows them", file=sys.stderr
                )
        cells = load_cells(folder)
        if seconds is None and (folder / TIMING).is_file():
            seconds = float((folder / TIMING).read_text())
        with Browser() as browser:
            sizes, latency = measure(Path(scratch) / "models", browser)
            image = screenshot(Path(scratch), browser)
            text = render(cells, seconds, sizes, latency, browser)
    write_bytes_atomic(text.encode("utf-8"), args.output)
    print(f"wrote {args.output} and {FIGURE} (image {image})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
