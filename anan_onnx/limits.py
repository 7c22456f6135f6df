"""The resource guard: every allocation whose size comes from user input is checked here
first, against a limit, with a one-line refusal that names the limit and how to raise it.

A size read from a file or an option (an external-data tensor, a grid range, ``verify -n``,
a batch, a thread count, an input shape, an ``.npz`` member) would otherwise decide how much
memory the process asks for before anything checks that the request makes sense: a
432-byte tensor pointing at a 3 GB file, ``--a 0:1e9``, ``--threads 100000``. Each
:class:`Limit` has a default that every real use stays well below, and an environment
variable (and, where the command has one, an option) to raise it for trusted input.
docs/limits.md lists them with their reasons.

Example:
    >>> GRID_CONFIGS.check(100, "the grid")
    100
    >>> positive_int("batch_size", 2.5)
    Traceback (most recent call last):
    ...
    anan_onnx.AnanError: batch_size must be a positive integer, got 2.5: pass 1 or more
"""

from __future__ import annotations

import dataclasses
import math
import operator
import os

from anan_onnx.errors import AnanError

__all__ = [
    "BATCH_BYTES",
    "BATCH_SIZE",
    "EXTERNAL_DATA_BYTES",
    "GRID_CONFIGS",
    "INPUT_ELEMENTS",
    "LIMITS",
    "NPZ_BYTES",
    "THREADS",
    "Limit",
    "batch_size",
    "input_elements",
    "positive_int",
    "thread_count",
]

_GiB = 2**30


@dataclasses.dataclass(frozen=True)
class Limit:
    """One bound on a size taken from input.

    Attributes:
        name: what is counted, for messages (``"grid configurations"``).
        default: the bound when the environment does not raise it.
        env: the environment variable that sets another bound (a positive integer).
        option: the command-line option that sets it too, where there is one.
        unit: ``"bytes"`` for sizes shown as GiB; ``""`` for counts.
    """

    name: str
    default: int
    env: str
    option: str | None = None
    unit: str = ""

    def value(self, override: int | None = None) -> int:
        """The bound in force: ``override`` (an option's value), else the environment
        variable, else the default."""
        if override is not None:
            return positive_int(self.option or self.env, override)
        text = os.environ.get(self.env)
        if text is None or not text.strip():
            return self.default
        try:
            return positive_int(self.env, int(text.strip()))
        except ValueError:
            raise AnanError(
                f"{self.env}={text!r} is not a positive integer: set it to a number such as "
                f"{self.default} or unset it"
            ) from None

    def check(self, amount: int, what: str, override: int | None = None) -> int:
        """``amount`` if it is within the bound; else a refusal naming the limit and how to
        raise it. Call it before allocating."""
        bound = self.value(override)
        if amount > bound:
            raise AnanError(
                f"{what} needs {self._show(amount)} {self.name}, more than the limit of "
                f"{self._show(bound)}: {self.how_to_raise()} (docs/limits.md)"
            )
        return amount

    def how_to_raise(self) -> str:
        """``pass --max-configs N or set ANAN_MAX_GRID_CONFIGS`` (what a refusal suggests)."""
        env = f"set {self.env}=N"
        if self.option:
            return f"make it smaller, or pass {self.option} N or {env} to allow it"
        return f"make it smaller, or {env} to allow it"

    def _show(self, amount: int) -> str:
        if self.unit == "bytes":
            return f"{amount / _GiB:.2f} GiB" if amount >= _GiB // 10 else f"{amount:,} bytes"
        return f"{amount:,}"


#: External data one model may load (all tensors together). A model file is bounded by
#: protobuf's 2 GiB; external data exists for larger weights, so the bound is a multiple.
EXTERNAL_DATA_BYTES = Limit(
    "of external data", 16 * _GiB, "ANAN_MAX_EXTERNAL_DATA_BYTES", unit="bytes"
)
#: Configurations of a tune/evaluate grid: the paper's is 240; each takes seconds to minutes.
GRID_CONFIGS = Limit("grid configurations", 10_000, "ANAN_MAX_GRID_CONFIGS", "--max-configs")
#: Elements of one model input (one image, all channels): 2^28 floats is 1 GiB, beyond the
#: 89 M-pixel image limit times 3 channels; a 100000x100000 input is 10^10.
INPUT_ELEMENTS = Limit("input elements per image", 2**28, "ANAN_MAX_INPUT_ELEMENTS")
#: Images in one run (``--batch-size``, ``convert --batch``): real batches are 1-1024.
BATCH_SIZE = Limit("images per batch", 65_536, "ANAN_MAX_BATCH_SIZE")
#: Memory of one batch of inputs (float32): the default batch stays within 512 MiB.
BATCH_BYTES = Limit("of inputs per batch", 4 * _GiB, "ANAN_MAX_BATCH_BYTES", unit="bytes")
#: Decompressed size of an ``.npz`` data set, read from its zip headers before reading.
NPZ_BYTES = Limit("decompressed", 8 * _GiB, "ANAN_MAX_NPZ_BYTES", unit="bytes")
#: One encoded image file or object, checked before it is read: an uncompressed RGBA image
#: at the pixel limit (MAX_IMAGE_PIXELS) takes 358 MB; an object is read whole to decode.
IMAGE_BYTES = Limit("of encoded image", 512 * 2**20, "ANAN_MAX_IMAGE_BYTES", unit="bytes")
#: Intra-op threads: onnxruntime starts them all at once (100000 threads crashed it).
THREADS = Limit("threads", max(64, 4 * (os.cpu_count() or 1)), "ANAN_MAX_THREADS")

#: Every limit, for docs and tests.
LIMITS = (
    EXTERNAL_DATA_BYTES,
    GRID_CONFIGS,
    INPUT_ELEMENTS,
    BATCH_SIZE,
    BATCH_BYTES,
    NPZ_BYTES,
    IMAGE_BYTES,
    THREADS,
)


def positive_int(name: str, value: object) -> int:
    """``value`` as an int if it is a positive integer (``4``, ``4.0``, ``np.int64(4)``);
    anything else (``0``, ``2.5``, ``True``, ``"4"``, NaN) is a one-line refusal."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if not isinstance(value, bool):
        try:
            number = operator.index(value)  # type: ignore[arg-type]  # ints, never float or str
        except TypeError:
            number = None
        if number is not None and number >= 1:
            return int(number)
    raise AnanError(f"{name} must be a positive integer, got {value!r}: pass 1 or more")


def input_elements(dims: list[int] | tuple[int, ...], what: str) -> int:
    """Elements of one input of per-image ``dims`` (batch axis excluded), within
    :data:`INPUT_ELEMENTS`; a negative or zero dimension is refused."""
    for d in dims:
        if d < 1:
            raise AnanError(
                f"{what} has a dimension of {d} in {list(dims)}: every input dimension must "
                "be 1 or more; fix the model's input shape"
            )
    return INPUT_ELEMENTS.check(math.prod(dims), what)


def batch_size(value: object, per_image_bytes: int, what: str = "the batch") -> int:
    """A batch size checked as a positive integer, against :data:`BATCH_SIZE`, and its
    inputs' memory (``value x per_image_bytes``) against :data:`BATCH_BYTES`."""
    n = BATCH_SIZE.check(positive_int("batch", value), what)
    BATCH_BYTES.check(n * per_image_bytes, f"{what} of {n:,} inputs")
    return n


def thread_count(value: object) -> int:
    """An intra-op thread count checked as a positive integer and against :data:`THREADS`."""
    n = positive_int("threads", value)
    return THREADS.check(n, f"--threads {n}")
