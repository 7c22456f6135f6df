"""The ``--target web`` export of the bundled model runs exactly in onnxruntime-web (WASM and
WebGPU in headless Chromium, anan_onnx.conformance.web), with the sidecar it wrote.
Fails, does not skip, without Playwright and Chromium (tests/conftest.py: web_browser)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx import LiteralReference
from anan_onnx.metadata import read_metadata
from anan_onnx.params import AnanParams
from anan_onnx.reference.verify import random_inputs
from anan_onnx.runtime.session import Session

from process_helpers import tail


@pytest.mark.parametrize("backend", ["wasm", "webgpu"])
def test_web_export_is_exact_in_the_browser(
    anan_model: Path, cli, web_browser, tmp_path: Path, backend: str
) -> None:
    out = tmp_path / "web"
    proc = cli("export", str(anan_model), "--target", "web", "-o", str(out))
    assert proc.returncode == 0, tail(proc)
    exported = out / anan_model.name
    document = json.loads((out / "model.anan.json").read_text())
    meta = read_metadata(onnx.load(anan_model))
    assert document["metadata"]["export_target"] == "web"
    assert document["preprocess"]["scale"] == pytest.approx(float(meta["scale"]))

    images = random_inputs(Session(anan_model), 3, seed=5)
    base = onnx.load(anan_model.with_name(meta["base_model"]))
    ref = LiteralReference(base, meta["target_layer"], AnanParams.from_strings(meta)).run(images)
    base_out = Session(base).predict(images)
    got = web_browser.run(exported, images, backend)
    keep = ~ref.near_tie
    assert np.abs(got[keep] - ref.outputs[0][keep]).max() <= 1e-5
    changed = np.abs(ref.outputs[0] - base_out).reshape(3, -1).max(axis=1) > 1e-4
    assert (changed & keep).any(), "the images must exercise the astrocytes"
    moved = np.abs(got - base_out).reshape(3, -1).max(axis=1) > 1e-4
    assert moved[changed & keep].all(), f"web-{backend} returned the base model's output"
