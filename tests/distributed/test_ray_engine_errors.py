"""What the user sees when a Ray run of tune/evaluate fails after Ray's retries: one line
and what to do, not a Ray traceback. The failures are Ray's own exception types, raised
by a stand-in for ``ray.get`` (no cluster: fast tier)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import ray.exceptions as ray_exceptions  # a test dependency (the dev extra)

from anan_onnx.distributed.ray_engine import RayEngine
from anan_onnx.errors import AnanError

HINT = "a node was lost or ran out of memory: raise --workers / object store memory, or rerun"


def _engine_whose_get_raises(exc: Exception) -> RayEngine:
    def get(refs):
        raise exc

    engine = object.__new__(RayEngine)  # no cluster: only _get is used
    engine._ray = SimpleNamespace(exceptions=ray_exceptions, get=get)
    return engine


@pytest.mark.parametrize(
    "failure",
    [
        ray_exceptions.WorkerCrashedError(),  # a worker died more often than it is retried
        ray_exceptions.OutOfMemoryError(
            "Task was killed due to the node running low on memory.\nMemory on the node..."
        ),
        ray_exceptions.ObjectLostError("ab" * 14, None, ""),
        ray_exceptions.NodeDiedError("node 1 died"),
        # a reduce task whose argument was lost: Ray's failure inside a task's error
        ray_exceptions.RayTaskError(
            "reduce", "Traceback ...", ray_exceptions.ObjectLostError("cd" * 14, None, "")
        ),
    ],
)
def test_a_ray_failure_is_one_line_with_what_to_do(failure):
    with pytest.raises(AnanError) as caught:
        _engine_whose_get_raises(failure)._get(["ref"])
    message = str(caught.value)
    assert message.startswith("the Ray run failed (") and message.endswith(HINT)
    assert "\n" not in message and type(caught.value).__name__ == "AnanError"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_an_anan_error_on_a_worker_is_its_message():
    failure = ray_exceptions.RayTaskError("shard", "Traceback ...", AnanError("cannot read x.png"))
    with pytest.raises(AnanError, match=r"^cannot read x\.png$"):
        _engine_whose_get_raises(failure)._get(["ref"])


def test_a_bug_in_a_task_keeps_its_traceback():
    failure = ray_exceptions.RayTaskError("shard", "Traceback ...", ValueError("a bug"))
    with pytest.raises(ray_exceptions.RayTaskError):
        _engine_whose_get_raises(failure)._get(["ref"])
