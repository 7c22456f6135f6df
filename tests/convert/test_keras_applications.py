"""Every CNN of keras.applications converts with the defaults and equals the literal loop.

The constructors are enumerated from the installed Keras (tests/fixtures/keras_apps.py), built with
random weights and raw logits at 224×224×3, saved, and converted by the CLI with the
default options, each step in a process of its own (bounded memory; the conversion's wall
time and peak memory are recorded). The ANAN model must equal the spec's literal per-image
loop on the base model (relative difference <= 1e-5 on a few seeded images) and differ
from the base model, both at the logits and at the modulated layer's own output (the value
the ANAN subgraph hands to the rest of the model). Where the base model cannot reproduce its
own logits (the loop with a no-op modulation already differs: random weights that amplify
float rounding, EfficientNetV2M/L) only the layer is compared. One member of each family
runs by default, the rest with ``-m slow``.
A few models are also converted with ``--signal post``, ``--batch 1``, ``--tunable`` and
``--layer`` (a Keras layer name); every conversion must name the target's Keras layer.

With ``ANAN_COMPAT_REPORT=FOLDER`` the figures go to ``FOLDER/keras_apps.json`` for
tools/keras_apps_report.py (docs/compatibility.md).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from fixtures.compat_report import write_records
from fixtures.keras_apps import CI_MEMBER, constructors, size

from anan_onnx import AnanParams, LiteralReference, read_metadata

pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras models")
pytest.importorskip("tf2onnx", reason="the 'keras' extra is needed for Keras models")
pytestmark = pytest.mark.keras

TOLERANCE = 1e-5  # relative to the largest output magnitude (logits are not probabilities)
N_IMAGES = 3
REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "tests" / "fixtures" / "keras_apps.py"  # run as a script, one model each
APPS = constructors()
RECORDS: dict[str, dict[str, object]] = {}

#: (model, CLI options, expected error or None) checked on top of the defaults.
OPTIONS = [
    ("VGG16", ["--signal", "post"], None),  # the only family with Conv -> Relu directly
    ("MobileNetV2", ["--signal", "post"], None),  # Conv -> BN -> ReLU6: BN folded, canonical
    ("MobileNetV3Small", ["--batch", "1"], None),
    ("EfficientNetB0", ["--tunable"], None),
    ("ResNet50", ["--tunable", "--layer", "conv2_block1_1_conv"], None),  # a Conv deep inside
]


def _param(name: str) -> object:
    slow = CI_MEMBER.get(APPS[name]) != name
    return pytest.param(name, marks=[pytest.mark.slow] if slow else [], id=name)


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """``saved(name)``: the path of the built ``.keras`` model, built once per session."""
    root = tmp_path_factory.mktemp("keras_apps")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            path = root / f"{name}.keras"
            command = [sys.executable, str(BUILDER), name, str(path)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=_env())
            assert done.returncode == 0, f"building {name} failed: {done.stderr[-2000:]}"
            cache[name] = path
        return cache[name]

    return get


@pytest.fixture(scope="session")
def converted(saved):
    """``converted(name, options)``: runs the CLI conversion once per session and option set."""
    cache: dict[tuple[str, tuple[str, ...]], dict[str, object]] = {}

    def get(name: str, options: tuple[str, ...] = ()) -> dict[str, object]:
        key = (name, options)
        if key not in cache:
            source = saved(name)
            tag = "_".join(o.strip("-") for o in options) or "defaults"
            out = source.with_name(f"{name}.{tag}.anan.onnx")
            cache[key] = dict(_convert(source, out, list(options)), anan=out)
        return cache[key]

    return get


def _write_report() -> None:
    """Writes the records so far (after each model: a long run may be stopped midway)."""
    if RECORDS:
        write_records("keras_apps.json", [RECORDS[k] for k in sorted(RECORDS)])


def test_every_family_has_a_ci_member():
    families = sorted(set(APPS.values()))
    missing = [f for f in families if f not in CI_MEMBER]
    assert not missing, f"new keras.applications families {missing}: add them to CI_MEMBER"
    for family, member in CI_MEMBER.items():
        assert member is None or APPS.get(member) == family, (family, member)
    assert len(APPS) >= 30, f"only {len(APPS)} constructors found: the enumeration broke"


@pytest.mark.parametrize("name", [_param(n) for n in APPS])
def test_application_matches_reference(converted, name):
    result = converted(name)
    record = dict(name=name, family=APPS[name], size=size(name), options="defaults")
    record.update({k: v for k, v in result.items() if k != "anan"})
    RECORDS[name] = record
    try:
        assert result["exit"] == 0, f"{name} refused: {result['message']}"
        record.update(_compare(Path(result["anan"])))
    finally:
        _write_report()
    _assert_exact(record)
    assert record["keras_layer"], f"the target's Keras layer was not recorded: {record}"


@pytest.mark.parametrize(("name", "options", "error"), OPTIONS, ids=lambda v: str(v))
def test_application_options(converted, name, options, error):
    result = converted(name, tuple(options))
    if error is not None:
        assert result["exit"] == 2 and error in str(result["message"]), result
        return
    assert result["exit"] == 0, f"{name} {options} refused: {result['message']}"
    _assert_exact(_compare(Path(result["anan"])))
    if "--layer" in options:
        meta = read_metadata(result["anan"])
        assert meta["target_keras_layer"] == options[options.index("--layer") + 1], meta


def _assert_exact(figures: dict[str, object]) -> None:
    """Equal to the literal loop and moved by the astrocytes: at the modulated layer always,
    and at the logits unless the base model itself is shown not to reproduce them (the
    no-op loop, computed when the logits differ, differs from the base beyond the
    tolerance: random weights that amplify float rounding, EfficientNetV2M/L)."""
    assert figures["layer_rel_diff"] <= TOLERANCE, figures
    assert figures["layer_anan_vs_base"] > 100 * TOLERANCE, f"the layer is the base's: {figures}"
    if float(figures.get("noop_diff", 0)) > TOLERANCE:
        return
    assert figures["rel_diff"] <= TOLERANCE, figures
    assert figures["anan_vs_base"] > 100 * TOLERANCE, f"ANAN output equals the base's: {figures}"


def _compare(anan: Path) -> dict[str, object]:
    """Relative difference to the literal loop, and how far ANAN moved the base output, for
    the logits and for the modulated layer's own output (the value the ANAN subgraph hands
    to the rest of the model: exact even where the rest amplifies rounding)."""
    base = anan.with_name(anan.name.replace(".anan.onnx", ".base.onnx"))
    anan_model = onnx.load(anan)
    meta = read_metadata(anan_model)
    params = AnanParams.from_strings(meta)
    side = int(meta["height"])
    pixels = np.random.default_rng(0).integers(0, 256, (N_IMAGES, side, side, 3))
    x = pixels.astype(np.float32)  # keras.applications models take 0–255 pixels
    layer = _handed_over(anan_model)
    ours, ours_layer = _run(_with_output(anan_model, layer), x)
    del anan_model
    base_model = _with_output(onnx.load(base), layer)
    ref = LiteralReference(base_model, meta["target_layer"], params).run(x)
    keep = ~ref.near_tie
    assert keep.sum() >= 2, f"near-ties in {ref.near_tie}"
    plain, plain_layer = _run(base_model, x)
    figures = dict(
        target=meta["target_layer"],
        keras_layer=meta.get("target_keras_layer", ""),
        **_relative(ours[keep], ref.outputs[0][keep], plain[keep]),
        **_relative(ours_layer[keep], ref.outputs[-1][keep], plain_layer[keep], "layer_"),
        compared=int(keep.sum()),
    )
    if figures["rel_diff"] > TOLERANCE:  # is the reference itself reproducible at 1e-5?
        noop = LiteralReference(base_model, figures["target"], _no_op(params)).run(x)
        scale = np.abs(ref.outputs[0][keep]).max()
        figures["noop_diff"] = float(np.abs(noop.outputs[0][keep] - plain[keep]).max() / scale)
    return figures


def _relative(ours, expected, plain, prefix: str = "") -> dict[str, float]:
    """``rel_diff`` (ours against the literal loop) and ``anan_vs_base`` (how far ANAN moved
    the base model's value), both relative to the largest expected magnitude."""
    scale = np.abs(expected).max()
    return {
        f"{prefix}rel_diff": float(np.abs(ours - expected).max() / scale),
        f"{prefix}anan_vs_base": float(np.abs(ours - plain).max() / scale),
    }


def _handed_over(model: onnx.ModelProto) -> str:
    """The one value the ANAN subgraph (nodes ``anan/*``) hands to the rest of the model; the
    rewrite keeps the base model's name for it, so the base model has it too."""
    ours = [n for n in model.graph.node if n.name.startswith("anan/")]
    made = {o for n in ours for o in n.output}
    read = {i for n in model.graph.node if not n.name.startswith("anan/") for i in n.input}
    crossing = sorted(made & (read | {o.name for o in model.graph.output}))
    assert len(crossing) == 1, f"the ANAN subgraph hands over {crossing}, not one value"
    return crossing[0]


def _with_output(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """``model`` with the value ``name`` as its last graph output."""
    model.graph.output.append(
        onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None)
    )
    return model


def _run(model: onnx.ModelProto, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first and the last output of ``model`` over ``x`` (one image a run where the
    batch is fixed, as ``--batch 1`` makes it; all at once otherwise)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed, batch = session.get_inputs()[0].name, session.get_inputs()[0].shape[0]
    per_run = batch if isinstance(batch, int) else len(x)
    runs = [session.run(None, {feed: x[i : i + per_run]}) for i in range(0, len(x), per_run)]
    first, last = (np.concatenate([r[k] for r in runs]).astype(np.float64) for k in (0, -1))
    return first, last


def _no_op(params: AnanParams) -> AnanParams:
    """``params`` with amounts that leave every weight as it is.

    The literal loop with these differs from the base model only in its float path (the
    Conv reads its weights from an input): if even that exceeds the tolerance, the model
    amplifies rounding and no comparison at 1e-5 can be made on it.
    """
    if params.rule == "multiplicative":
        return dataclasses.replace(params, a=1.0, b=0.0)
    return dataclasses.replace(params, a=0.0, b=0.0, idle=0.0)


#: Runs the CLI and, at exit, writes its peak resident memory (VmHWM) to the file named by
#: its first argument. ``ru_maxrss`` cannot serve: Linux carries it over from the forking
#: (test) process into the child, so small conversions would report the test's size.
_PEAK = (
    "import atexit, runpy, sys\n"
    "out = sys.argv.pop(1)\n"
    "def peak():\n"
    "    lines = [l for l in open('/proc/self/status') if l.startswith('VmHWM')]\n"
    "    open(out, 'w').write(lines[0].split()[1] if lines else '')\n"
    "atexit.register(peak)\n"
    "runpy.run_module('anan_onnx', run_name='__main__', alter_sys=True)\n"
)


def _convert(source: Path, out: Path, options: list[str]) -> dict[str, object]:
    """Runs ``anan-onnx convert``; exit status, message, wall and CPU time, peak memory."""
    peak = out.with_name(out.name + ".peak")
    command = [sys.executable, "-c", _PEAK, str(peak), "convert", str(source), "-o", str(out)]
    logs = out.with_name(out.name + ".log")
    start = time.perf_counter()
    with open(logs, "wb") as log:
        process = subprocess.Popen([*command, *options], stdout=log, stderr=log, cwd=REPO,
                                   env=_env())  # fmt: skip
        status, usage, seen = _wait_watching_peak(process.pid)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - start
    lines = logs.read_text(errors="replace").strip().splitlines()
    kib = peak.read_text().strip() if peak.exists() else str(seen or "")
    return dict(
        exit=process.returncode,
        message=lines[-1].removeprefix("anan-onnx: error: ") if lines else "",
        seconds=round(seconds, 1),
        cpu_s=round(usage.ru_utime + usage.ru_stime, 1),  # what a busy machine does not inflate
        peak_mib=round(int(kib) / 1024) if kib.isdigit() else None,
        onnx_mib=round(out.stat().st_size / 2**20, 1) if out.exists() else None,
    )


def _wait_watching_peak(pid: int) -> tuple[int, os.struct_rusage, int]:
    """Waits for ``pid``: its wait status, its own rusage, and the largest VmHWM (KiB) seen.

    The child writes its exact peak at exit; the polled value is what is left when it cannot
    (killed by the OOM killer, SIGKILL skips atexit), so such a row still shows how far it got.
    """
    seen = 0
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage, seen
        seen = max(seen, _vm_hwm(pid))
        time.sleep(0.5)


def _vm_hwm(pid: int) -> int:
    """The peak resident memory (KiB) of a running process; 0 once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            lines = [line for line in status if line.startswith("VmHWM")]
    except OSError:
        return 0
    return int(lines[0].split()[1]) if lines else 0


def _env() -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
