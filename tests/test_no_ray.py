"""Ray is optional: without ``--engine ray`` nothing imports it, and ``--engine ray`` without
Ray installed is one line saying what to install."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import onnx
from PIL import Image

from anan_onnx.install_hint import install_hint
from anan_onnx.metadata import write_metadata
from anan_onnx.runtime.inputs import InputSpec
from anan_onnx.testing import VARIANTS, build_cnn

from blocked_imports import run_without


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return run_without(("ray", "pyarrow"), code, timeout=300)


def _setup(tmp_path: Path) -> tuple[Path, Path]:
    variant = VARIANTS["plain"]
    model = build_cnn(variant, head="sigmoid", seed=1)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    channels, size = (shape[0], shape[1]) if shape[0] in (1, 3) else (shape[2], shape[0])
    layout = "NCHW" if shape[0] in (1, 3) else "NHWC"
    write_metadata(model, InputSpec(layout, size, size, channels).to_metadata())
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for c in ("a", "b"):
            folder = tmp_path / "data" / split / c
            folder.mkdir(parents=True)
            for i in range(3):
                px = rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
                Image.fromarray(px).save(folder / f"{i}.png")
    return path, tmp_path / "data"


def test_local_engine_never_imports_ray_and_ray_engine_says_what_to_install(tmp_path):
    model, data = _setup(tmp_path)
    out = tmp_path / "out"
    result = _run(f"""
        import json, sys
        from anan_onnx.cli import main
        grid = ["--k", "2", "--mu", "1", "--a", "1.5", "--b", "0.3", "--no-progress"]
        code = main(["tune", {str(model)!r}, {str(data)!r}, *grid, "-o", {str(out)!r}])
        loaded = sorted({{m.split(".")[0] for m in sys.modules}} & {{"ray", "pyarrow"}})
        print(json.dumps({{"code": code, "loaded": loaded}}))
    """)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {"code": 0, "loaded": []}
    assert (out / "best.json").is_file()
    for argv in (
        ["tune", str(model), str(data), "--engine", "ray", "-o", str(tmp_path / "ray")],
        ["predict", str(model), str(data), "--engine", "ray", "--output", str(tmp_path / "p")],
    ):
        result = _run(f"""
            from anan_onnx.cli import main
            raise SystemExit(main({argv!r}))
        """)
        assert result.returncode == 2, result.stdout
        lines = result.stderr.strip().splitlines()
        # the install command that fits this installation (a source checkout: pip install -e)
        assert len(lines) == 1 and install_hint("ray") in lines[0], result.stderr
    assert not (tmp_path / "ray").exists() and not (tmp_path / "p").exists()
