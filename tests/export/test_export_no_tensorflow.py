"""``anan-onnx export`` needs no TensorFlow: every target runs in a process where importing
it fails (the export is deployment, after conversion)."""

from __future__ import annotations

import json
from pathlib import Path

from blocked_imports import TENSORFLOW, run_without


def test_every_target_without_tensorflow(generated_model: Path, tmp_path: Path) -> None:
    proc = run_without(
        TENSORFLOW,
        f"""
        import json, sys
        from anan_onnx.cli import main
        codes = [main(["export", {str(generated_model)!r}, "--target", t,
                       "-o", {str(tmp_path)!r} + "/" + t]) for t in ("web", "mobile", "ort")]
        loaded = [m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf2onnx")]
        print(json.dumps({{"codes": codes, "loaded": loaded}}))
    """,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"codes": [0, 0, 0], "loaded": []}
    assert (tmp_path / "mobile" / "cnn.anan.ort").is_file()
