"""Test tiers and the doctest namespace, for every test under the repository root.

Two tiers (CONTRIBUTING.md):

- **fast** (plain ``pytest``): the unit and property tests and the package's doctests —
  minutes on 2 cores, a few GB at most, no browsers, no C++ or Node builds, no conversion of
  large Keras models;
- **integration** (``pytest --tier integration``): everything that needs tools outside
  Python (marked ``cpp``, ``node``, ``browser``) or much time or memory (marked
  ``integration``, or in a file of ``INTEGRATION_FILES``).

``--tier all`` runs both (``tools/test.sh`` does, in two runs). The long property runs
(``slow``) run only when ``-m`` names them; an ``-m`` that names ``integration`` picks
tests by that expression alone.
"""

from __future__ import annotations

import numpy as np
import pytest
from _pytest.doctest import DoctestItem, DoctestModule

#: files whose every test belongs to the integration tier (relative to the repository)
INTEGRATION_FILES = frozenset(
    {
        "tests/compress/test_bundled.py",  # the documented INT8 workflow on the bundled CNN
        "tests/convert/test_keras_applications.py",
        "tests/convert/test_tf_to_onnx.py",  # a weight-heavy Keras model's memory, measured
        "tests/research/test_train_base_cnn.py",  # trains CNNs
        "tests/tools/test_keras_apps_report.py",  # runs pytest in a child process
        "tests/evaluation/test_ray_engine.py",  # starts a Ray cluster: minutes on 2 cores
        "tests/test_readme.py",
        "tests/benchmarks/test_bench.py",
    }
)
#: markers that put a test in the integration tier
INTEGRATION_MARKS = ("integration", "cpp", "node", "browser", "litert")
TIERS = ("fast", "integration", "all")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--tier",
        choices=TIERS,
        default="fast",
        help="fast (default): unit tests and doctests; integration: runtimes, builds, "
        "large models; all: both",
    )


def pytest_collect_file(file_path, parent: pytest.Collector) -> pytest.Collector | None:
    """The package's modules are collected for their docstring examples (as
    ``--doctest-modules`` would, but for ``anan_onnx/`` only: test files and conftests are
    not doctest modules)."""
    package = parent.config.rootpath / "anan_onnx"
    if file_path.suffix == ".py" and file_path.is_relative_to(package):
        return DoctestModule.from_parent(parent, path=file_path)
    return None


def is_integration(item: pytest.Item) -> bool:
    relative = item.path.relative_to(item.config.rootpath).as_posix()
    return relative in INTEGRATION_FILES or any(
        item.get_closest_marker(m) for m in INTEGRATION_MARKS
    )


@pytest.hookimpl(trylast=True)  # after tests/conftest.py has added the tool markers
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tier = config.getoption("--tier")
    if tier == "all" or "integration" in (config.option.markexpr or ""):
        return
    wanted = tier == "integration"
    dropped = [item for item in items if is_integration(item) != wanted]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if is_integration(item) == wanted]


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest) -> None:
    """The names the package's docstring examples use without importing them: numpy as
    ``np`` and the public names of ``anan_onnx`` (doctests only: other tests import what
    they use)."""
    if not isinstance(request.node, DoctestItem):
        return
    import anan_onnx

    namespace = request.getfixturevalue("doctest_namespace")
    namespace["np"] = np
    namespace.update({name: getattr(anan_onnx, name) for name in anan_onnx.__all__})
