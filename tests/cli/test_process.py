"""Process-wide settings (environment, logger levels, onnxruntime's log severity) are made
by the CLI (anan_onnx/cli/process.py), never by library calls."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

_REPORT = """
import json, logging, os
print(json.dumps({
    "env": {k: os.environ.get(k) for k in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")},
    "levels": {n: logging.getLogger(n).level for n in ("tensorflow", "tf2onnx", "absl")},
}))
"""


def _run(code: str) -> dict:
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("TF_")}
    result = subprocess.run(
        [sys.executable, "-c", code + _REPORT],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_cli_sets_them(tmp_path):
    import onnx

    from anan_onnx import AnanParams, convert_model
    from anan_onnx.testing import VARIANTS, build_cnn

    model = tmp_path / "m.anan.onnx"
    onnx.save(convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=2)).anan, model)
    report = _run(f"from anan_onnx.cli import main\nassert main(['inspect', {str(model)!r}]) == 0")
    assert report["env"] == {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_ENABLE_ONEDNN_OPTS": "0"}
    assert set(report["levels"].values()) == {40}  # logging.ERROR


def test_a_library_conversion_leaves_the_process_as_it_was():
    report = _run("""
import anan_onnx
from anan_onnx.testing import VARIANTS, build_cnn, random_batch
result = anan_onnx.convert_model(build_cnn(VARIANTS["plain"]), anan_onnx.AnanParams(k=2))
anan_onnx.Session(result.anan).predict(random_batch(VARIANTS["plain"], 2))
""")
    assert report == {
        "env": {"TF_CPP_MIN_LOG_LEVEL": None, "TF_ENABLE_ONEDNN_OPTS": None},
        "levels": {"tensorflow": 0, "tf2onnx": 0, "absl": 0},
    }


@pytest.mark.keras
def test_importing_tensorflow_for_an_export_leaves_them_too():
    pytest.importorskip("tf2onnx", reason="the 'keras' extra is needed for Keras tests")
    report = _run("""
from anan_onnx.convert.keras_export import _import_tensorflow
_import_tensorflow()
""")
    assert report["env"]["TF_CPP_MIN_LOG_LEVEL"] is None
    assert report["levels"]["tf2onnx"] != 40 or report["levels"]["tensorflow"] != 40
