"""Tests of anan_onnx.evaluation.report: the Markdown table and the bar figure."""

from __future__ import annotations

import pytest

from anan_onnx.errors import AnanError
from anan_onnx.evaluation.report import bar_figure, markdown_table


def test_markdown_table():
    rows = [
        {"data set": "Fire", "f1": 0.95912, "stars": "*", "n": 200},
        {"data set": "a|b", "f1": float("nan"), "stars": None},
    ]
    assert markdown_table(rows, ["data set", "f1", "stars", "n"]) == (
        "| data set | f1 | stars | n |\n"
        "| --- | --- | --- | --- |\n"
        "| Fire | 0.959 | * | 200 |\n"
        "| a\\|b | nan |  |  |"
    )
    assert markdown_table(rows[:1], ["f1"], digits=1).endswith("| 1.0 |")
    with pytest.raises(AnanError, match="at least one column"):
        markdown_table(rows, [])


def test_bar_figure_writes_a_png_atomically(tmp_path):
    data = {
        "Cats&Dogs": {"F1": (0.613, 0.668, ""), "Accuracy": (0.662, 0.651, "")},
        "Fire": {"F1": (0.959, 0.973, "*", 0.965), "Accuracy": (0.981, 0.987, "*", 0.98)},
    }
    out = bar_figure(tmp_path / "figure5.png", data, title="base vs ANAN")
    assert out == tmp_path / "figure5.png"
    content = out.read_bytes()
    assert content.startswith(b"\x89PNG\r\n\x1a\n") and len(content) > 5000
    assert [p.name for p in tmp_path.iterdir()] == ["figure5.png"]  # no temporary left
    bar_figure(out, {"RMNIST": {"F1": (0.765, 0.785, "*")}}, metrics=["F1"])  # overwrite
    assert out.read_bytes() != content
    with pytest.raises(AnanError, match="does not exist: create it"):
        bar_figure(tmp_path / "no" / "f.png", data)
