"""Passes after a failed one are bounded by count; a user error is never retried."""

from __future__ import annotations

from pathlib import Path

import pytest

from anan_onnx.distributed.predict import _with_retries
from anan_onnx.errors import AnanError


def _flaky(failures: int, error: Exception):
    calls = []

    def run():
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return ["done"]

    return run, calls


def test_a_failed_pass_is_followed_by_another_at_most_retries_times():
    run, calls = _flaky(2, RuntimeError("actor unavailable"))
    assert _with_retries(run, 2, Path("out")) == ["done"] and len(calls) == 3
    run, calls = _flaky(3, RuntimeError("node lost"))
    with pytest.raises(AnanError, match="failed 3 times, last: node lost.*rerun the same"):
        _with_retries(run, 2, Path("out"))
    assert len(calls) == 3


def test_a_user_error_stops_at_once():
    run, calls = _flaky(1, AnanError("input x is missing on worker node n"))
    with pytest.raises(AnanError, match="missing on worker"):
        _with_retries(run, 5, Path("out"))
    assert len(calls) == 1
