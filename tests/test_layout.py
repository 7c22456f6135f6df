"""The test tree's layout: helpers shared between test files live in tests/fixtures/ or a
conftest.py, so that no test file imports another (a test file imported elsewhere is
collected twice under two names, and its helpers change with its tests)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_test_modules(path: Path) -> list[str]:
    """The modules ``path`` imports (at any depth) one of whose dotted parts is a test
    module (``test_*``), e.g. ``test_tune`` or ``tests.runtime.test_own_scaling``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            modules = [base] + [f"{base}.{alias.name}".lstrip(".") for alias in node.names]
        else:
            continue
        found += [m for m in modules if any(p.startswith("test_") for p in m.split("."))]
    return sorted(set(found))


def test_no_test_file_imports_another_test_file():
    offenders = {
        str(path.relative_to(TESTS)): modules
        for path in sorted(TESTS.rglob("test_*.py"))
        if (modules := imported_test_modules(path))
    }
    assert offenders == {}, "move the shared helpers into tests/fixtures/ or a conftest.py"


def test_the_check_sees_module_and_function_level_imports(tmp_path):
    source = tmp_path / "test_sample.py"
    source.write_text(
        "import os\nfrom fixtures.evaluation_data import planted\n"
        "from tests.runtime.test_own_scaling import with_chain\n"
        "def helper():\n    import test_cpp_example as cpp\n    from . import test_tune\n"
    )
    assert imported_test_modules(source) == [
        "test_cpp_example",
        "test_tune",
        "tests.runtime.test_own_scaling",
        "tests.runtime.test_own_scaling.with_chain",
    ]
