"""The sidecar (MODEL.anan.json): a model's metadata for bindings that cannot read it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from anan_onnx import AnanError, AnanParams, convert_model, load_base
from anan_onnx.metadata import read_metadata, write_metadata
from anan_onnx.sidecar import FORMAT, sidecar, sidecar_path, write_sidecar
from anan_onnx.testing import VARIANTS, build_cnn

PARAMS = AnanParams(k=5, mu=3, a=1.2, b=0.25, signal="post", reduce="max")


def _strict_json(text: str) -> object:
    """Parses JSON refusing NaN/Infinity (which Python's json would otherwise accept)."""

    def refuse(name: str) -> object:
        raise ValueError(f"non-finite number {name} in the sidecar")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture
def base_path(tmp_path: Path) -> Path:
    """A generated NCHW CNN saved as ONNX, then loaded as anan-onnx loads a base model
    (which records the preprocessing metadata)."""
    raw = tmp_path / "raw.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), raw)
    path = tmp_path / "cnn.base.onnx"
    onnx.save(load_base(raw, scale=1 / 127.5, offset=-1.0), path)
    return path


def _convert(base_path: Path, out: Path, **kwargs: object) -> Path:
    conversion = convert_model(onnx.load(base_path), PARAMS, **kwargs)  # type: ignore[arg-type]
    onnx.save(conversion.anan, out)
    return out


def test_document_of_a_converted_model(base_path: Path, tmp_path: Path) -> None:
    model = _convert(base_path, tmp_path / "cnn.anan.onnx")
    doc = sidecar(model)
    assert doc["format"] == FORMAT == "anan-sidecar/1"
    assert doc["model"] == "cnn.anan.onnx"
    assert doc["metadata"] == read_metadata(onnx.load(model))
    assert doc["metadata"]["k"] == "5" and doc["metadata"]["signal"] == "post"
    assert doc["params"] == PARAMS.as_dict()
    assert isinstance(doc["params"]["k"], int) and isinstance(doc["params"]["a"], float)
    assert doc["preprocess"] == {
        "layout": "NCHW",
        "height": 11,
        "width": 11,
        "channels": 3,
        "scale": 1 / 127.5,
        "offset": -1.0,
        "channel_order": "RGB",
        "resize": "bilinear",
        "aspect": "stretch",
        "preprocess_from": {
            "layout": "read",
            "size": "read",
            "channels": "read",
            "scale": "given",
            "offset": "given",
            "channel_order": "assumed",
            "resize": "assumed",
            "aspect": "assumed",
        },
    }
    assert doc["classes"] is None
    assert doc["inputs"] == [{"name": "x", "shape": ["batch", 3, 11, 11], "dtype": "float32"}]
    assert doc["outputs"] == [{"name": "probs", "shape": ["batch", 2], "dtype": "float32"}]


def test_tunable_parameters_are_not_listed_as_inputs(base_path: Path, tmp_path: Path) -> None:
    """anan_k, anan_mu ... have defaults: callers feed only the image, as onnxruntime says."""
    model = _convert(base_path, tmp_path / "t.anan.onnx", tunable=True)
    graph_inputs = [i.name for i in onnx.load(model).graph.input]
    assert any(name.startswith("anan_") for name in graph_inputs)
    assert [i["name"] for i in sidecar(model)["inputs"]] == ["x"]


def test_fixed_batch_and_base_model(base_path: Path, tmp_path: Path) -> None:
    model = _convert(base_path, tmp_path / "b.anan.onnx", batch=4)
    assert sidecar(model)["inputs"][0]["shape"] == [4, 3, 11, 11]
    base = sidecar(base_path)
    assert base["params"] is None  # a base model carries no ANAN parameters
    assert base["preprocess"]["layout"] == "NCHW"


def test_classes_from_metadata(base_path: Path, tmp_path: Path) -> None:
    proto = onnx.load(_convert(base_path, tmp_path / "c.anan.onnx"))
    write_metadata(proto, {"classes": json.dumps(["cat", "dog"])})
    assert sidecar(proto, name="c.anan.onnx")["classes"] == ["cat", "dog"]
    for bad in ("cat,dog", '{"0": "cat"}', "[1, 2]"):
        write_metadata(proto, {"classes": bad})
        with pytest.raises(AnanError, match="anan.classes"):
            sidecar(proto)


def test_model_without_preprocessing_keys(tmp_path: Path) -> None:
    model = tmp_path / "bare.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), model)
    doc = sidecar(model)
    assert doc["preprocess"] is None and doc["params"] is None and doc["metadata"] == {}


def test_write_sidecar_is_strict_json_beside_the_model(base_path: Path, tmp_path: Path) -> None:
    model = _convert(base_path, tmp_path / "w.anan.onnx")
    out = write_sidecar(model)
    assert out == tmp_path / "w.anan.json"
    assert _strict_json(out.read_text()) == sidecar(model)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "cnn.base.onnx",
        "raw.onnx",
        "w.anan.json",
        "w.anan.onnx",
    ]  # no temporary file left behind


def test_non_finite_metadata_is_refused_and_nothing_written(
    base_path: Path, tmp_path: Path
) -> None:
    proto = onnx.load(_convert(base_path, tmp_path / "n.anan.onnx"))
    for key, value in (("a", "nan"), ("scale", "inf")):
        bad = onnx.ModelProto()
        bad.CopyFrom(proto)
        write_metadata(bad, {key: value})
        path = tmp_path / f"bad_{key}.anan.onnx"
        onnx.save(bad, path)
        with pytest.raises(AnanError, match="finite"):
            write_sidecar(path)
        assert not sidecar_path(path).exists()


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("out/catsdogs.anan.onnx", "out/catsdogs.anan.json"),
        ("model.onnx", "model.anan.json"),
        ("model.ort", "model.anan.json"),
        ("weird.name.onnx", "weird.name.anan.json"),
    ],
)
def test_sidecar_path(model: str, expected: str) -> None:
    assert sidecar_path(model) == Path(expected)


def test_needs_no_tensorflow(base_path: Path, tmp_path: Path) -> None:
    model = _convert(base_path, tmp_path / "x.anan.onnx")
    code = (
        "import sys; from anan_onnx.sidecar import write_sidecar; "
        f"write_sidecar({str(model)!r}); "
        "print([m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf2onnx')])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert np.isclose(_strict_json((tmp_path / "x.anan.json").read_text())["params"]["b"], 0.25)


def test_per_channel_preprocessing_is_a_list_per_channel(tmp_path: Path) -> None:
    """The schema docs/preprocessing.md gives the web page and Node: one number per
    channel as a JSON list, in the model's channel order, with the channel order named."""
    from anan_onnx.convert.preprocessing import PreprocessRequest

    raw = tmp_path / "raw.onnx"
    onnx.save(build_cnn(VARIANTS["plain"]), raw)
    request = PreprocessRequest(preset="caffe", resize="nearest", aspect="crop")
    path = tmp_path / "caffe.base.onnx"
    onnx.save(load_base(raw, preprocess=request), path)
    pre = _strict_json(write_sidecar(path).read_text())["preprocess"]
    assert pre["scale"] == 1.0
    assert pre["offset"] == [-103.939, -116.779, -123.68]  # B, G, R
    assert (pre["channel_order"], pre["resize"], pre["aspect"]) == ("BGR", "nearest", "crop")
    assert pre["preprocess_from"]["channel_order"] == "given"
    assert read_metadata(onnx.load(path))["offset"] == "-103.939,-116.779,-123.68"
