"""tools/engine_check.py: the held-out engine check's verdicts and table (docs/engines.md)."""

from __future__ import annotations

from anan_onnx.runtime.engines import open_engine
from tools import engine_check


def test_every_option_set_of_the_torch_style_model_is_exact_on_onnxruntime(tmp_path) -> None:
    rows = engine_check.check_model("torch-nchw", tmp_path, {"ort": open_engine("ort")})
    assert [r[1] for r in rows] == list(engine_check.OPTION_SETS)
    assert {r[3] for r in rows} == {"exact"}, rows


def test_an_engine_that_drops_the_modulation_fails(tmp_path) -> None:
    """An engine answering with the base model's outputs is exact nowhere the loop moves."""

    class BaseInstead:
        def run(self, model, batch):
            return open_engine("ort").run(tmp_path / "torch-nchw.base.onnx", batch)

    rows = engine_check.check_model("torch-nchw", tmp_path, {"base": BaseInstead()})
    assert {r[3] for r in rows} == {"FAIL"}
    assert all("does not move like the loop" in r[4] for r in rows)


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
