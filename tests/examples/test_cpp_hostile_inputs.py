"""The C++ example (``anan_infer``) against hostile inputs: lying headers, FIFOs, directories.

Each case here once made the program allocate what a header claimed (1 GiB of RSS for a
4 KB .npy, std::bad_alloc for 10^12 elements), overflow its size arithmetic, accept a
malformed header, or block forever on a FIFO. Now each must be refused within seconds with
exit status 2 and one stderr line naming the problem, at a peak RSS measured for the child
alone (os.wait4 in a small parent) that stays far below what the header claims. The child
also runs under an address-space limit, so that a regression fails the test instead of
exhausting the machine.

The build (the ``anan_infer`` fixture) comes from tests/examples/conftest.py and the toy
model maker from tests/fixtures/cpp_example.py, as for test_cpp_example.py.
"""

from __future__ import annotations

import os
import resource
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from fixtures.cpp_example import toy_cnn

pytestmark = pytest.mark.cpp  # builds the C++ example: cmake and a C++ compiler

TIMEOUT_S = 20.0  # a hang fails the test after this long
QUICK_S = 10.0  # a refusal takes well under a second; generous for a shared machine
# A normal run of a toy model fits in 128 MiB of address space here (2 cores); more cores
# mean more threads and stacks, hence the headroom, with glibc's malloc arenas capped.
ADDRESS_SPACE = 2 << 30
CHILD_ENV = {**os.environ, "MALLOC_ARENA_MAX": "2"}
MAX_RSS_MIB = 256  # a normal run peaks at ~32 MiB; every attack below claims >= 1 GiB
GIB = 1 << 30


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    max_rss_mib: float


def _limit_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


# The child's peak RSS is measured by a small Python parent that forks it: on Linux a
# process inherits the peak RSS of the process it was forked from (it survives exec), so a
# child forked straight from this pytest process (hundreds of MiB once TensorFlow tests have
# run) would report pytest's peak, not its own.
_MEASURE = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _wait(proc: subprocess.Popen[bytes], args: tuple[object, ...]) -> None:
    """Waits for the measuring parent; kills its process group and fails after TIMEOUT_S."""
    try:
        proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.wait()
        pytest.fail(f"anan_infer {' '.join(map(str, args))} still ran after {TIMEOUT_S} s")


def _run(binary: Path, *args: object) -> Outcome:
    """Runs anan_infer -q ARGS with a timeout and an address-space limit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        with tempfile.TemporaryDirectory() as tmp:
            rss_file = Path(tmp) / "maxrss"
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-S", "-c", _MEASURE, str(rss_file), str(binary), "-q"]
                + [str(a) for a in args],
                stdin=subprocess.DEVNULL,
                env=CHILD_ENV,
                stdout=out,
                stderr=err,
                preexec_fn=_limit_address_space,
                start_new_session=True,  # one group: a hang is killed with its parent
            )
            _wait(proc, args)
            seconds = time.monotonic() - start
            max_rss_kib = float(rss_file.read_text())
        out.seek(0)
        err.seek(0)
        return Outcome(
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
            seconds,
            max_rss_kib / 1024,  # ru_maxrss is in KiB on Linux
        )


def _refused(outcome: Outcome, *words: str) -> str:
    """Asserts a quick, small, one-line refusal (exit 2) whose message holds `words`."""
    lines = outcome.stderr.strip().splitlines()
    assert outcome.returncode == 2, outcome
    assert len(lines) == 1 and lines[0].startswith("anan_infer: error: "), outcome.stderr
    assert outcome.stdout == ""
    for word in words:
        assert word in lines[0], lines[0]
    assert outcome.seconds < QUICK_S, outcome
    assert outcome.max_rss_mib < MAX_RSS_MIB, outcome
    return lines[0]


# --- inputs --------------------------------------------------------------------------------


def _npy_bytes(
    header: str, data: bytes = b"", version: int = 1, length: int | None = None
) -> bytes:
    """A .npy file with this header text; `length` overrides the header length field."""
    text = header.encode("latin1")
    size = len(text) if length is None else length
    field = struct.pack("<H", size) if version == 1 else struct.pack("<I", size)
    return b"\x93NUMPY" + bytes([version, 0]) + field + text + data


def _header(shape: str, extra: str = "") -> str:
    return "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", " + extra + "}\n"


@pytest.fixture(scope="module")
def nhwc12(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy CNN with input [N, 12, 12, 3]."""
    return toy_cnn(tmp_path_factory.mktemp("hostile") / "nhwc12.onnx", "NHWC")


@pytest.fixture(scope="module")
def nchw128(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy CNN with input [N, 3, 128, 128], the shape the overflow attack aims at."""
    return toy_cnn(
        tmp_path_factory.mktemp("hostile") / "nchw128.onnx", "NCHW", size=128
    )


@pytest.fixture
def fifo(tmp_path: Path) -> Iterator[Path]:
    """A FIFO nobody writes to: opening it for reading the ordinary way blocks forever."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


# --- the bounds hold for a normal run ------------------------------------------------------


def test_normal_run_fits_the_bounds(anan_infer: Path, nhwc12: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "batch.npy", np.zeros((3, 12, 12, 3), np.float32))
    outcome = _run(anan_infer, nhwc12, tmp_path / "batch.npy")
    assert outcome.returncode == 0, outcome
    assert len(outcome.stdout.splitlines()) == 3
    assert outcome.max_rss_mib < MAX_RSS_MIB


# --- .npy headers that lie -----------------------------------------------------------------


def test_4kb_npy_claiming_a_gigabyte(anan_infer: Path, nhwc12: Path, tmp_path: Path) -> None:
    n = GIB // (12 * 12 * 3 * 4) + 1  # a model-shaped batch of just over 1 GiB
    path = tmp_path / "big.npy"
    path.write_bytes(_npy_bytes(_header(f"({n}, 12, 12, 3)"), bytes(4000)))
    assert path.stat().st_size < 4096
    message = _refused(_run(anan_infer, nhwc12, path), "big.npy", "truncated")
    assert str(n * 12 * 12 * 3 * 4) in message and "the file has 4000" in message


def test_npy_claiming_1e12_elements(anan_infer: Path, nhwc12: Path, tmp_path: Path) -> None:
    n = 10**12 // (12 * 12 * 3) + 1
    path = tmp_path / "huge.npy"
    path.write_bytes(_npy_bytes(_header(f"({n}, 12, 12, 3)"), bytes(4000)))
    _refused(_run(anan_infer, nhwc12, path), "truncated", str(n * 12 * 12 * 3 * 4))


def test_npy_dimension_beyond_the_bound(anan_infer: Path, nchw128: Path, tmp_path: Path) -> None:
    # (2^50 + 1) * 3 * 128 * 128 wraps to 49152 in 64 bits: the old check passed with
    # exactly that many floats in the file and handed the absurd shape to onnxruntime.
    path = tmp_path / "wrap.npy"
    path.write_bytes(_npy_bytes(_header(f"({2**50 + 1}, 3, 128, 128)"), bytes(4 * 49152)))
    _refused(_run(anan_infer, nchw128, path), "dimension 1125899906842625", "exceeds 2^40")


@pytest.mark.parametrize(
    "shape",
    [f"({2**22}, {2**22}, {2**22}, 3)", f"({2**40}, {2**40}, 0, 3)"],
    ids=["product_wraps_to_zero", "zero_hides_overflow"],
)
def test_npy_element_count_overflow(
    anan_infer: Path, nhwc12: Path, tmp_path: Path, shape: str
) -> None:
    path = tmp_path / "overflow.npy"
    path.write_bytes(_npy_bytes(_header(shape), bytes(4000)))
    _refused(_run(anan_infer, nhwc12, path), "is too large")


@pytest.mark.parametrize("digits", ["99999999999999999999999", str(2**63), str(2**64 + 5)])
def test_npy_dimension_overflowing_a_signed_parse(
    anan_infer: Path, nhwc12: Path, tmp_path: Path, digits: str
) -> None:
    path = tmp_path / "digits.npy"
    path.write_bytes(_npy_bytes(_header(f"({digits}, 12, 12, 3)"), bytes(4000)))
    _refused(_run(anan_infer, nhwc12, path), f"dimension {digits} ", "exceeds 2^40")


@pytest.mark.parametrize(
    "header",
    [
        _header("(2, 12 12, 3)"),
        _header("(2,, 12, 12, 3)"),
        _header("(2, 12, 12, 3)", "'extra': 1, "),
        _header("(2, 12, 12, 3)", "'shape': (2, 12, 12, 3), "),
        "'descr': '<f4', 'fortran_order': False, 'shape': (2, 12, 12, 3)\n",
        _header("(2, 12, 12, 3)") + "trailing\n",
        "{'descr': '<f4', 'fortran_order': Falsehood, 'shape': (2, 12, 12, 3)}\n",
    ],
    ids=["no_comma", "double_comma", "extra_key", "repeated_key", "no_braces", "trailing", "bad"],
)
def test_malformed_npy_header(anan_infer: Path, nhwc12: Path, tmp_path: Path, header: str) -> None:
    # Each carries the data of a (2, 12, 12, 3) float32 array, so only the header is wrong.
    path = tmp_path / "malformed.npy"
    path.write_bytes(_npy_bytes(header, bytes(4 * 2 * 12 * 12 * 3)))
    _refused(_run(anan_infer, nhwc12, path), "malformed .npy header", "numpy.save")


@pytest.mark.parametrize(
    ("version", "length", "words"),
    [
        (2, 0xFFFFFFF0, ("4294967280", "exceeds 10000")),
        (1, 5000, ("truncated .npy header", "claims 5000 bytes")),
    ],
    ids=["4_gib_header", "header_beyond_file"],
)
def test_npy_header_length_is_bounded(
    anan_infer: Path,
    nhwc12: Path,
    tmp_path: Path,
    version: int,
    length: int,
    words: tuple[str, ...],
) -> None:
    path = tmp_path / "long_header.npy"
    path.write_bytes(_npy_bytes(_header("(1, 12, 12, 3)"), version=version, length=length))
    _refused(_run(anan_infer, nhwc12, path), *words)


# --- PPM/PGM headers that lie --------------------------------------------------------------


def test_small_ppm_claiming_3_gib(anan_infer: Path, nhwc12: Path, tmp_path: Path) -> None:
    path = tmp_path / "big.ppm"
    path.write_bytes(b"P6\n32768 32768\n255\n" + bytes(100))
    message = _refused(_run(anan_infer, nhwc12, path), "big.ppm", "truncated")
    assert str(32768 * 32768 * 3) in message


@pytest.mark.parametrize("digits", ["99999999999999999999999", "32769"])
def test_ppm_side_beyond_the_bound(
    anan_infer: Path, nhwc12: Path, tmp_path: Path, digits: str
) -> None:
    path = tmp_path / "wide.ppm"
    path.write_bytes(b"P6\n" + digits.encode() + b" 12\n255\n" + bytes(100))
    _refused(_run(anan_infer, nhwc12, path), "width exceeds 32768")


# --- paths that are not regular files ------------------------------------------------------


@pytest.mark.parametrize("role", ["npy", "image", "model"])
def test_fifo_is_refused_without_blocking(
    anan_infer: Path, nhwc12: Path, tmp_path: Path, fifo: Path, role: str
) -> None:
    np.save(tmp_path / "batch.npy", np.zeros((1, 12, 12, 3), np.float32))
    if role == "model":
        outcome = _run(anan_infer, fifo, tmp_path / "batch.npy")
    elif role == "npy":
        outcome = _run(anan_infer, nhwc12, fifo)
    else:  # one FIFO among real images: the whole batch is refused
        image = tmp_path / "real.ppm"
        image.write_bytes(b"P6\n12 12\n255\n" + bytes(12 * 12 * 3))
        outcome = _run(anan_infer, nhwc12, image, fifo)
    kind = "model file" if role == "model" else "input file"
    _refused(outcome, f"{kind} {fifo} is a FIFO", "not a regular file")


@pytest.mark.parametrize("role", ["model", "input"])
def test_directory_is_refused(anan_infer: Path, nhwc12: Path, tmp_path: Path, role: str) -> None:
    np.save(tmp_path / "batch.npy", np.zeros((1, 12, 12, 3), np.float32))
    folder = tmp_path / "folder.onnx"
    folder.mkdir()
    args = (folder, tmp_path / "batch.npy") if role == "model" else (nhwc12, folder)
    _refused(_run(anan_infer, *args), f"{role} file {folder} is a directory")


def test_device_is_refused(anan_infer: Path, nhwc12: Path) -> None:
    _refused(_run(anan_infer, nhwc12, "/dev/zero"), "is a character device", "regular file")


def test_empty_model_is_refused(anan_infer: Path, tmp_path: Path) -> None:
    (tmp_path / "empty.onnx").write_bytes(b"")
    np.save(tmp_path / "batch.npy", np.zeros((1, 12, 12, 3), np.float32))
    _refused(_run(anan_infer, tmp_path / "empty.onnx", tmp_path / "batch.npy"), "is empty")
