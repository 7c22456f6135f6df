"""The ORT format: the ``.ort`` file and the operator config of a minimal onnxruntime build.

Uses onnxruntime's converter through its Python API
(``onnxruntime.tools.convert_onnx_models_to_ort``, the module behind
``python -m onnxruntime.tools.convert_onnx_models_to_ort``) with type reduction on, so the
config is ``required_operators_and_types.config``: each operator with the data types the
model uses, for ``build.sh --minimal_build --include_ops_by_config CONFIG
--enable_reduced_operator_type_support``.

Optimisation style: *Fixed* for ``--target ort`` (the graph optimised once, for this CPU,
as a minimal build without runtime optimisers runs it); *Runtime* for ``--target mobile``,
whose ``.ort`` keeps the nodes that NNAPI and CoreML take and records the CPU
optimisations to replay (``session.enable_saved_runtime_optimizations``) only where the CPU
runs them, as onnxruntime's mobile guide recommends.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from anan_onnx.errors import AnanError

__all__ = ["CONFIG_SUFFIX", "to_ort"]

CONFIG_SUFFIX = ".required_operators_and_types.config"


def to_ort(model: Path, out_dir: Path, *, runtime_style: bool) -> tuple[Path, Path]:
    """Converts the ``.onnx`` file ``model``; returns (``.ort``, config) in ``out_dir``,
    named ``<model stem>.ort`` and ``<model stem>.required_operators_and_types.config``."""
    from onnxruntime.tools.convert_onnx_models_to_ort import (
        OptimizationStyle,
        convert_onnx_models_to_ort,
    )

    style = OptimizationStyle.Runtime if runtime_style else OptimizationStyle.Fixed
    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="anan_ort_", dir=out_dir) as work:
        # the converter turns every model of a folder: give it a folder with just this one
        source = Path(work) / "in" / model.name
        source.parent.mkdir()
        shutil.copyfile(model, source)
        converted = Path(work) / "out"
        try:
            with contextlib.redirect_stdout(log), _no_info_logs():
                convert_onnx_models_to_ort(
                    source, converted, optimization_styles=[style], enable_type_reduction=True
                )
        except Exception as exc:
            raise AnanError(
                f"onnxruntime's ORT format converter failed ({str(exc).strip()[:200]}): "
                "export --target web, or report this with the model"
            ) from None
        ort_files = sorted(converted.glob("*.ort"))
        configs = sorted(converted.glob("*.config"))
        if len(ort_files) != 1 or len(configs) != 1:
            raise AnanError(
                f"onnxruntime's ORT format converter wrote {[p.name for p in ort_files]} and "
                f"{[p.name for p in configs]}: report this with the model ({log.getvalue()[-200:]})"
            )
        stem = model.name.removesuffix(".onnx")
        ort_file, config = out_dir / f"{stem}.ort", out_dir / f"{stem}{CONFIG_SUFFIX}"
        shutil.move(ort_files[0], ort_file)
        shutil.move(configs[0], config)
    _name_sources(config, ort_file.name)
    return ort_file, config


def _name_sources(config: Path, ort_name: str) -> None:
    """The converter's header names the models it read by their (temporary) paths: name
    the published ``.ort`` file instead."""
    lines = config.read_text().splitlines()
    body = [line for line in lines if not line.startswith("# ")]
    header = ["# Generated from model/s:", f"# - {ort_name}"]
    config.write_text("\n".join(header + body) + "\n")


@contextlib.contextmanager
def _no_info_logs() -> Iterator[None]:
    """The converter logs progress (with our temporary paths) at INFO on its own handler:
    keep it off our output, for this call only (the level before is restored). Its sessions'
    warnings about a tunable model's parameter inputs are onnxruntime's default log
    severity, which only the CLI sets (anan_onnx.cli.process): it has no getter, so a
    library call could not restore it."""
    before = logging.root.manager.disable
    logging.disable(logging.INFO)
    try:
        yield
    finally:
        logging.disable(before)
