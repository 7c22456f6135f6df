"""``verify``: the ANAN graph against the literal per-image loop, on random or given inputs.

Example:
    >>> from anan_onnx.testing import VARIANTS, build_cnn
    >>> result = convert_model(build_cnn(VARIANTS["plain"]), AnanParams(k=2, a=1.5))
    >>> report = verify_models(result.anan, result.base, n=4)  # or the two files' paths
    >>> report.passed, report.agreement, report.max_abs_diff < 1e-5
    (True, 1.0, True)
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from anan_onnx import limits
from anan_onnx._public import public
from anan_onnx.errors import AnanError
from anan_onnx.limits import positive_int
from anan_onnx.metadata import DEFAULT_SCALE, is_anan, read_metadata
from anan_onnx.model_io import load_onnx
from anan_onnx.params import AnanParams
from anan_onnx.reference.literal import LiteralReference
from anan_onnx.reference.pairing import check_compressed_pair
from anan_onnx.runtime.inputs import InputSpec, check_batch, parse_number
from anan_onnx.text import shown

if TYPE_CHECKING:
    from anan_onnx.runtime.image_files import ImageBatch
from anan_onnx.runtime.labels import TOLERANCE, labels_agree, predicted_labels
from anan_onnx.runtime.own_scaling import own_scaling
from anan_onnx.runtime.session import Session, providers_for, run_fixed_batch

__all__ = [
    "ImageResult",
    "VerifyReport",
    "preprocess_contradiction",
    "random_batches",
    "target_layer",
    "random_inputs",
    "verify_models",
]


@dataclasses.dataclass(frozen=True)
class ImageResult:
    """One input's verdict: ``status`` is PASS, FAIL, SKIP (a near-tie: some kernel
    activity within rounding of 0) or NON-FINITE."""

    index: int
    status: str
    label: int  # the engine's predicted class (-1: not finite)
    expected: int  # the literal loop's (-1: not finite)
    max_abs_diff: float
    margin: float = math.nan  # the decision margin (literal.decision_margin), NaN: not asked
    name: str = ""  # the input it came from (a file, a .npy row), "" for random inputs

    def line(self) -> str:
        """``image 3 (b.png): FAIL class 1, reference 0, max abs diff 0.41, margin 0.0021``."""
        diff = summary_number(self.max_abs_diff)
        margin = f", decision margin {self.margin:.2g}" if math.isfinite(self.margin) else ""
        named = f" ({shown(self.name)})" if self.name else ""
        return (
            f"image {self.index}{named}: {self.status} class {self.label}, reference "
            f"{self.expected}, max abs diff {diff}{margin}"
        )


@public
@dataclasses.dataclass
class VerifyReport:
    """Agreement between the ANAN model and the literal reference.

    Attributes:
        images: inputs tried.
        near_ties: inputs skipped because some kernel activity was within rounding of 0.
        agreeing: compared inputs whose predicted class is the same.
        max_abs_diff: largest |ANAN - reference| over the compared outputs (NaN if none).
        non_finite: inputs for which the ANAN model gave a NaN or Inf output: a failure,
            never counted as agreeing (the weights or gains overflow float32).
        reference_non_finite: inputs for which the literal reference did.
        unusable: inputs with a non-finite output on either side (counted once).
        preprocess_warning: why the recorded preprocessing contradicts the base graph's
            own leading scaling (it would scale the pixels twice), or ``None``; a warning,
            not a failure: the ANAN graph may still equal the reference
            (docs/preprocessing.md).
        engine: what ran the ANAN model (``ort``, or ``openvino (bf16)`` ...: the engine
            and the precision it inferred in).
        per_image: each input's verdict, in order.
        margin: the smallest decision margin over the inputs (NaN: not asked for): how
            far, relative to its scale, a kernel statistic came to its threshold; a
            precision whose relative rounding reaches it may flip a decision
            (docs/engines.md).
    """

    images: int
    near_ties: int
    agreeing: int
    max_abs_diff: float
    tolerance: float = TOLERANCE
    non_finite: int = 0
    reference_non_finite: int = 0
    unusable: int = 0
    preprocess_warning: str | None = None
    engine: str = "ort"
    per_image: list[ImageResult] = dataclasses.field(default_factory=list)
    margin: float = math.nan

    @property
    def compared(self) -> int:
        return self.images - self.near_ties - self.unusable

    @property
    def agreement(self) -> float:
        return self.agreeing / self.compared if self.compared else float("nan")

    @property
    def passed(self) -> bool:
        return (
            self.compared > 0
            and self.unusable == 0
            and self.agreeing == self.compared
            and self.max_abs_diff <= self.tolerance
        )

    def summary(self) -> str:
        """One line: the verdict and its figures (and the engine, where not onnxruntime)."""
        line = self._summary()
        if math.isfinite(self.margin):
            line += f"; smallest decision margin {self.margin:.2g} ({margin_verdict(self.margin)})"
        return line if self.engine == "ort" else f"{line}; engine {self.engine}"

    def _summary(self) -> str:
        if self.unusable:
            sides = []
            if self.non_finite:
                sides.append(f"the ANAN model for {self.non_finite}")
            if self.reference_non_finite:
                sides.append(f"the literal reference for {self.reference_non_finite}")
            return (
                f"FAIL: non-finite outputs (NaN/Inf) from {' and '.join(sides)} of "
                f"{self.images} input(s): the weights or the ANAN gains overflow float32 "
                f"(re-convert with smaller a, b or k); {self.agreeing}/{self.compared} of the "
                "other predictions agree"
            )
        verdict = "PASS" if self.passed else "FAIL"
        diff = summary_number(self.max_abs_diff)
        return (
            f"{verdict}: {self.agreeing}/{self.compared} predictions agree "
            f"({self.agreement:.1%}), max abs diff {diff} "
            f"(tolerance {self.tolerance:g}); {self.near_ties} near-tie input(s) skipped "
            f"of {self.images}"
        )

    def as_dict(self) -> dict[str, object]:
        """The report as JSON-ready values: a number that is not finite becomes ``None``."""
        values = dataclasses.asdict(self)
        values.update(
            compared=self.compared,
            agreement=self.agreement,
            passed=self.passed,
            summary=self.summary(),
        )
        values["per_image"] = [_json_ready(r) for r in values["per_image"]]
        return _json_ready(values)

    def merged(self, other: VerifyReport) -> VerifyReport:
        """This report and ``other`` (another chunk of inputs) as one."""
        diffs = [d for d in (self.max_abs_diff, other.max_abs_diff) if not math.isnan(d)]
        return VerifyReport(
            self.images + other.images,
            self.near_ties + other.near_ties,
            self.agreeing + other.agreeing,
            max(diffs) if diffs else float("nan"),
            self.tolerance,
            self.non_finite + other.non_finite,
            self.reference_non_finite + other.reference_non_finite,
            self.unusable + other.unusable,
            self.preprocess_warning or other.preprocess_warning,
            self.engine,
            self.per_image
            + [dataclasses.replace(r, index=r.index + self.images) for r in other.per_image],
            float(np.fmin(self.margin, other.margin)),
        )


def _json_ready(values: dict[str, object]) -> dict[str, object]:
    """``values`` with every number that is not finite as ``None``."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v
            for k, v in values.items()}  # fmt: skip


#: relative rounding of each reduced precision (its unit roundoff, 2^-p): a decision margin
#: at or below it may flip there (docs/engines.md)
PRECISION_ROUNDING = {"bf16": 2.0**-8, "fp16": 2.0**-11}


def margin_verdict(margin: float) -> str:
    """Which reduced precisions a decision margin leaves safe, in words."""
    safe = [name for name, rounding in PRECISION_ROUNDING.items() if margin > 4 * rounding]
    return f"4x above the rounding of {', '.join(safe)}" if safe else (
        "within 4x of bf16 and fp16 rounding: deploy in float32"
    )


def summary_number(value: float) -> str:
    """A number for a summary line; never prints ``nan`` (nothing was compared)."""
    return f"{value:.3g}" if math.isfinite(value) else "n/a"


@public
def verify_models(
    anan: str | Path | onnx.ModelProto,
    base: str | Path | onnx.ModelProto,
    *,
    inputs: np.ndarray | Iterable[np.ndarray | ImageBatch] | None = None,
    n: int = 16,
    seed: int = 0,
    tolerance: float = TOLERANCE,
    provider: str = "cpu",
    batch_size: int | None = None,
    engine: str = "ort",
    precision: str | None = None,
    margin: bool = False,
) -> VerifyReport:
    """Compares an ANAN model with the literal loop run on its base model.

    Args:
        anan: the ANAN model (its metadata gives the parameters and target layer).
        base: the base model it was converted from.
        inputs: a batch in the model's layout, or an iterable of batches (streamed: memory
            stays bounded by one batch; an ``ImageBatch`` names each input in the
            per-image verdicts); default: ``n`` random images.
        batch_size: images per run (default: the session's default); a model with a fixed
            batch is fed in chunks of that size whatever this is.
        engine: what runs the ANAN model (:data:`anan_onnx.runtime.engines.ENGINES`):
            ``ort`` (onnxruntime with ``provider``), or another engine with the settings a
            deployment gets, its default precision included (OpenVINO: bf16 on CPUs with
            AMX or AVX512-BF16), so that a precision which flips outputs fails here.
        precision: pin the engine's inference precision instead (``f32``, ``bf16``).
        margin: also find each input's decision margin (a bisection per step of the
            literal loop: slower).
    """
    if not math.isfinite(tolerance) or tolerance < 0:
        raise AnanError(f"tolerance must be a finite number >= 0, got {tolerance}")
    session = Session(anan, provider=provider)
    if not session.is_anan:
        raise AnanError("the first model is not an ANAN model: pass the .anan.onnx file first")
    base_model = base if isinstance(base, onnx.ModelProto) else load_onnx(base)
    if is_anan(read_metadata(base_model)):
        raise AnanError(
            "the base model given is an ANAN model: pass the base model "
            "(the .base.onnx file written next to the .anan.onnx)"
        )
    base_meta = read_metadata(base_model)
    check_compressed_pair(session.metadata, base_meta)
    params: AnanParams = session.params  # type: ignore[assignment]
    reference = LiteralReference(
        base_model, target_layer(session.metadata), params, providers=providers_for(provider)
    )
    size = batch_size or session.default_batch_size()
    if inputs is None:  # made one batch at a time: -n 20000 needs no 20000 images at once
        inputs = random_batches(session, n, seed, size)
    batches = [inputs] if isinstance(inputs, np.ndarray) else inputs
    report: VerifyReport | None = None
    with _predictor(session, anan, engine, precision) as (predict, ran_on):
        for batch in batches:
            names = getattr(batch, "names", None)  # an ImageBatch names its inputs
            batch = getattr(batch, "x", batch)
            for start in range(0, len(batch), size):
                x = np.asarray(batch[start : start + size])
                chunk = _compare(session, reference, x, tolerance, predict, margin)
                if names is not None:
                    chunk.per_image = [
                        dataclasses.replace(r, name=n)
                        for r, n in zip(chunk.per_image, names[start : start + size], strict=True)
                    ]
                report = chunk if report is None else report.merged(chunk)
        engine_name = ran_on()  # after the runs: the precision they ran in
    if report is None:
        raise AnanError("no inputs to verify: pass at least one image or array")
    report.engine = engine_name
    report.preprocess_warning = preprocess_contradiction(session.metadata, base_model)
    if report.preprocess_warning:
        warnings.warn(report.preprocess_warning, UserWarning, stacklevel=2)
    return report


def preprocess_contradiction(metadata: dict[str, str], base: onnx.ModelProto) -> str | None:
    """Why the recorded preprocessing contradicts the base graph's own leading scaling
    (:mod:`anan_onnx.runtime.own_scaling`), or ``None``."""
    if "height" not in metadata:
        return None
    spec = InputSpec.from_metadata(metadata)
    own = own_scaling(base, spec.layout, spec.channels)
    return own.contradiction(spec.scale, spec.offset) if own is not None else None


@contextlib.contextmanager
def _predictor(
    session: Session,
    anan: str | Path | onnx.ModelProto,
    engine: str,
    precision: str | None,
) -> Iterator[tuple[Callable[[np.ndarray], np.ndarray], Callable[[], str]]]:
    """The function that runs the ANAN model on ``engine``, and one that names the engine
    with the precision it ran in."""
    if engine == "ort" and precision in (None, "f32"):
        yield session.predict, lambda: "ort"
        return
    from anan_onnx.runtime.engines import open_engine

    runner = open_engine(engine, precision=precision)
    with contextlib.ExitStack() as stack:
        stack.callback(runner.close)
        if isinstance(anan, onnx.ModelProto):  # the engines read files
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="anan_verify_"))
            path = Path(folder) / "model.anan.onnx"
            onnx.save(anan, path)
        else:
            path = Path(anan)
        fixed = session.fixed_batch  # a static shape: every run gets exactly that batch
        yield (
            (lambda x: run_fixed_batch(lambda b: runner.run(path, b), x, fixed)),
            lambda: f"{engine} ({runner.precision})",
        )


def _compare(
    session: Session,
    reference: LiteralReference,
    x: np.ndarray,
    tolerance: float,
    predict: Callable[[np.ndarray], np.ndarray],
    margin: bool = False,
) -> VerifyReport:
    """The report for one chunk of inputs."""
    ours = predict(x).reshape(len(x), -1)
    result = reference.run(check_batch(x, (None, *session.input_shape[1:])), margin=margin)
    expected = result.outputs[0].reshape(len(x), -1)
    ours_bad = ~np.isfinite(ours).all(axis=1)
    ref_bad = ~np.isfinite(expected).all(axis=1)
    bad = ours_bad | ref_bad
    tie = result.near_tie & ~bad
    keep = ~bad & ~tie
    with np.errstate(invalid="ignore"):
        diff = (
            np.abs(ours[keep].astype(np.float64) - expected[keep]).max() if keep.any() else np.nan
        )
    agree = labels_agree(ours[keep], expected[keep], tolerance) if keep.any() else keep[:0]
    rows = _per_image(ours, expected, keep, tie, agree, tolerance)
    margins = result.margin if result.margin is not None else np.full(len(x), np.nan)
    rows = [dataclasses.replace(r, margin=float(m)) for r, m in zip(rows, margins, strict=True)]
    return VerifyReport(
        len(x),
        int(tie.sum()),
        int(agree.sum()),
        float(diff),
        tolerance,
        int(ours_bad.sum()),
        int(ref_bad.sum()),
        int(bad.sum()),
        per_image=rows,
        margin=float(np.nanmin(margins)) if margin else math.nan,
    )


def _per_image(
    ours: np.ndarray,
    expected: np.ndarray,
    keep: np.ndarray,
    tie: np.ndarray,
    agree: np.ndarray,
    tolerance: float,
) -> list[ImageResult]:
    """Each input's verdict (``agree`` covers the kept inputs only)."""
    agrees = np.zeros(len(ours), bool)
    agrees[keep] = agree
    rows = []
    for i in range(len(ours)):
        finite = bool(np.isfinite(ours[i]).all() and np.isfinite(expected[i]).all())
        with np.errstate(invalid="ignore"):
            diff = float(np.abs(ours[i].astype(np.float64) - expected[i]).max())
        if not finite:
            status, diff = "NON-FINITE", math.nan
        elif tie[i]:
            status = "SKIP"
        else:
            status = "PASS" if agrees[i] and diff <= tolerance else "FAIL"
        rows.append(
            ImageResult(i, status, _label(ours[i]), _label(expected[i]), diff)
        )
    return rows


def _label(row: np.ndarray) -> int:
    """The predicted class of one output row, -1 where it is not finite."""
    return int(predicted_labels(row[None])[0]) if np.isfinite(row).all() else -1


def target_layer(metadata: dict[str, str]) -> str | list[str]:
    """The ANAN model's recorded target Conv (the list of them, in order, where several were
    modulated: ``target_layers``), or a refusal when none is recorded."""
    name = metadata.get("target_layer")
    if not name:
        raise AnanError(
            "the ANAN model records no target_layer: its metadata is damaged; re-convert it "
            "with anan-onnx"
        )
    if "target_layers" not in metadata:
        return name
    try:
        names = json.loads(metadata["target_layers"])
    except ValueError:
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise AnanError(
            "the ANAN model's target_layers is not a list of Conv names: its metadata is "
            "damaged; re-convert it with anan-onnx"
        )
    return names


def random_inputs(session: Session, n: int, seed: int = 0) -> np.ndarray:
    """``n`` random-pixel images in the model's layout and preprocessing, in one array
    (within :data:`anan_onnx.limits.BATCH_BYTES`; :func:`random_batches` streams them)."""
    n = positive_int("the number of inputs", n)
    limits.BATCH_BYTES.check(n * session.input_bytes(), f"{n:,} random inputs")
    return next(random_batches(session, n, seed, n))


def random_batches(session: Session, n: int, seed: int, size: int) -> Iterator[np.ndarray]:
    """``n`` random-pixel images as batches of at most ``size``: pixels drawn as uint8 and
    prepared by the one preparation of image files
    (:func:`~anan_onnx.runtime.image_files.to_model_input`), one batch in memory at a time."""
    from anan_onnx.runtime.image_files import to_model_input

    n = positive_int("the number of inputs", n)
    dims = list(session.input_shape[1:])
    if not all(isinstance(d, int) and d > 0 for d in dims):
        raise AnanError(f"the model input {session.input_shape} has dynamic sizes: pass --inputs")
    spec = session.input_spec()
    rng = np.random.default_rng(seed)
    for start in range(0, n, size):
        count = min(size, n - start)
        if spec is not None:
            shape = (count, spec.height, spec.width, spec.channels)
            yield to_model_input(rng.integers(0, 256, size=shape, dtype=np.uint8), spec)
        else:  # not an image input (e.g. 4 channels): the recorded scalar scaling
            pixels = rng.integers(0, 256, size=[count, *dims], dtype=np.uint8)
            scale = _scalar(session, "scale", DEFAULT_SCALE)
            yield (pixels.astype(np.float32) * scale + _scalar(session, "offset", 0.0)).astype(
                np.float32
            )


def _scalar(session: Session, key: str, default: float) -> float:
    """A recorded scalar (the one number parser: ``1/255`` reads), else ``default``."""
    return parse_number(session.metadata.get(key, repr(default)))
