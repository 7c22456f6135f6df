"""keras.applications models that carry their own preprocessing, through predict: equal to
Keras on the raw decoded pixels, the ANAN model equal to the literal loop (issue 22).

One member of each family whose preprocessing is inside the model (``Rescaling`` /
``Normalization`` layers; the installed Keras has no RegNet): MobileNetV3 (x / 127.5 - 1),
EfficientNet and EfficientNetV2 (x / 255, then the ImageNet mean and variance), ConvNeXt
(the ImageNet mean and variance in pixel units).
Built with random weights by tests/fixtures/keras_apps.py in a process of its own; slow (a
conversion each), hence the ``integration`` marker: ``pytest -m integration``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.fidelity import check_fidelity, image_files

pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras models")
pytest.importorskip("tf2onnx", reason="the 'keras' extra is needed for Keras models")
pytestmark = [pytest.mark.keras, pytest.mark.integration]

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("MobileNetV3Small", "Rescaling"),
        ("EfficientNetB0", "Normalization"),
        ("EfficientNetV2B0", "Normalization"),
        # its stem is a nested model: the note names the graph's ops, not the Keras layer
        ("ConvNeXtTiny", "Sub (123.675, 116.28, 103.53)"),
    ],
)
def test_application_with_its_own_preprocessing(name, why, tmp_path, capsys):
    import keras
    from fixtures.keras_apps import size

    source = tmp_path / f"{name}.keras"
    builder = REPO / "tests" / "fixtures" / "keras_apps.py"
    command = [sys.executable, str(builder), name, str(source)]
    built = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=900)
    assert built.returncode == 0, built.stderr[-2000:]
    model = keras.saving.load_model(source, compile=False)
    images, pixels = image_files(tmp_path, 2, size(name))
    md = check_fidelity(  # the default ANAN parameters, as test_keras_applications.py
        source, lambda x: model(x, training=False), images, pixels, tmp_path, capsys, params=[]
    )
    assert (md["scale"], md["offset"]) == ("1.0", "0.0")
    assert json.loads(md["preprocess_from"])["scale"] == "read"
    assert md["preprocess_note"].startswith("the model scales its input itself")
    assert why in md["preprocess_note"]
