"""The Keras export's memory: tf2onnx's optimisers keep their error handling, and a model
whose weights dominate converts in a bounded multiple of their size (it took 76x, VGG16
was killed at 22.8 GB: anan_onnx/convert/tf_to_onnx.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from anan_onnx.convert.tf_to_onnx import _Guarded


class _Renamer:
    """A tf2onnx-like optimiser: renames the graph it gets, or fails half-way."""

    def __init__(self, fail: bool) -> None:
        self.fail, self.graph_been_opt = fail, False

    def optimize(self, graph: dict, iteration: int) -> dict:
        graph["name"] = f"renamed {iteration}"
        if self.fail:
            raise ValueError("optimiser bug")
        self.graph_been_opt = True
        return graph


def test_an_optimiser_runs_on_a_copy_and_reports_a_change() -> None:
    graph = {"name": "g"}
    guarded = _Guarded(_Renamer(fail=False))
    assert guarded.optimize(graph, 2) == {"name": "renamed 2"}
    assert graph == {"name": "g"}  # the caller's graph was not touched
    assert guarded.graph_been_opt


def test_a_failing_optimiser_leaves_the_graph_as_it_was() -> None:
    graph = {"name": "g"}
    guarded = _Guarded(_Renamer(fail=True))
    assert guarded.optimize(graph, 0) is graph
    assert graph == {"name": "g"}  # not half-renamed
    assert not guarded.graph_been_opt  # so optimize_graph's loop does not go round again


#: a Conv + Flatten -> Dense(256) -> Dense(256) -> Dense(10) model: 25 MiB of weights, 95%
#: in the first Dense; saved by one process and converted by another, as the CLI does
_BUILD = textwrap.dedent(
    """
    import sys, keras
    keras.utils.set_random_seed(0)
    x = keras.Input((28, 28, 3))
    y = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(256, activation="relu")(keras.layers.Dense(256)(y))
    model = keras.Model(x, keras.layers.Dense(10)(y))
    model.save(sys.argv[1])
    print(model.count_params() * 4)
    """
)

#: converts it and prints its peak memory beyond what the imports took, in bytes
_CONVERT = textwrap.dedent(
    """
    import sys
    import keras, tensorflow, tf2onnx
    from anan_onnx import AnanParams, convert_file

    def peak():  # this process's own peak (ru_maxrss counts the parent's RSS at the spawn)
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if "VmHWM" in line)

    before = peak()
    convert_file(sys.argv[1], sys.argv[2], AnanParams())
    print(peak() - before)
    """
)


def _child(script: str, *args: str) -> int:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return int(done.stdout.split()[-1])


@pytest.mark.keras
def test_a_weight_heavy_model_converts_in_bounded_memory(tmp_path) -> None:
    """Peak beyond the imports: ~18x the weights here (76x before tf_to_onnx). Measured
    from the peak after the imports, so it can only under-count: the bound cannot fail
    on a busy machine, only when copies of the weights pile up again."""
    pytest.importorskip("keras", reason="the 'keras' extra is needed for Keras tests")
    if not os.path.exists("/proc/self/status"):
        pytest.skip("the peak is read from Linux's /proc/self/status (VmHWM)")
    source = str(tmp_path / "dense.keras")
    weights = _child(_BUILD, source)
    multiple = _child(_CONVERT, source, str(tmp_path / "dense.anan.onnx")) / weights
    assert 1 < multiple < 35, f"converting took {multiple:.1f}x the model's weights"
