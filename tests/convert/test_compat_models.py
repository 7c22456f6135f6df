"""Real-world CNNs in: exact results or clear refusals.

Every supported model kind (tests/fixtures/compat_kinds.py: Keras 2.15, 3.1, 3.6 and the
installed Keras 3; PyTorch's two ONNX exporters; tf2onnx; keras2onnx- and CNTK-era ONNX;
unsorted graphs) is converted with the default parameters and must agree with the spec's
literal per-image loop: 100 % of predictions, max abs diff <= 1e-5. A few are also checked
with ``signal=post`` and ``rule=additive``. Every unsupported kind is refused by the CLI with
one line, exit status 2, the input untouched and no output written.

With ``ANAN_COMPAT_REPORT=FOLDER`` the figures and messages are written to
``FOLDER/compat_models.json`` for tools/compat_report.py (docs/compatibility.md).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from fixtures.compat_kinds import REFUSED, SUPPORTED, Kind
from fixtures.compat_report import write_records

from anan_onnx import AnanParams, Session, convert_file, convert_model, verify_models
from anan_onnx.cli import main
from anan_onnx.reference.verify import random_inputs
from anan_onnx.runtime.labels import labels_agree

N_IMAGES = 16
TOLERANCE = 1e-5
KINDS = {kind.id: kind for kind in SUPPORTED + REFUSED}
RECORDS: list[dict[str, object]] = []


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def needs(kind: Kind) -> None:
    if kind.keras:
        pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras models")
        pytest.importorskip("tf2onnx", reason="the 'keras' extra is needed for Keras models")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compat")


@pytest.fixture(scope="module", autouse=True)
def report_file():
    """Writes the records of this module for tools/compat_report.py when asked to."""
    yield
    write_records("compat_models.json", RECORDS)


@pytest.fixture(scope="module")
def converted(root):
    """Converts a kind once (CLI defaults, via convert_file); returns (result, anan, base)."""
    cache: dict[str, tuple] = {}

    def get(kind: Kind):
        if kind.id not in cache:
            source = kind.make(root)
            before = digest(source)
            out = root / f"{kind.id}.anan.onnx"
            result = convert_file(source, out, AnanParams())
            assert digest(source) == before, "the input file changed"
            cache[kind.id] = (result, out, root / f"{kind.id}.base.onnx")
        return cache[kind.id]

    return get


def record(kind: Kind, params: str, **fields: object) -> None:
    RECORDS.append(
        {"id": kind.id, "group": kind.group, "what": kind.what, "params": params, **fields}
    )


def check_report(report, kind: Kind, params: str, target: str, changed: float) -> None:
    record(
        kind,
        params,
        result="supported",
        target=target,
        images=report.images,
        compared=report.compared,
        agreeing=report.agreeing,
        near_ties=report.near_ties,
        max_abs_diff=report.max_abs_diff,
        anan_vs_base=changed,
    )
    assert report.passed, report.summary()
    assert report.agreement == 1.0 and report.max_abs_diff <= TOLERANCE, report.summary()
    assert report.compared >= N_IMAGES - 2, report.summary()


def astrocyte_effect(anan, base, n: int = N_IMAGES) -> float:
    """Largest |ANAN - base| over random inputs: > 0 shows the astrocytes did something."""
    session = Session(anan)
    x = random_inputs(session, n)
    return float(np.abs(session.predict(x) - Session(base).predict(x)).max())


@pytest.mark.parametrize("kind", SUPPORTED, ids=[k.id for k in SUPPORTED])
def test_supported_kind_matches_reference(kind, converted):
    needs(kind)
    result, anan, base = converted(kind)
    report = verify_models(anan, base, n=N_IMAGES, seed=0)
    changed = astrocyte_effect(anan, base)
    check_report(report, kind, "defaults", result.target_layer, changed)
    assert changed > 1e-6, "the astrocytes changed nothing: the check would be vacuous"


VARIANTS = [
    ("keras31_cf_keras", "signal=post"),
    ("keras3_current_res_keras", "rule=additive"),
    ("keras215_seq_h5", "rule=additive"),
    ("tf2onnx_onnx", "rule=additive"),
    ("keras215_cf_h5", "signal=post"),
    ("torch_dynamo_opset18", "signal=post"),
    ("torch_torchscript_opset9", "rule=additive"),
    ("keras2onnx_style", "signal=post"),  # a kernel dead on some images (exact 0 kept)
    ("cntk_style", "rule=additive"),
]


@pytest.mark.parametrize(("kind_id", "option"), VARIANTS, ids=[f"{k}-{o}" for k, o in VARIANTS])
def test_options_on_real_models(kind_id, option, converted):
    kind = KINDS[kind_id]
    needs(kind)
    result, _, _ = converted(kind)
    key, value = option.split("=")
    params = AnanParams(**{key: value})
    conversion = convert_model(result.base, params)
    report = verify_models(conversion.anan, conversion.base, n=N_IMAGES, seed=1)
    changed = astrocyte_effect(conversion.anan, conversion.base)
    check_report(report, kind, option, conversion.target_layer, changed)


def test_signal_post_watches_the_activation_after_a_batchnorm(converted):
    """Conv2D -> BatchNormalization -> Activation: the BatchNormalization is folded into the
    target Conv (its canonical form), so the activation follows it and signal=post applies."""
    kind = KINDS["keras3_current_seq_keras"]
    needs(kind)
    result, _, _ = converted(kind)
    conversion = convert_model(result.base, AnanParams(signal="post"))
    report = verify_models(conversion.anan, conversion.base, n=N_IMAGES, seed=1)
    changed = astrocyte_effect(conversion.anan, conversion.base)
    check_report(report, kind, "signal=post", conversion.target_layer, changed)
    assert changed > 1e-6, "the astrocytes changed nothing: the check would be vacuous"


@pytest.mark.keras
def test_batchnorm_model_equals_the_keras_procedure(converted, root):
    """Conv2D -> BatchNormalization -> Activation: the astrocytes watch what the activation
    receives (the BatchNormalization's output: the target Conv in canonical form), as the
    paper's procedure in Keras does when it watches that layer (set_weights on the Conv2D;
    under the multiplicative rule scaling the layer's kernel scales the folded one alike)."""
    kind = KINDS["keras3_current_seq_keras"]
    needs(kind)
    import keras

    result, anan, _ = converted(kind)
    model = keras.models.load_model(kind.make(root), compile=False)
    conv = next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D))
    norm = model.layers[model.layers.index(conv) + 1]
    assert isinstance(norm, keras.layers.BatchNormalization)
    assert result.target_layer == f"{conv.name}/convolution"
    ops = [n.op_type for n in result.base.graph.node]
    assert ops[ops.index("Conv") : ops.index("Conv") + 2] == ["Conv", "Relu"]  # BN folded in
    params = AnanParams()
    x = np.random.default_rng(5).random((12, 16, 16, 3), dtype=np.float32)
    expected = _keras_literal_loop(keras, model, conv, norm, params, x)
    ours = Session(anan).predict(x)
    assert labels_agree(ours, expected).all()
    assert np.abs(ours - expected).max() <= TOLERANCE
    assert np.abs(expected - np.asarray(model(x))).max() > 1e-4, "vacuous: nothing changed"


def _keras_literal_loop(
    keras, model, conv, watched, params: AnanParams, x: np.ndarray
) -> np.ndarray:
    """Back up the kernel, k passes watching ``watched``'s output, scale kernels, predict,
    restore."""
    watch = keras.Model(model.inputs[0], watched.output)
    w0 = conv.get_weights()[0]  # (kh, kw, C, O), no bias
    outputs = []
    for image in x:
        w = w0.copy()
        r = np.zeros(w.shape[-1])
        for _ in range(params.k):
            conv.set_weights([w])
            s = np.asarray(watch(image[None]))[0].mean(axis=(0, 1))
            r = np.where(np.abs(r) == params.mu, r, r + np.where(s > 0, 1, -1))
            w[..., r == params.mu] *= np.float32(params.a)
            w[..., r == -params.mu] *= np.float32(1 - params.b)
        conv.set_weights([w])
        outputs.append(np.asarray(model(image[None]))[0])
    conv.set_weights([w0])
    return np.stack(outputs)


REFUSAL_REASONS = {
    "runtime_weights_qdq": "computed at run time",
    "qlinearconv": "found QLinearConv: quantized convolutions are not supported",
    "convinteger": "found ConvInteger: quantized convolutions are not supported",
    "two_inputs_onnx": "the model has 2 inputs (x, mask)",
    "two_inputs_keras": "has 2 inputs",
    "conv3d": "a 3-D convolution model?",
    "conv1d_onnx": "a 1-D convolution model?",
    "conv1d_keras": "not 1-D or 3-D convolution models",
    "float16": "float16 weights",
    "batch_bound": "fixed batch size of 2 that its graph depends on",
}


@pytest.mark.parametrize("kind", REFUSED, ids=[k.id for k in REFUSED])
def test_unsupported_kind_is_refused(kind, root, capsys):
    needs(kind)
    source = kind.make(root)
    before = digest(source)
    out = root / "refused" / f"{kind.id}.anan.onnx"
    code = main(["convert", str(source), "-o", str(out)])
    lines = capsys.readouterr().err.strip().splitlines()
    message = lines[-1].removeprefix("anan-onnx: error: ").replace(f"{root}/", "")
    record(kind, "defaults", result="refused", message=message)
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith("anan-onnx: error: ") and "Traceback" not in lines[0]
    assert REFUSAL_REASONS[kind.id] in message
    assert digest(source) == before
    assert not out.parent.exists() or not list(out.parent.iterdir()), "output written"
