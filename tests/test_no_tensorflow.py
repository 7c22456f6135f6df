"""Inference needs no TensorFlow: a subprocess where importing it fails still predicts."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import onnx

from anan_onnx import AnanParams, convert_model
from anan_onnx.install_hint import install_hint
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

from blocked_imports import TENSORFLOW, run_without


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return run_without(TENSORFLOW, code, timeout=120)


def test_session_and_cli_work_without_tensorflow(tmp_path):
    conversion = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(a=1.5))
    model = tmp_path / "m.anan.onnx"
    onnx.save(conversion.anan, model)
    x = random_batch(VARIANTS["plain"], 3)
    np.save(tmp_path / "x.npy", x)
    result = _run(f"""
        import json, numpy as np
        try:
            import tensorflow
            raise SystemExit("tensorflow was importable")
        except ImportError:
            pass
        import anan_onnx
        from anan_onnx.cli import main
        sess = anan_onnx.Session({str(model)!r})
        probs = sess.predict(np.load({str(tmp_path / "x.npy")!r}))
        print(json.dumps(probs.tolist()))
        code = main(["predict", {str(model)!r}, {str(tmp_path / "x.npy")!r}])
        loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx")]
        # start-up cost: inference needs neither the converter (onnx, onnx-ir) nor sympy
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"onnx", "onnx_ir", "sympy"}})
        print(json.dumps({{"code": code, "loaded": loaded, "heavy": heavy}}))
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    probs = np.array(json.loads(lines[0]))
    assert probs.shape == (3, 2)
    status = json.loads(lines[-1])
    assert status == {"code": 0, "loaded": [], "heavy": []}


def test_converting_keras_without_tensorflow_says_what_to_install(tmp_path):
    fake = tmp_path / "model.keras"
    import zipfile

    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("config.json", "{}")
    result = _run(f"""
        from anan_onnx.cli import main
        raise SystemExit(main(["convert", {str(fake)!r}, "-o", {str(tmp_path / "o.onnx")!r}]))
    """)
    assert result.returncode == 2
    # the command that fits this installation: a source checkout (pip install -e ...)
    assert f"{install_hint('keras')}, or pass an .onnx model" in result.stderr
    assert "Traceback" not in result.stderr
