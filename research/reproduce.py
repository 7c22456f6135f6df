"""Reproduce the ANAN paper's protocol on Cats&Dogs and Fire, and write docs/reproduction.md.

Steps, per data set:

1. train the base CNN family with ``research/train_base_cnn.py`` (stratified k-fold CV on the
   training images; the paper's architecture at a reduced input size, see ``--size``);
2. ``anan_onnx.evaluate`` the fold models: per fold, tune ANAN (paper grid, 240
   configurations, F1) on that fold's held-out validation images under both update rules,
   tune the control's threshold on the same images, score base / control / ANAN on the
   test images, and run paired Wilcoxon tests over the folds;
3. write ``docs/reproduction.md`` (tables next to the paper's Tables 2 and 3) and the figures
   ``docs/figures/*.png``.

Usage (from the repository root)::

    .venv/bin/python research/reproduce.py                    # train + evaluate + report
    .venv/bin/python research/reproduce.py --skip-training    # reuse out/reproduce/*/models
    .venv/bin/python research/reproduce.py --report-only      # rewrite the docs from the JSONs

Everything lands in ``--out`` (default ``out/reproduce``); only the report and the figures
are written into ``docs/``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from anan_onnx.evaluation.metric_names import DISPLAY_NAMES

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO / ".." / "shared" / "data"
DATASETS = {"cats_dogs": "Cats&Dogs", "fire": "Fire"}
RULES = ("multiplicative", "additive")

#: The paper's Table 2 (best k, μ, a, b) and Table 3 (test metrics; stars: ** p<0.01, * p<0.05).
PAPER_TABLE2 = {"cats_dogs": (4, 2, 1.05, 0.30), "fire": (4, 2, 1.50, 0.50)}
PAPER_TABLE3 = {
    "cats_dogs": {
        "loss": ("16.127", "1.354 **"),
        "accuracy": ("0.662", "0.651"),
        "f1": ("0.613", "0.668"),
    },
    "fire": {
        "loss": ("0.066 **", "0.168"),
        "accuracy": ("0.981", "0.987 *"),
        "f1": ("0.959", "0.973 *"),
    },
}
PAPER_TABLE1 = {
    "cats_dogs": "697 images, 50.07 % / 49.93 %",
    "fire": "999 images, 75.58 % / 24.42 %",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data root")
    p.add_argument("--out", type=Path, default=REPO / "out" / "reproduce")
    p.add_argument("--docs", type=Path, default=REPO / "docs")
    p.add_argument("--datasets", default="cats_dogs,fire", help="comma list")
    p.add_argument("--folds", type=int, default=10, help="k of k-fold CV (paper: 10)")
    p.add_argument("--epochs", type=int, default=25, help="max epochs (paper: 100)")
    p.add_argument("--size", type=int, default=64, help="input size (paper: 128 / 224)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--skip-training", action="store_true", help="reuse trained fold models")
    p.add_argument("--report-only", action="store_true", help="only rewrite the report")
    p.add_argument(
        "--bench",
        type=Path,
        action="append",
        help="benchmarks/bench_tune.py --json results to quote (default: out/bench_tune_*.json)",
    )
    return p.parse_args(argv)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def train(dataset: str, args: argparse.Namespace) -> float:
    """Trains the fold models of one data set; returns the seconds it took."""
    out = args.out / dataset / "models"
    command = [
        sys.executable,
        str(REPO / "research" / "train_base_cnn.py"),
        "--data",
        str(args.data),
        "--dataset",
        dataset,
        "--size",
        str(args.size),
        "--folds",
        str(args.folds),
        "--epochs",
        str(args.epochs),
        "--seed",
        str(args.seed),
        "--out",
        str(out),
        "--verbose",
        "0",
    ]
    log("training: " + " ".join(command[1:]))
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO)
    return time.perf_counter() - start


def evaluate(dataset: str, args: argparse.Namespace) -> dict[str, Any]:
    """Tunes and evaluates the fold models; writes evaluation.json / .md beside them."""
    from anan_onnx.evaluation.evaluate import evaluate as run_evaluation
    from anan_onnx.evaluation.grid import Grid
    from anan_onnx.options import RunOptions

    folder = args.out / dataset
    start = time.perf_counter()
    evaluation = run_evaluation(
        folder / "models",
        args.data / dataset,
        grid=Grid(rules=RULES),
        metric="f1",
        run=RunOptions(progress=False),
        log=log,
    )
    seconds = time.perf_counter() - start
    result = evaluation.to_json()
    result["seconds"] = round(seconds, 1)
    (folder / "evaluation.json").write_text(json.dumps(result, indent=1))
    (folder / "evaluation.md").write_text(evaluation.markdown(title=DATASETS[dataset]))
    log(f"{dataset}: evaluated {len(evaluation.folds)} folds in {seconds:.0f} s")
    return result


# --- the report --------------------------------------------------------------------------


# The package's report names, but the paper's tables say which loss: binary cross-entropy.
NAMES = {**DISPLAY_NAMES, "loss": "Loss (BCE)"}


def fmt(value: float | None, digits: int = 3) -> str:
    return (
        "nan"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (f"{value:.{digits}f}")
    )


def total(meta: dict[str, Any], key: str) -> str:
    """'700 s Cats&Dogs + 647 s Fire = 22.5 min' from meta.json timings."""
    values = meta.get(key) or {}
    if not values:
        return "unknown"
    parts = " + ".join(f"{v:.0f} s {DATASETS.get(d, d)}" for d, v in values.items())
    return f"{parts} = {sum(values.values()) / 60:.1f} min"


def tests_by(result: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(t["model"], t["reference"], t["metric"]): t for t in result["tests"]}


def mean(result: dict[str, Any], model: str, metric: str) -> float:
    value = result["summary"][model][metric]["mean"]
    return math.nan if value is None else value


def std(result: dict[str, Any], model: str, metric: str) -> float:
    """Standard deviation over folds (the figure's error bars)."""
    value = result["summary"][model][metric].get("std")
    return math.nan if value is None else value


def table3(dataset: str, result: dict[str, Any]) -> str:
    """Our test scores next to the paper's Table 3, stars on the better of ANAN vs CNN."""
    tests = tests_by(result)
    lines = [
        "| metric | paper CNN | paper ANAN | CNN | control | ANAN mult. | ANAN add. |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for metric, name in NAMES.items():
        paper = PAPER_TABLE3[dataset].get(metric, ("–", "–"))
        cells = {m: fmt(mean(result, m, metric)) for m in ("base", "control", *RULES)}
        stars_on_base = []
        for rule in RULES:
            t = tests.get((rule, "base", metric))
            if not t or not t["stars"] or metric == "positive_rate":
                continue
            if t["better"] == rule:
                cells[rule] += f" {t['stars']}"
            else:
                stars_on_base.append(f"{t['stars']}{rule[0]}")
        if stars_on_base:
            cells["base"] += " " + " ".join(stars_on_base)
        lines.append(
            f"| {name} | {paper[0]} | {paper[1]} | {cells['base']} | {cells['control']} | "
            f"{cells['multiplicative']} | {cells['additive']} |"
        )
    return "\n".join(lines)


def pvalue_table(result: dict[str, Any]) -> str:
    tests = tests_by(result)
    lines = [
        "| metric | mult. vs CNN | add. vs CNN | mult. vs control | add. vs control | "
        "control vs CNN |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    pairs = [
        ("multiplicative", "base"),
        ("additive", "base"),
        ("multiplicative", "control"),
        ("additive", "control"),
        ("control", "base"),
    ]
    for metric, name in NAMES.items():
        cells = []
        for model, ref in pairs:
            t = tests.get((model, ref, metric))
            if t is None:
                cells.append("–")
                continue
            stars = f" {t['stars']}" if t["stars"] else ""
            cells.append(f"{t['mean_difference']:+.3f} (p={t['p_value']:.3f}{stars})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def params_table(dataset: str, result: dict[str, Any]) -> str:
    paper = PAPER_TABLE2[dataset]
    lines = [
        "| fold | mult. k, μ, a, b | F1 val mult. (CNN) | add. k, μ, a, b | F1 val add. (CNN) "
        "| control threshold |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for fold in result["folds"]:
        cells = [fold["name"]]
        for rule in RULES:
            p = fold["params"][rule]
            tuning = fold["tuning"][rule]
            cells.append(f"{p['k']}, {p['mu']}, {p['a']:g}, {p['b']:g}")
            cells.append(f"{fmt(tuning['value'])} ({fmt(tuning['base_value'])})")
        cells.append(fmt(fold["control"].get("threshold")))
        lines.append("| " + " | ".join(cells) + " |")
    lines.append(
        f"| **paper (Table 2)** | {paper[0]}, {paper[1]}, {paper[2]:g}, {paper[3]:g} | | | | |"
    )
    return "\n".join(lines)


def mode_params(result: dict[str, Any], rule: str) -> str:
    from collections import Counter

    counts = Counter(
        (p["k"], p["mu"], p["a"], p["b"]) for p in (f["params"][rule] for f in result["folds"])
    )
    (k, mu, a, b), n = counts.most_common(1)[0]
    return f"({k}, {mu}, {a:g}, {b:g}) in {n}/{len(result['folds'])} folds"


def figures(results: dict[str, dict[str, Any]], docs: Path) -> list[str]:
    """Figure-5-like bars per data set and rule (F1, accuracy; CNN / ANAN / control)."""
    from anan_onnx.evaluation.report import bar_figure

    (docs / "figures").mkdir(parents=True, exist_ok=True)
    data: dict[str, dict[str, tuple]] = {}
    errors: dict[str, dict[str, tuple]] = {}
    for dataset, result in results.items():
        tests = tests_by(result)
        for rule in RULES:
            group = f"{DATASETS[dataset]}\n{'mult.' if rule == 'multiplicative' else 'add.'}"
            data[group], errors[group] = {}, {}
            for metric, title in (("f1", "F1"), ("accuracy", "Accuracy")):
                t = tests.get((rule, "base", metric))
                data[group][title] = (
                    mean(result, "base", metric),
                    mean(result, rule, metric),
                    t["stars"] if t else "",
                    mean(result, "control", metric),
                )
                errors[group][title] = tuple(
                    std(result, m, metric) for m in ("base", rule, "control")
                )
    path = docs / "figures" / "figure5_reproduction.png"
    bar_figure(
        path,
        data,
        metrics=["F1", "Accuracy"],
        labels=("CNN", "ANAN", "control (threshold)"),
        title="Test F1 and accuracy, mean over folds (stars: Wilcoxon ANAN vs CNN)",
        errors=errors,
    )
    return [path.name]


def findings(results: dict[str, dict[str, Any]]) -> list[str]:
    """Significant differences (p < 0.05) per data set and variant, from the paired tests."""
    lines = []
    for dataset, result in results.items():
        tests = tests_by(result)
        name = DATASETS[dataset]
        for model in ("multiplicative", "additive", "control"):
            better, worse = [], []
            for metric, label in NAMES.items():
                t = tests.get((model, "base", metric))
                if not t or t["p_value"] >= 0.05 or metric == "positive_rate":
                    continue
                item = f"{label} {t['mean_difference']:+.3f} (p={t['p_value']:.3f})"
                (better if t["better"] == model else worse).append(item)
            who = "control (threshold only)" if model == "control" else f"ANAN {model}"
            lines.append(
                f"- **{name}, {who} vs CNN**: significantly better: {', '.join(better) or 'none'}"
                f"; significantly worse: {', '.join(worse) or 'none'}."
            )
        paper = [float(v.split()[0]) for v in PAPER_TABLE3[dataset]["f1"]]
        d_anan = mean(result, "multiplicative", "f1") - mean(result, "base", "f1")
        d_control = mean(result, "control", "f1") - mean(result, "base", "f1")
        rate = mean(result, "control", "positive_rate") - mean(result, "base", "positive_rate")
        lines.append(
            f"- **{name}, F1 change vs CNN**: paper ANAN {paper[1] - paper[0]:+.3f}; here ANAN "
            f"multiplicative {d_anan:+.3f}, control {d_control:+.3f} (the control moves the "
            f"positive rate by {rate:+.3f})."
        )
    wins = sum(
        "ANAN" in line and "significantly better: none" not in line
        for line in lines
        if "vs CNN**: significantly" in line
    )
    verdict = (
        "No ANAN variant is significantly better than the base CNN on any metric in either "
        "data set."
        if wins == 0
        else f"{wins} ANAN comparison(s) show a significant improvement on some metric:"
    )
    return [verdict, "", *lines]


def report(
    results: dict[str, dict[str, Any]], meta: dict[str, Any], args: argparse.Namespace
) -> str:
    shown = figures(results, args.docs)
    folds = meta.get("folds", args.folds)
    lines = [
        "# Reproduction of the ANAN paper's protocol (Cats&Dogs, Fire)",
        "",
        "Regenerate everything (measured on the machine below: training "
        f"{total(meta, 'train_seconds')}, tuning + evaluation {total(meta, 'eval_seconds')}):",
        "",
        "```bash",
        ".venv/bin/python research/reproduce.py            # train, tune, evaluate, "
        "write this file",
        ".venv/bin/python research/reproduce.py --skip-training   # reuse out/reproduce/*/models",
        "```",
        "",
        "Per data set it runs `research/train_base_cnn.py --dataset D --size "
        f"{meta.get('size', args.size)} --folds {folds} --epochs {meta.get('epochs', args.epochs)} "
        f"--seed {meta.get('seed', args.seed)}` and then the equivalent of `anan-onnx evaluate "
        "out/reproduce/D/models ../shared/data/D --rules multiplicative,additive` (paper grid, "
        "240 configurations per rule, selection by F1, tuned per fold on that fold's held-out "
        "validation images). Raw results: `out/reproduce/D/evaluation.{json,md}`.",
        "",
        f"Machine: {meta.get('machine', platform.platform())}, {meta.get('cpus', os.cpu_count())} "
        "CPUs, shared with other jobs while this ran; onnxruntime CPU.",
        "",
        "## Findings",
        "",
        *findings(results),
        "",
        "## Protocol",
        "",
        "- **Base CNN**: the paper's Figure 2 family as implemented by "
        "`research/train_base_cnn.py` (3 × [Conv2D 3×3 ReLU → MaxPool 2×2] with 32/64/128 "
        "filters, Dense 128 ReLU, sigmoid "
        "output), Adam, batch 64, stopping rule on the training loss (min Δ 0.01, patience 30), "
        f"stratified {folds}-fold CV on the training images (seed 0). One model per fold.",
        "- **Validation / test**: fold *i*'s model is tuned on the training images held out "
        "in fold *i* (never seen by that model) and tested on the test images, which no step "
        "sees before testing. Cats&Dogs: the given `test/` folder (140 images). Fire: a "
        "stratified seeded 20 % holdout of the folder (200 images), drawn before the folds.",
        "- **ANAN**: astrocytes on the first Conv; grid of the paper (k 4–8, μ 2–4, a 1.05–1.50, "
        "b 0.05–0.50, step 0.15), counter absorbing, signal pre-activation mean (the defaults "
        "of docs/algorithm.md), both update rules as separate variants; best by validation F1 "
        "(ties: lower "
        "loss, then grid order). The selected fixed-parameter model is exported to ONNX and "
        "that model is scored on the test images.",
        "- **Control**: the same base CNN with only its decision threshold tuned (by F1) on the "
        "same validation images; it costs nothing and changes no weights.",
        "- **Statistics**: per metric, paired two-sided Wilcoxon signed-rank test over the "
        f"{folds} folds (SciPy, exact for n ≤ 50 without ties); ** p < 0.01, * p < 0.05, as in "
        "the paper's Table 3.",
        "",
    ]
    for dataset, result in results.items():
        name = DATASETS[dataset]
        n_test = result["folds"][0]["n_test"]
        n_val = sorted({f["n_tune"] for f in result["folds"]})
        lines += [
            f"## {name}",
            "",
            f"{len(result['folds'])} fold models; {n_test} test images; "
            f"{'/'.join(map(str, n_val))} validation images per fold. "
            f"Paper (Table 1): {PAPER_TABLE1[dataset]}.",
            "",
            "### Test metrics next to the paper's Table 3",
            "",
            "Mean over folds. Stars: paired Wilcoxon ANAN vs CNN (** p < 0.01, * p < 0.05), "
            "placed on the better of the two as in the paper; on the CNN column they carry the "
            "rule's initial (m = multiplicative, a = additive). Positive rate = share "
            "predicted as class 1 "
            + (
                "(`dogs`)."
                if dataset == "cats_dogs"
                else "(`non_fire_images`, as the paper's class 1)."
            ),
            "",
            table3(dataset, result),
            "",
            "### Mean difference and p-value of every paired comparison",
            "",
            pvalue_table(result),
            "",
            "### Tuned parameters per fold next to the paper's Table 2",
            "",
            f"Most frequent: multiplicative {mode_params(result, 'multiplicative')}; additive "
            f"{mode_params(result, 'additive')}.",
            "",
            params_table(dataset, result),
            "",
        ]
        flags = result.get("flags") or []
        lines += ["### Flags", ""] + ([f"- {f}" for f in flags] or ["- none"]) + [""]
    lines += [f"![Figure 5 reproduction](figures/{shown[0]})", ""]
    bench = args.bench or sorted((REPO / "out").glob("bench_tune_*.json"))
    lines += speed(bench)
    lines += deviations(meta, args)
    # written by hand from `tune --layers` runs, so it lives in a page this script leaves alone
    lines += ["", "On which layer astrocytes help, and on several at once: [layers.md](layers.md)."]
    return "\n".join(lines) + "\n"


def speed(paths: list[Path]) -> list[str]:
    """A section quoting benchmarks/bench_tune.py results, if any were measured."""
    records = [json.loads(p.read_text()) for p in paths if p.is_file()]
    if not records:
        return []
    lines = [
        "## Speed of the grid search",
        "",
        "`benchmarks/bench_tune.py`: the paper's 240-configuration grid on 1000 images (the 697 "
        "Cats&Dogs images plus flipped copies) with the bundled demo model "
        "`models/catsdogs_cnn.keras` (128×128 input, first conv 3→16), scoring included; "
        '"naive" runs the tunable ONNX export configuration by configuration on a sample of '
        "configurations and extrapolates.",
        "",
        "| rule | command | runs (s) | median (s) | naive estimate (s) | distinct gain vectors "
        "per image | load average before |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        naive = r.get("naive_tunable_export_grid_estimate_s")
        lines.append(
            f"| {r['rule']} | `.venv/bin/python benchmarks/{r['command']}` | "
            f"{', '.join(f'{v:.1f}' for v in r['runs_s'])} | "
            f"**{r['median_s']:.1f}** | {'–' if naive is None else f'{naive:.0f}'} | "
            f"{r['distinct_gain_vectors_per_image']:g} | "
            f"{', '.join(f'{v:.2f}' for v in r['load_average_before'])} |"
        )
    lines += [
        "",
        f"Machine: {records[0]['machine']}, {records[0]['cpus']} CPUs, onnxruntime "
        f"{records[0]['onnxruntime']}; other jobs ran on the machine at the same time (see "
        "the load averages).",
        "",
    ]
    return lines


def deviations(meta: dict[str, Any], args: argparse.Namespace) -> list[str]:
    size = meta.get("size", args.size)
    return [
        "## Deviations from the paper (all of them)",
        "",
        "- **Images**: the shared copies are resized: Cats&Dogs 224×224 JPEG (same counts as "
        "the paper: 557 train / 140 test), Fire downscaled to 120 px height PNG (755 fire / 244 "
        "non-fire, as the paper's 999). Results on the original resolution may differ.",
        "- **Architecture**: the paper's text does not give Figure 2's filter counts; the "
        "training tool's reading is used (32/64/128 filters, Dense 128, no dropout, no "
        "augmentation, valid padding).",
        f"- **Input size**: {size}×{size} for both (paper: 128×128 Cats&Dogs, 224×224 Fire), "
        "to fit the training into the time budget of a 2-core CPU machine.",
        f"- **Training**: at most {meta.get('epochs', args.epochs)} epochs (paper: 100 with "
        "patience 30 on the training loss, so the stopping rule never fires here); "
        f"{meta.get('folds', args.folds)} folds as in the paper.",
        "- **Fire test split**: the Kaggle set has no test split; the paper does not say how "
        "its ~20 % test set was drawn. Here: stratified, seed 0, 20 %.",
        "- **Paper's Table 2 vs its grid**: b = 0.30 (Cats&Dogs, RFMiD) is not on the grid the "
        "paper describes (0.05, 0.20, 0.35, 0.50); we search the described grid.",
        "- **Update rule**: the paper prints an additive rule (Δw = |w|·z with z = a on "
        "excitation) but calls a, b percentages; the default of docs/algorithm.md is the "
        "multiplicative "
        "reading (w·a, w·(1−b)). Both are reported. Untriggered steps use z = 0 (the paper "
        "prints 1, see docs/algorithm.md).",
        "- **Kernel activity**: the paper does not define the output of a kernel; the default "
        "of docs/algorithm.md (mean pre-activation, absorbing counter) is used.",
        "- **Tuning data**: the paper does not say on which images it grid-searched; here each "
        "fold is tuned on its own held-out validation images, never on the test images.",
        "- **Control**: not in the paper; added to show what a decision-threshold change alone "
        "does.",
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in datasets:
        if d not in DATASETS:
            raise SystemExit(f"unknown data set {d!r}: pass {', '.join(DATASETS)}")
    meta_path = args.out / "meta.json"
    meta: dict[str, Any] = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    if not args.report_only:
        meta.update(
            size=args.size,
            folds=args.folds,
            epochs=args.epochs,
            seed=args.seed,
            machine=platform.platform(),
            cpus=os.cpu_count(),
        )
        meta.setdefault("train_seconds", {})
        meta.setdefault("eval_seconds", {})
        if not args.skip_training:
            for d in datasets:
                meta["train_seconds"][d] = round(train(d, args), 1)
                args.out.mkdir(parents=True, exist_ok=True)
                meta_path.write_text(json.dumps(meta, indent=1))
        for d in datasets:
            result = evaluate(d, args)
            meta["eval_seconds"][d] = result["seconds"]
            meta_path.write_text(json.dumps(meta, indent=1))
    results = {}
    for d in datasets:
        path = args.out / d / "evaluation.json"
        if not path.is_file():
            raise SystemExit(f"{path} is missing: run without --report-only first")
        results[d] = json.loads(path.read_text())
    args.docs.mkdir(parents=True, exist_ok=True)
    (args.docs / "reproduction.md").write_text(report(results, meta, args))
    log(f"wrote {args.docs / 'reproduction.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
