"""``predict -o DIR`` on the local engine: partitioned Parquet parts, an errors table, a
manifest, failures counted against --max-failed, and a rerun that resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from distributed_helpers import CLASSES, run

from anan_onnx.distributed.parts import iter_rows
from anan_onnx.runtime.image_files import load_images
from anan_onnx.runtime.session import Session


def expected_rows(model: Path, files: list[Path]) -> np.ndarray:
    """The model's outputs for ``files``, computed in one batch, independently of parts."""
    session = Session(model)
    batch, _, _ = load_images(files, session.input_spec())
    return session.predict(batch)


def test_parts_hold_every_input_once_with_its_prediction_or_error(model, tree, tmp_path, capsys):
    folder, good, broken = tree
    out = tmp_path / "out"
    code, stdout, stderr = run(capsys, "predict", model, folder, "-o", out, "--block-images", 5)
    # 13 inputs, one damaged: counted, and the exit status says so (default --max-failed 0)
    assert code == 2 and "predicted 12 of 13 inputs in 3 parts" in stdout
    errors = [ln for ln in stderr.splitlines() if ln]
    assert len(errors) == 1 and "1 of 13 inputs failed" in errors[0] and "broken.png" in errors[0]
    parts = sorted(p.name for p in out.glob("part-*.parquet"))
    assert parts == ["part-00000-000000.parquet", "part-00000-000001.parquet",
                     "part-00000-000002.parquet"]  # fmt: skip
    rows = list(iter_rows(out))
    assert [r["input"] for r in rows] == [str(p.resolve()) for p in [*good, broken]]
    probs = np.asarray([r["probabilities"] for r in rows[:-1]], np.float32)
    want = expected_rows(model, good)
    np.testing.assert_array_equal(probs, want)
    assert [r["class"] for r in rows[:-1]] == [CLASSES[int(p > 0.5)] for p in want[:, 0]]
    assert rows[-1]["probabilities"] is None and "broken.png" in rows[-1]["error"]
    table = pq.read_table(out / "errors" / "part-00000-000002.parquet").to_pylist()
    assert [r["input"] for r in table] == [str(broken.resolve())]
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["images"], manifest["failed"], len(manifest["parts"])) == (13, 1, 3)
    assert [p["images"] for p in manifest["parts"]] == [5, 5, 3]
    assert not list(out.rglob("*.tmp"))


def test_max_failed_allows_a_count_or_a_share(model, tree, tmp_path, capsys):
    folder, _, _ = tree
    assert run(capsys, "predict", model, folder, "-o", tmp_path / "a", "--max-failed", 1)[0] == 0
    assert run(capsys, "predict", model, folder, "-o", tmp_path / "b", "--max-failed", "8%")[0] == 0
    code, _, stderr = run(capsys, "predict", model, folder, "-o", tmp_path / "c",
                          "--max-failed", "5%")  # fmt: skip  # 5 % of 13 rounds down to 0
    assert code == 2 and "(now 5%)" in stderr
    code, _, stderr = run(capsys, "predict", model, folder, "-o", tmp_path / "d",
                          "--max-failed", "lots")  # fmt: skip
    assert code == 2 and "--max-failed 'lots'" in stderr and not (tmp_path / "d").exists()


def test_a_rerun_resumes_the_committed_parts(model, tree, tmp_path, capsys):
    folder, good, broken = tree
    broken.unlink()
    out = tmp_path / "out"
    args = ("predict", model, folder, "-o", out, "--block-images", 4)
    assert run(capsys, *args)[0] == 0
    first = {p.name: p.read_bytes() for p in out.glob("part-*.parquet")}
    manifest = (out / "manifest.json").read_text()
    (out / "part-00000-000001.parquet").unlink()  # as if the run had stopped before it
    code, stdout, _ = run(capsys, *args)
    assert code == 0 and "2 parts resumed" in stdout
    assert {p.name: p.read_bytes() for p in out.glob("part-*.parquet")} == first
    assert (out / "manifest.json").read_text() == manifest
    # other inputs in the same folder: the parts that changed are computed again, the
    # parts of the old run that no longer exist are removed
    good[-1].unlink()
    code, stdout, _ = run(capsys, "predict", model, *good[:-1], "-o", out, "--block-images", 4)
    assert code == 0 and "predicted 11 of 11" in stdout and "2 parts resumed" in stdout
    assert len(list(out.glob("part-*.parquet"))) == 3


def test_a_list_file_streams_inputs_to_stdout_and_to_a_folder(model, tree, tmp_path, capsys):
    folder, good, _ = tree
    listing = tmp_path / "inputs.txt"
    listing.write_text("".join(f"{p}\n" for p in good))
    code, stdout, _ = run(capsys, "predict", model, "--inputs-from", listing)
    assert code == 0 and [ln.split("\t")[0] for ln in stdout.splitlines()] == [str(p) for p in good]
    code, _, _ = run(capsys, "predict", model, f"@{listing}", "-o", tmp_path / "out")
    assert code == 0 and len(list(iter_rows(tmp_path / "out"))) == len(good)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_one_file_output_has_the_rows_of_the_parts(model, tree, tmp_path, capsys, suffix):
    folder, good, broken = tree
    run(capsys, "predict", model, folder, "-o", tmp_path / "parts", "--max-failed", 1)
    parts = list(iter_rows(tmp_path / "parts"))
    out = tmp_path / f"rows{suffix}"
    code, stdout, stderr = run(capsys, "predict", model, folder, "-o", out)
    assert code == 2 and "1 of 13 inputs failed" in stderr and "12 of 13" in stdout
    listed = _read(out)  # in input order, as the parts: the unreadable file where it was
    assert [r["input"] for r in listed] == [p["input"] for p in parts]
    rows = {r["input"]: r for r in listed}
    assert len(rows) == 13 and set(rows) == {str(p) for p in [*good, broken]}
    for part in parts:  # the folder was given as an absolute path: the same ids
        row = rows[part["input"]]
        assert row["label"] == part["label"] and row["class"] == part["class"]
        if part["error"]:
            assert row["probabilities"] is None and "broken.png" in row["error"]
        else:  # float32 values, written as JSON numbers: the same floats back
            assert np.float32(row["probabilities"]).tolist() == part["probabilities"]
    assert run(capsys, "predict", model, folder, "-o", out, "--max-failed", 1)[0] == 0
    assert not list(tmp_path.glob(".rows*"))  # no temp file left


def _read(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import csv

    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["label"] = int(r["label"]) if r["label"] else None
        r["probabilities"] = json.loads(r["probabilities"]) if r["probabilities"] else None
        r["class"] = r["class"] or None
    return rows


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--engine", "ray"], "--engine ray writes a folder: pass -o DIR"),
        (["--engine", "ray", "-o", "OUT.jsonl"], "--engine ray writes a folder of parts"),
        (["-o", "OUT", "--json"], "pass one of them"),
        (["-o", "FILE"], "is a file: pass a folder"),
        (["-o", "FOREIGN"], "a folder with other files"),
        (["-o", "OUT", "--block-images", "0"], "--block-images must be a positive integer"),
        (["-o", "OUT", "--retries", "-1"], "--retries must be 0 or more"),
        (["-o", "OUT", "--inputs-from", "no-such-list.txt"], "cannot be read"),  # listed last
        (["--workers", "2"], "need --engine ray"),
        (["-o", "OUT", "--provider", "NoSuchExecutionProvider"], "is not available"),
    ],
)
def test_bad_output_arguments_are_one_line(model, tree, tmp_path, capsys, extra, message):
    folder, _, _ = tree
    (tmp_path / "FILE").write_text("x")
    (tmp_path / "FOREIGN").mkdir()
    (tmp_path / "FOREIGN" / "thesis.tex").write_text("x")
    argv = [str(tmp_path / a) if a in ("OUT", "OUT.jsonl", "FILE", "FOREIGN") else a for a in extra]
    code, _, stderr = run(capsys, "predict", model, folder, *argv)
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], stderr
    assert not (tmp_path / "OUT").exists() and not (tmp_path / "OUT.jsonl").exists()
    assert [p.name for p in (tmp_path / "FOREIGN").iterdir()] == ["thesis.tex"]


def test_each_part_runs_on_the_provider_given(model, tmp_path):
    from anan_onnx.distributed.parts import PartPredictor
    from anan_onnx.errors import AnanError

    with pytest.raises(AnanError, match="'NoSuchExecutionProvider' is not available"):
        PartPredictor(Path(model).read_bytes(), str(tmp_path), provider="NoSuchExecutionProvider")


def test_an_object_larger_than_the_image_limit_is_not_read(model, tree, tmp_path, monkeypatch):
    """An object-store image is checked against ANAN_MAX_IMAGE_BYTES from its size before it
    is read (read whole, it could exhaust memory); a local file likewise."""
    from anan_onnx.distributed.parts import PartPredictor
    from anan_onnx.errors import AnanError

    _, good, _ = tree
    predictor = PartPredictor(Path(model).read_bytes(), str(tmp_path))
    uri = f"file://{good[0].resolve()}"
    assert predictor._pixels(uri).dtype == np.uint8  # within the default limit: read
    monkeypatch.setenv("ANAN_MAX_IMAGE_BYTES", "10")
    for item in (uri, str(good[0])):
        with pytest.raises(AnanError, match="more than the limit of 10 bytes.*ANAN_MAX_IMAGE"):
            predictor._pixels(item)
