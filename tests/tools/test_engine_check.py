"""tools/engine_check.py: the held-out engine check's verdicts and table (docs/engines.md)."""

from __future__ import annotations

import numpy as np
import pytest

from anan_onnx import AnanParams, convert_file
from anan_onnx.errors import AnanError
from anan_onnx.reference.literal import LiteralReference
from anan_onnx.reference.verify import ImageResult, VerifyReport
from anan_onnx.runtime import engines
from anan_onnx.runtime.engines import open_engine
from tools import engine_check


def test_every_option_set_of_the_torch_style_model_is_exact_on_onnxruntime(tmp_path) -> None:
    rows = engine_check.check_model("torch-nchw", tmp_path, {"ort": None})
    assert [r[1] for r in rows] == list(engine_check.OPTION_SETS)
    assert {r[3] for r in rows} == {"exact"}, rows


class FakeEngine:
    """Runs the base model (``base`` of the pair next to the ANAN file) on onnxruntime,
    for the images ``drops`` picks: an engine that drops the modulation there."""

    precision = "f32"

    def __init__(self, drops) -> None:
        self.drops = drops

    def run(self, model, batch):
        out = open_engine("ort").run(model, batch)
        base = str(model).replace(".anan.onnx", ".base.onnx")
        picked = self.drops(batch)
        out[picked] = open_engine("ort").run(base, batch)[picked]
        return out

    def close(self) -> None:
        pass


def _fake(monkeypatch, drops) -> None:
    """``reference`` opens the fake engine (verify_models opens engines by name)."""
    monkeypatch.setattr(engines, "open_engine", lambda name, precision=None: FakeEngine(drops))


def _first_image(batch: np.ndarray) -> np.ndarray:
    """Which images of ``batch`` are the check's first image (chunks may leave it out)."""
    first = engine_check._pixels(engine_check.DEFAULT_IMAGES, (3, 32, 32))[0]
    return np.array([np.array_equal(image, first) for image in batch])


def test_an_engine_that_drops_the_modulation_fails(tmp_path, monkeypatch) -> None:
    """An engine answering with the base model's outputs is exact nowhere the loop moves."""
    _fake(monkeypatch, lambda batch: np.ones(len(batch), bool))
    rows = engine_check.check_model("torch-nchw", tmp_path, {"reference": None})
    assert {r[3] for r in rows} == {"FAIL"}
    assert all("does not move like the loop" in r[4] for r in rows), rows


def test_a_near_tie_image_is_skipped_as_verify_skips_it(tmp_path, monkeypatch) -> None:
    """An engine that differs from the loop only on an image whose sign test is a near-tie
    (where rounding may flip a decision) is exact, as ``verify`` judges it."""
    run = LiteralReference.run

    def first_image_ties(self, x, **options):
        result = run(self, x, **options)
        result.near_tie[:] = _first_image(x)
        return result

    monkeypatch.setattr(LiteralReference, "run", first_image_ties)
    _fake(monkeypatch, _first_image)
    rows = engine_check.check_model("torch-nchw", tmp_path, {"reference": None})
    assert {r[3] for r in rows} == {"exact"}, rows
    assert all("1 near-tie(s) skipped" in r[4] for r in rows)


def test_a_row_within_the_tolerance_follows_the_loop() -> None:
    """An image the loop moves by just over MOVED, on an engine within the tolerance,
    moved by at least MOVED - TOLERANCE: it follows; the base model's answer does not."""
    scale, move = 2.0, np.array([1.05 * engine_check.MOVED * 2.0])
    within = 0.9 * engine_check.TOLERANCE * scale

    def report(diff: float) -> VerifyReport:
        return VerifyReport(1, 0, 1, diff, per_image=[ImageResult(0, "PASS", 0, 0, diff)])

    assert engine_check._follows(report(within), move, scale)
    assert not engine_check._follows(report(float(move[0])), move, scale)


def test_every_option_set_is_converted_from_the_source_model(tmp_path, monkeypatch) -> None:
    """As docs/engines.md says: each option set from the model file a user has."""
    origins = []

    def recording(source, *args, **kwargs):
        origins.append(source)
        return convert_file(source, *args, **kwargs)

    monkeypatch.setattr(engine_check, "convert_file", recording)
    engine_check.check_model("torch-nchw", tmp_path, {})
    assert origins == [tmp_path / "torch_nchw.onnx"] * len(engine_check.OPTION_SETS)


def test_a_refusal_is_reported_whole(tmp_path, monkeypatch) -> None:
    """The converter's refusal reaches the row (and the table) as it was raised."""
    layer = "/conv9/Conv" * 12  # no such Conv: the refusal names it, and the Convs there are
    monkeypatch.setattr(engine_check, "OPTION_SETS", {"--layer": (AnanParams(), {"layer": layer})})
    rows = engine_check.check_model("torch-nchw", tmp_path, {"ort": None})
    source = tmp_path / "torch_nchw.onnx"
    with pytest.raises(AnanError) as refusal:
        convert_file(source, tmp_path / "x.anan.onnx", AnanParams(), layer=layer, progress=False)
    assert len(str(refusal.value)) > 120
    assert rows == [("torch-nchw", "--layer", "ort", "refused", str(refusal.value))]


def test_table_counts_rows_per_engine_and_names_what_fails() -> None:
    rows = [
        ("m", "defaults", "ort", "exact", "0.0e+00"),
        ("m", "--batch 1", "ort", "FAIL", "rel. diff 1.0e-03"),
        ("m", "--signal post", "ort", "refused", "needs an activation"),
        ("m", "defaults", "tract", "skip", "pip install tract"),
    ]
    table = engine_check.table(rows)
    assert "| ort | 1/2 | m --batch 1: FAIL (rel. diff 1.0e-03) |" in table
    assert "| tract | not run | pip install tract |" in table
    assert "Not converted (the option does not apply): m --signal post" in table


def test_bad_image_count_is_one_line_and_status_2(capsys) -> None:
    assert engine_check.main(["--images", "3"]) == 2
    assert engine_check.main(["--models", "resnet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "multiple of 4" in err[0] and "unknown model" in err[1]
