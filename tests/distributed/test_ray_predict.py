"""``predict --engine ray -o DIR``: the local engine's parts, byte for byte, written by the
workers; relative paths resolved on the driver; a worker killed mid-run is retried; a worker
that cannot see the data fails the job at once. Ray's deprecation warnings are errors here.

Faults are injected from the tests: a subclass of the actor, defined inside the test (so
that Ray ships it by value), replaces ``predict._RayParts`` for one run.
"""

from __future__ import annotations

import os
import time

import pytest
from distributed_helpers import run

from anan_onnx.distributed import predict
from anan_onnx.distributed.predict import JobOptions, predict_parts

pytestmark = [
    pytest.mark.integration,  # a Ray cluster: tens of seconds on 2 cores (as test_ray_engine)
    pytest.mark.filterwarnings("error::ray.util.annotations.RayDeprecationWarning"),
]


def _parts(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def test_ray_writes_the_local_parts_from_relative_paths(
    model, tree, tmp_path, monkeypatch, ray_cluster
):
    folder, good, broken = tree
    options = JobOptions(block=5, batch_size=4)
    local = predict_parts(model, [folder], tmp_path / "local", options=options)
    monkeypatch.chdir(folder.parent)  # relative inputs: resolved here, not on the workers
    spread = predict_parts(model, ["imgs"], tmp_path / "ray", engine="ray", options=options)
    assert (spread.images, spread.failed, spread.parts) == (13, 1, 3)
    assert spread.checksum == local.checksum and "broken.png" in spread.first_error
    assert _parts(tmp_path / "ray") == _parts(tmp_path / "local")
    manifest = {d: (tmp_path / d / "manifest.json").read_text() for d in ("local", "ray")}
    assert manifest["ray"] == manifest["local"]


def test_a_predict_actor_killed_mid_run_is_retried(model, tree, tmp_path, monkeypatch, ray_cluster):
    folder, _, _ = tree
    marker = tmp_path / "killed.txt"

    class DyingOnce(predict._RayParts):
        def __call__(self, batch):
            if not marker.exists():
                marker.write_text(f"killed process {os.getpid()}\n")
                os._exit(1)  # as a crash would: no cleanup, the part is lost
            return super().__call__(batch)

    options = JobOptions(block=4, batch_size=4)
    clean = predict_parts(model, [folder], tmp_path / "clean", engine="ray", options=options)
    monkeypatch.setattr(predict, "_RayParts", DyingOnce)
    again = predict_parts(model, [folder], tmp_path / "out", engine="ray", options=options)
    assert marker.is_file()  # a worker really died
    assert (again.images, again.checksum) == (clean.images, clean.checksum)
    assert _parts(tmp_path / "out") == _parts(tmp_path / "clean")


def test_a_worker_that_cannot_see_the_data_fails_the_job_at_once(
    model, tree, tmp_path, monkeypatch, capsys, ray_cluster
):
    folder, _, _ = tree
    hidden = str(folder / "b")

    class Blind(predict._RayParts):
        """A worker on a node where folder/b is not mounted."""

        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            real = os.path.lexists
            os.path.lexists = lambda p: not str(p).startswith(hidden) and real(p)

    monkeypatch.setattr(predict, "_RayParts", Blind)
    start = time.monotonic()
    code, stdout, stderr = run(capsys, "predict", model, folder, "--engine", "ray",
                               "-o", tmp_path / "out", "--block-images", 3)  # fmt: skip
    assert time.monotonic() - start < 60
    assert code == 2 and not stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and f"input {hidden}" in lines[0] and "is missing on worker" in lines[0]
    assert not (tmp_path / "out" / "manifest.json").exists()
