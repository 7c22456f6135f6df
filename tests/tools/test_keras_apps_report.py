"""tools/keras_apps_report.py merges the records of separate runs into one table.

The keras.applications models are measured one at a time (each may take an hour and most of
the machine's memory), so the table must come from several ``ANAN_COMPAT_REPORT`` folders: a
later run's record replaces an earlier one for the same model, the others are kept, and a
model no run measured is still listed. Run as documented (``python tools/keras_apps_report.py
--from A B -o DOC``); it imports Keras to enumerate the constructors.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tools.compat_report import KERAS_APPS_BEGIN, KERAS_APPS_END

pytest.importorskip("keras", reason="the report enumerates keras.applications")
pytestmark = pytest.mark.keras

REPO = Path(__file__).resolve().parents[2]


def _record(name: str, family: str, exit: int, **figures: object) -> dict[str, object]:
    """A record as tests/convert/test_keras_applications.py writes it."""
    timing = dict(seconds=10.0, cpu_s=5.0, peak_mib=1000, onnx_mib=1.0)
    return dict(name=name, family=family, size=224, exit=exit, message="", **timing, **figures)


def _exact(name: str, family: str, layer: str) -> dict[str, object]:
    figures = dict(target="conv", keras_layer=layer, rel_diff=2e-7, anan_vs_base=0.3, compared=3)
    return _record(name, family, 0, **figures)


def _failed(name: str, family: str, noop_diff: float, layer: float = 1.0) -> dict[str, object]:
    """A comparison over the tolerance, with the no-op loop's own difference to the base and
    the modulated layer's difference to the loop."""
    figures = dict(rel_diff=0.4, noop_diff=noop_diff, layer_rel_diff=layer)
    return dict(_exact(name, family, "stem_conv"), **figures)


def _rows(doc: str) -> dict[str, str]:
    """``{model: its table row}`` of the keras.applications block."""
    return {line.split("|")[1].strip(): line for line in doc.splitlines() if line.startswith("| ")}


def test_runs_merge_later_wins_and_the_rest_of_the_doc_stays(tmp_path):
    runs = {
        "first": [_exact("ResNet50", "resnet", "first_layer"), _record("VGG16", "vgg16", -9)],
        "second": [_exact("ResNet50", "resnet", "second_layer"), _exact("VGG19", "vgg19", "b1")],
        "third": [
            _failed("EfficientNetV2M", "efficientnet_v2", 1.2, layer=2e-7),
            _failed("EfficientNetV2L", "efficientnet_v2", 1.2),
            _failed("ResNet101", "resnet", 3e-6, layer=2e-7),
        ],
    }
    for folder, records in runs.items():
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "keras_apps.json").write_text(json.dumps(records))
    doc = tmp_path / "compatibility.md"
    doc.write_text(f"# Head kept\n\n{KERAS_APPS_BEGIN}\nold\n{KERAS_APPS_END}\n\n## Tail kept\n")

    folders = [str(tmp_path / name) for name in runs]
    command = [sys.executable, "tools/keras_apps_report.py", "--from", *folders, "-o", str(doc)]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]

    text = doc.read_text()
    assert text.startswith("# Head kept\n") and text.endswith("## Tail kept\n"), text
    assert "\nold\n" not in text
    rows = _rows(text)
    assert "`second_layer`" in rows["ResNet50"] and "first_layer" not in text
    assert "**exact**" in rows["VGG19"]  # only in the second run
    assert "killed by signal 9" in rows["VGG16"] and "≥ 1000" in rows["VGG16"]  # the first only
    noisy = rows["EfficientNetV2M"]  # logits not comparable, the layer exact
    assert "**exact at the modulated layer** (rel. diff 2e-07;" in noisy and "by 1.2)" in noisy
    assert "**FAIL** (not comparable" in rows["EfficientNetV2L"]  # and its layer differs
    assert "**FAIL** |" in rows["ResNet101"]  # the reference alone was reproducible: a plain FAIL
    assert "not measured" in rows["ResNet152"]  # in no run, still listed
    assert sum("**exact**" in row for row in rows.values()) == 2
