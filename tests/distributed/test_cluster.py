"""Integration tier: ``predict --engine ray`` on a real two-node Ray cluster on this machine
(``ray start --head`` + ``ray start --address``, one CPU each) reading a bucket of a local
S3-compatible server (moto) and a folder; a node's raylet killed mid-run; a resumed rerun.

The CLI runs as a separate driver process, as an operator runs it, with Ray's deprecation
warnings as errors (:data:`DRIVER`; the CLI keeps a caller's error filters). Every
process the cluster starts inherits a marker variable, by which the teardown finds and ends
them (never ``ray stop``: other Ray clusters on the machine are not ours).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from distributed_helpers import write_images, write_model

from anan_onnx.distributed.predict import JobOptions, predict_parts

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
RAY = Path(sys.executable).with_name("ray")
MOTO = Path(sys.executable).with_name("moto_server")
BUCKET = "images"
#: ``python -m anan_onnx`` with Ray's deprecation warnings as errors: a subprocess does not
#: see the pytest marks, and ``-W`` cannot name Ray's category (not importable at start-up)
DRIVER = [sys.executable, "-c", "import sys, warnings; from ray.util.annotations import "
          "RayDeprecationWarning as W; warnings.simplefilter('error', W); "
          "from anan_onnx.cli import main; sys.exit(main())"]  # fmt: skip
S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
          "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


def _marked(marker: str) -> list[int]:
    """The processes whose environment holds ``marker`` (the cluster's, and only those)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def _raylets(marker: str) -> set[int]:
    """The raylets (one per node) among the cluster's processes."""
    found = set()
    for pid in _marked(marker):
        try:
            if b"raylet/raylet" in Path(f"/proc/{pid}/cmdline").read_bytes():
                found.add(pid)
        except OSError:
            continue
    return found


@pytest.fixture(scope="module")
def s3(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A moto S3 server on 127.0.0.1 with a bucket holding 20 images under imgs/."""
    from pyarrow import fs

    port = _free_port()
    server = subprocess.Popen([str(MOTO), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        _wait_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        store = fs.S3FileSystem(endpoint_override=endpoint, access_key="test", secret_key="test",
                                region="us-east-1", allow_bucket_creation=True)  # fmt: skip
        store.create_dir(BUCKET)
        local = tmp_path_factory.mktemp("bucket")
        for path in write_images(local, 20, seed=7):
            key = f"{BUCKET}/imgs/{path.relative_to(local).as_posix()}"
            with store.open_output_stream(key) as f:
                f.write(path.read_bytes())
        yield {**S3_ENV, "AWS_ENDPOINT_URL": endpoint}
    finally:
        server.terminate()
        server.wait(30)


@pytest.fixture(scope="module")
def cluster(s3) -> Iterator[dict[str, object]]:
    """Two Ray nodes of one CPU each; auth off for this loopback-only cluster (docs/scale.md)."""
    marker = f"ANAN_TEST_CLUSTER={uuid.uuid4().hex}"
    port = _free_port()
    # RAY_TMPDIR: the cluster's sessions and its ray_current_cluster file stay out of
    # /tmp/ray, where every ray.init() on the machine would find (and join) this cluster
    # (short: Ray's socket paths must fit 107 characters)
    temp = tempfile.mkdtemp(prefix="anan-ray-", dir="/tmp")
    env = {**os.environ, **s3, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO),
           "RAY_TMPDIR": temp, marker.split("=")[0]: marker.split("=")[1]}  # fmt: skip
    common = ["--num-cpus=1", "--node-ip-address=127.0.0.1", "--disable-usage-stats"]
    try:
        subprocess.run([str(RAY), "start", "--head", f"--port={port}",
                        "--include-dashboard=false", *common],
                       env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
        head = _raylets(marker)
        subprocess.run([str(RAY), "start", f"--address=127.0.0.1:{port}", *common],
                       env=env, check=True, capture_output=True, timeout=120)  # fmt: skip
        worker = sorted(_raylets(marker) - head)
        assert len(worker) == 1, "the second node's raylet was not found"
        yield {"address": f"127.0.0.1:{port}", "env": env, "worker_raylet": worker[0]}
    finally:
        for pid in _marked(marker):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def _predict(cluster, *argv: object) -> subprocess.Popen[str]:
    env = cluster["env"]
    return subprocess.Popen(
        [*DRIVER, "predict", *map(str, argv), "--engine", "ray",
         "--address", str(cluster["address"])],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
    )  # fmt: skip


def _parts(out: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.glob("part-*.parquet"))}


def test_a_bucket_and_a_folder_on_two_nodes(cluster, s3, tmp_path, monkeypatch):
    model = write_model(tmp_path / "m.onnx")
    folder = tmp_path / "imgs"
    write_images(folder, 10)
    uri = f"s3://{BUCKET}/imgs"
    proc = _predict(cluster, model, uri, folder, "-o", tmp_path / "ray", "--block-images", 4)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "predicted 30 of 30 inputs in 8 parts" in stdout
    for key, value in s3.items():  # the same inputs read here, by the local engine
        monkeypatch.setenv(key, value)
    local = predict_parts(model, [uri, folder], tmp_path / "local", options=JobOptions(block=4))
    assert local.images == 30 and local.failed == 0
    assert _parts(tmp_path / "ray") == _parts(tmp_path / "local")
    rows = (tmp_path / "ray" / "_inputs" / "part-00000-000000.txt").read_text().split()
    assert rows[0] == f"{uri}/a/img0000.png"  # the bucket listed by a Ray task, sorted


#: Runs a command and prints its peak resident memory (KiB) last on stderr: the child's
#: own peak, not that of every process this test session has waited for.
_PEAK = (
    "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); "
    "sys.exit(code)"
)


def test_the_driver_memory_does_not_grow_with_the_input_count(cluster, tmp_path):
    model = write_model(tmp_path / "m.onnx")
    peaks = {}
    for n in (300, 30_000):
        write_images(tmp_path / f"imgs{n}", n)
        proc = subprocess.run(
            [sys.executable, "-c", _PEAK, *DRIVER, "predict", str(model),
             str(tmp_path / f"imgs{n}"), "--engine", "ray", "--address", str(cluster["address"]),
             "-o", str(tmp_path / f"out{n}"), "--block-images", "1000"],
            env=cluster["env"], capture_output=True, text=True, cwd=REPO, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        peaks[n] = int(proc.stderr.strip().splitlines()[-1])
    # the bound: +5 % from 300 to 30,000 images (measured +0.5 %: docs/scale.md)
    assert peaks[30_000] <= 1.05 * peaks[300], peaks


def test_a_node_killed_mid_run_then_a_rerun_resumes(cluster, tmp_path):
    model = write_model(tmp_path / "m.onnx")
    folder = tmp_path / "imgs"
    write_images(folder, 300)
    out = tmp_path / "ray"
    args = (model, folder, "-o", out, "--block-images", 10)
    proc = _predict(cluster, *args)
    deadline = time.monotonic() + 240
    while len(list(out.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before a node could be killed"
    os.kill(int(cluster["worker_raylet"]), signal.SIGKILL)  # the second node is gone
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert "predicted 300 of 300 inputs in 30 parts" in stdout
    clean = predict_parts(model, [folder], tmp_path / "local", options=JobOptions(block=10))
    assert _parts(out) == _parts(tmp_path / "local")
    assert (out / "manifest.json").read_text() == (tmp_path / "local" / "manifest.json").read_text()
    assert clean.failed == 0
    again = _predict(cluster, *args)
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0 and "30 parts resumed" in stdout, stderr
