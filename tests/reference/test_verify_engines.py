"""verify --engine: the ANAN model on another engine, with a deployment's settings, against
the literal loop, PASS/FAIL per image (anan_onnx.runtime.engines, docs/engines.md)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx import AnanParams, convert_model
from anan_onnx.errors import AnanError
from anan_onnx.reference.verify import verify_models
from anan_onnx.runtime.engines import open_engine
from anan_onnx.testing import VARIANTS, build_cnn, random_batch

N = 6


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, np.ndarray]:
    """The generated CNN converted, both models saved, and inputs the astrocytes act on."""
    folder = tmp_path_factory.mktemp("engines")
    conversion = convert_model(
        build_cnn(VARIANTS["plain"], seed=3),
        AnanParams(),
        extra_metadata={"base_model": "plain.base.onnx"},
    )
    anan, base = folder / "plain.anan.onnx", folder / "plain.base.onnx"
    onnx.save(conversion.anan, anan)
    onnx.save(conversion.base, base)
    return anan, base, random_batch(VARIANTS["plain"], N, seed=4)


def test_reference_engine_passes_per_image(pair) -> None:
    anan, base, x = pair
    report = verify_models(anan, base, inputs=x, engine="reference")
    assert report.passed, report.summary()
    assert [r.status for r in report.per_image] == ["PASS"] * N
    assert [r.index for r in report.per_image] == list(range(N))
    assert report.engine == "reference (f32)"


def test_an_engine_that_drops_the_modulation_fails(pair, monkeypatch) -> None:
    """An engine returning the base CNN's outputs (the astrocytes ignored) fails on every
    image the astrocytes change."""
    anan, base, x = pair

    class BaseInstead:
        name, precision = "reference", "f32"

        def run(self, model, batch):
            return open_engine("reference").run(base, batch)

        def close(self) -> None:
            pass

    monkeypatch.setattr("anan_onnx.runtime.engines.open_engine", lambda *a, **k: BaseInstead())
    report = verify_models(anan, base, inputs=x, engine="reference")
    assert not report.passed
    assert {r.status for r in report.per_image} == {"FAIL"}
    assert min(r.max_abs_diff for r in report.per_image) > 1e-4


def test_precision_only_where_the_engine_has_one(pair) -> None:
    anan, base, x = pair
    with pytest.raises(AnanError, match="float32 only"):
        verify_models(anan, base, inputs=x, engine="tract", precision="bf16")
    with pytest.raises(AnanError, match="unknown engine"):
        verify_models(anan, base, inputs=x, engine="tensorrt")


def test_litert_without_its_environment_says_how_to_make_it(pair, monkeypatch, tmp_path) -> None:
    anan, base, x = pair
    monkeypatch.setenv("ANAN_LITERT_PYTHON", str(tmp_path / "missing" / "python"))
    with pytest.raises(AnanError, match="tools/litert_venv.sh"):
        verify_models(anan, base, inputs=x, engine="litert")


def test_cli_prints_a_verdict_per_image(pair) -> None:
    anan, _, _ = pair
    proc = subprocess.run(
        [sys.executable, "-m", "anan_onnx", "verify", str(anan), "--engine", "reference",
         "-n", "3"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[:3]] == ["image 0", "image 1", "image 2"]
    assert all(": PASS class" in line for line in lines[:3])
    assert lines[-1].startswith("PASS") and lines[-1].endswith("engine reference (f32)")


@pytest.mark.integration
def test_openvino_default_precision_is_caught(pair) -> None:
    """OpenVINO pinned to float32 is exact; in bf16 (its CPU default where the CPU has
    AMX/AVX512-BF16) verify fails, image by image. On a CPU without bf16 OpenVINO runs the
    bf16 request in float32, and then verify must pass and say so."""
    anan, base, x = pair
    pinned = verify_models(anan, base, inputs=x, engine="openvino", precision="f32")
    assert pinned.passed and pinned.engine == "openvino (f32)", pinned.summary()
    reduced = verify_models(anan, base, inputs=x, engine="openvino", precision="bf16")
    if reduced.engine == "openvino (bf16)":
        assert not reduced.passed
        assert "FAIL" in {r.status for r in reduced.per_image}
    else:
        assert reduced.engine == "openvino (f32)" and reduced.passed
    default = verify_models(anan, base, inputs=x, engine="openvino")
    assert default.passed == (default.engine == "openvino (f32)"), default.summary()


@pytest.mark.integration
@pytest.mark.parametrize("engine", ["tract", pytest.param("litert", marks=pytest.mark.litert)])
def test_f32_engines_pass(pair, engine: str) -> None:
    anan, base, x = pair
    report = verify_models(anan, base, inputs=x, engine=engine)
    assert report.passed, report.summary()
    assert len(report.per_image) == N


@pytest.mark.litert
@pytest.mark.parametrize("batch,simplify", [(4, False), (1, True), (None, True)])
def test_litert_runs_the_papers_cnn_with_signal_post(tmp_path, batch, simplify) -> None:
    """The paper's base CNN (32-64-128) with signal=post: onnx2tf once lowered its 4-D
    branch pairs and its step-1 gain arithmetic on constants to tensors XNNPACK could not
    reshape (docs/engines.md); now every image is exact on LiteRT and the astrocytes act."""
    from anan_onnx import convert_file
    from anan_onnx.testing import build_base_cnn

    source = tmp_path / "cnn.onnx"
    onnx.save(build_base_cnn(32, 3, (32, 64, 128), seed=2), source)
    anan = tmp_path / "cnn.anan.onnx"
    params = AnanParams(signal="post")
    conversion = convert_file(source, anan, params, batch=batch, simplify=simplify)
    base = tmp_path / "cnn.base.onnx"
    onnx.save(conversion.base, base)
    x = np.random.default_rng(5).random((4, 32, 32, 3), dtype=np.float32)
    report = verify_models(anan, base, inputs=x, engine="litert")
    assert report.passed, report.summary()
    ort, step = open_engine("ort"), batch or len(x)
    ours = np.concatenate([ort.run(anan, x[i : i + step]) for i in range(0, len(x), step)])
    moved = np.abs(ours - ort.run(base, x)).max()
    assert moved > 1e-4  # the loop (which the engine matched) differs from the base too
