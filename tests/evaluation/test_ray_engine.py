"""The Ray engine: tune, evaluate and predict on a local Ray cluster give the local engine's
outputs, byte for byte; a worker killed mid-run is retried and the output is complete and
the same; bad input is one line and leaves nothing behind."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from test_evaluate import make_data, make_folds
from test_tune import SMALL_GRID, planted, run_cli, save_images

from anan_onnx.distributed.predict import predict_ray
from anan_onnx.distributed.ray_engine import RayEngine
from anan_onnx.evaluation.tune import grid_search
from anan_onnx.metadata import write_metadata
from anan_onnx.options import RunOptions
from anan_onnx.runtime.image_files import load_images
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.runtime.session import Session

GRID_ARGS = ["--k", "2,3", "--mu", "1,2", "--a", "1.5,4", "--b", "0.3,0.9"]


def _without_seconds(path: Path) -> dict:
    data = json.loads(path.read_text())
    data.pop("seconds", None)  # wall time: the one field that differs run to run
    return data


def test_tune_on_ray_writes_the_local_bytes(tmp_path, capsys, ray_cluster):
    model, data, best, _ = planted(tmp_path)
    outs = {}
    for engine in ("local", "ray"):
        out = tmp_path / engine
        # --batch-size 8: 48 images in several shards, so the Ray run really is spread
        code, stdout, _ = run_cli(capsys, "tune", model, data, *GRID_ARGS, "--batch-size", "8",
                                  "--no-progress", "--engine", engine, "-o", out)  # fmt: skip
        assert code == 0, stdout
        outs[engine] = out
    assert (outs["ray"] / "grid.csv").read_bytes() == (outs["local"] / "grid.csv").read_bytes()
    ray_best = _without_seconds(outs["ray"] / "best.json")
    assert ray_best == _without_seconds(outs["local"] / "best.json")
    params = ray_best["params"]
    assert [params[n] for n in ("k", "mu", "a", "b")] == [best.k, best.mu, best.a, best.b]


def test_a_worker_killed_mid_tune_is_retried(tmp_path, ray_cluster):
    model, data, _, labels = planted(tmp_path)
    from anan_onnx.evaluation.datasets import load_splits
    from anan_onnx.metadata import read_metadata

    base = onnx.load(model)
    spec = InputSpec("NCHW", 11, 11, 3)
    assert not read_metadata(base)  # the planted model records nothing: spec given here
    images = load_splits(data, spec, lazy=True).val.images
    marker = tmp_path / "killed.txt"
    engine = RayEngine(fault=str(marker))
    assert len(engine.shards(len(images), 8)) >= 2
    run = RunOptions(batch_size=8, progress=False)
    local = grid_search(base, images, labels, SMALL_GRID, run=run)
    spread = grid_search(base, images, labels, SMALL_GRID, run=run, engine=engine)
    assert marker.is_file()  # a worker really died on shard 1
    assert spread.rows == local.rows and spread.rest_rows == local.rest_rows


def test_evaluate_on_ray_gives_the_local_report(tmp_path, capsys, ray_cluster):
    data, x = make_data(tmp_path / "data")
    folds = make_folds(tmp_path / "folds", x, n=2)
    reports = {}
    for engine in ("local", "ray"):
        out = tmp_path / f"eval_{engine}"
        code, stdout, _ = run_cli(capsys, "evaluate", folds, data, *GRID_ARGS, "--rules",
                                  "multiplicative,additive", "--batch-size", "8", "--engine",
                                  engine, "-o", out, "--no-progress")  # fmt: skip
        assert code == 0, stdout
        reports[engine] = out
    md = {e: (o / "evaluation.md").read_text() for e, o in reports.items()}
    assert md["ray"] == md["local"]
    result = {e: json.loads((o / "evaluation.json").read_text()) for e, o in reports.items()}
    for fold in (*result["ray"]["folds"], *result["local"]["folds"]):
        for tuning in fold["tuning"].values():
            tuning.pop("seconds")
    assert result["ray"] == result["local"]


# --- predict -------------------------------------------------------------------------------

CLASSES = ["cat", "dog", "fox"]


@pytest.fixture()
def images(tmp_path) -> tuple[Path, Path, list[Path]]:
    """A 3-class model recording its preprocessing and class names, and a folder of images
    with one file that is not an image."""
    from test_tune import centred_cnn, pixels

    px = pixels(30, 3)
    x = px.astype(np.float32) * np.float32(1 / 255)
    model = centred_cnn(x, seed=3, classes=3)
    write_metadata(
        model, {**InputSpec("NCHW", 11, 11, 3).to_metadata(), "classes": json.dumps(CLASSES)}
    )
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    folder = tmp_path / "imgs"
    save_images(folder, px, np.zeros(30, np.int64), ["all"])
    (folder / "all" / "broken.png").write_bytes(b"not an image")
    good = sorted((folder / "all").glob("img*.png"))
    return path, folder, good


def _local(model: Path, files: list[Path]) -> np.ndarray:
    session = Session(model)
    batch, _, _ = load_images(files, session.input_spec())
    return session.predict(batch)


def test_predict_on_ray_equals_local_in_every_format(images, tmp_path, ray_cluster):
    model, folder, good = images
    expected = _local(model, good)
    rows = {}
    for suffix in (".jsonl", ".csv", ".parquet"):
        summary = predict_ray(model, [folder], tmp_path / f"out{suffix}", batch_size=4)
        assert [p for p, _ in summary.failed] == [str(folder / "all" / "broken.png")]
        rows[suffix] = _read_rows(tmp_path / f"out{suffix}")
    for suffix, table in rows.items():
        assert [r["path"] for r in table][0].endswith("broken.png"), suffix  # sorted, listed
        assert table[0]["error"] and table[0]["probabilities"] is None
        got = np.asarray([r["probabilities"] for r in table[1:]], np.float32)
        np.testing.assert_array_equal(got, expected)
        assert [r["class"] for r in table[1:]] == [CLASSES[i] for i in expected.argmax(1)]
    assert not list(tmp_path.glob(".out*"))  # no temp files left behind


def _read_rows(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    if path.suffix == ".csv":
        with path.open() as f:
            rows = list(csv.DictReader(f))
        for r in rows:
            r["probabilities"] = json.loads(r["probabilities"]) if r["probabilities"] else None
        return rows
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def test_a_predict_actor_killed_mid_run_is_retried(images, tmp_path, ray_cluster):
    model, folder, good = images
    marker = tmp_path / "killed.txt"
    predict_ray(model, good, tmp_path / "clean.jsonl", batch_size=4)
    summary = predict_ray(model, good, tmp_path / "out.jsonl", batch_size=4, fault=str(marker))
    assert marker.is_file()
    assert summary.images == len(good) and not summary.failed
    assert (tmp_path / "out.jsonl").read_bytes() == (tmp_path / "clean.jsonl").read_bytes()


def test_predict_strict_writes_nothing(images, tmp_path, capsys, ray_cluster):
    model, folder, _ = images
    out = tmp_path / "out.csv"
    code, _, stderr = run_cli(capsys, "predict", model, folder, "--engine", "ray",
                              "--output", out, "--strict")  # fmt: skip
    assert code == 2
    errors = [ln for ln in stderr.splitlines() if ln.startswith("anan-onnx: error: ")]
    assert len(errors) == 1 and "broken.png is not a readable image" in errors[0], stderr
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--engine", "ray"], "--engine ray writes a file: pass --output"),
        (["--engine", "ray", "--output", "o.txt"], "unknown format .txt"),
        (["--output", "o.csv"], "need --engine ray"),
        (["--engine", "ray", "--output", "o.csv", "MISSING"], "input MISSING does not exist"),
    ],
)
def test_predict_bad_arguments_are_one_line(images, tmp_path, capsys, argv, message):
    model, folder, _ = images
    extra = [a.replace("o.", str(tmp_path / "o.")) for a in argv if a != "MISSING"]
    inputs = [tmp_path / "missing"] if "MISSING" in argv else [folder]
    message = message.replace("MISSING", str(tmp_path / "missing"))
    code, _, stderr = run_cli(capsys, "predict", model, *inputs, *extra)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], stderr
    assert not list(tmp_path.glob("o.*")) and not list(tmp_path.glob(".o.*"))
