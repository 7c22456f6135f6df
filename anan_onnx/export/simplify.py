"""Graph simplification for export: onnxslim or onnx-simplifier (``onnxsim``), or none.

Both fold constants (with a fixed batch: the batch-axis shape arithmetic) and remove
redundant nodes; the result is checked exact against the input model by ``check.py``
like every export. ``auto`` takes the simplifier that measured best on the bundled model
(docs/deployment.md, "Simplifiers compared": onnxsim, fewer nodes and the lower batch-1
latency) when it is installed, else the other one, else none.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io

import onnx

from anan_onnx.errors import AnanError, first_line
from anan_onnx.install_hint import install_hint

__all__ = ["SIMPLIFIERS", "resolve", "simplify"]

#: Choices of ``--simplifier``; ``auto`` resolves to one of the others.
SIMPLIFIERS = ("auto", "onnxsim", "onnxslim", "none")
#: ``auto``'s order of preference (the measurement in docs/deployment.md).
PREFERENCE = ("onnxsim", "onnxslim")
#: the extra that installs each simplifier (the pip command: install_hint)
_EXTRA = {"onnxsim": "onnxsim", "onnxslim": "simplify"}


def resolve(name: str) -> str:
    """The simplifier ``name`` stands for: ``auto`` becomes the preferred installed one.

    Raises:
        AnanError: an unknown name, or a named simplifier that is not installed.
    """
    if name not in SIMPLIFIERS:
        raise AnanError(f"unknown simplifier {name!r}: pick one of {', '.join(SIMPLIFIERS)}")
    if name == "auto":
        return next((s for s in PREFERENCE if _installed(s)), "none")
    if name != "none" and not _installed(name):
        hint = install_hint(_EXTRA[name])
        raise AnanError(f"--simplifier {name} needs the {name} package: {hint}")
    return name


def simplify(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """``model`` simplified by ``name`` (a resolved choice); metadata is kept, and so are the
    parameter inputs of a tunable model (``anan_k`` ...: inputs with default values)."""
    if name == "none":
        return model
    model, defaults = _hold_out_defaults(model)
    quiet = io.StringIO()  # both print progress tables on stdout: keep ours clean
    try:
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            result = _onnxsim(model) if name == "onnxsim" else _onnxslim(model)
    except AnanError:
        raise
    except Exception as exc:
        raise AnanError(
            f"{name} failed on the model ({first_line(exc)}): export with --simplifier none "
            "or the other simplifier"
        ) from None
    del result.metadata_props[:]
    result.metadata_props.extend(model.metadata_props)
    kept = {i.name for i in result.graph.input}  # onnxslim drops inputs no node reads
    result.graph.input.extend(i for i in model.graph.input if i.name not in kept)
    result.graph.initializer.extend(defaults)
    return result


def _hold_out_defaults(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[onnx.TensorProto]]:
    """The model without the initializers of its graph inputs, and those initializers.

    A graph input with an initializer is an input with a default (a tunable model's
    ``anan_mu`` ...); both simplifiers would fold it into a constant and drop the input,
    so it is held out while they run and put back after.
    """
    inputs = {i.name for i in model.graph.input}
    defaults = [i for i in model.graph.initializer if i.name in inputs]
    if not defaults:
        return model, []
    held = onnx.ModelProto()
    held.CopyFrom(model)
    del held.graph.initializer[:]
    held.graph.initializer.extend(i for i in model.graph.initializer if i.name not in inputs)
    return held, defaults


def _onnxsim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxsim

    # its own random-input check is off: check.py compares against the input model itself
    simplified, ok = onnxsim.simplify(model, check_n=0)
    if not ok:
        raise AnanError("onnxsim could not validate its result: export with --simplifier onnxslim")
    return simplified


def _onnxslim(model: onnx.ModelProto) -> onnx.ModelProto:
    import onnxslim

    return onnxslim.slim(model)


def _installed(name: str) -> bool:
    return importlib.util.find_spec(name) is not None
