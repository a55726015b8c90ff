"""The support kit and the bench import no test code: no pytest, no test modules, no kmock
internals. The bench uses the kit (``tests.support``) and the product packages only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Every tests.* package but the kit holds tests; none of it is importable outside pytest.
ALLOWED_TESTS_PACKAGE = "tests.support"
REFUSED = ("pytest", "_pytest", "kmock._internal")


def _imported(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import in ``tree``, nested ones included.

    ``from a.b import c`` counts as ``a.b.c``: ``from tests import integration`` is refused and
    ``from tests import support`` is not.
    """
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def violations(source: str) -> list[str]:
    """Each import in ``source`` that the kit or the bench must not make, with its line."""
    bad = []
    for line, module in _imported(ast.parse(source)):
        refused = any(_within(module, name) for name in REFUSED)
        test_code = _within(module, "tests") and not _within(module, ALLOWED_TESTS_PACKAGE)
        if refused or test_code:
            bad.append(f"line {line}: {module}")
    return bad


def _checked_files() -> list[Path]:
    return sorted([*(ROOT / "bench").rglob("*.py"), *(ROOT / "tests" / "support").rglob("*.py")])


def test_the_kit_and_the_bench_import_no_test_code() -> None:
    files = _checked_files()
    assert len(files) > 20, f"found only {len(files)} files under bench/ and tests/support/"
    found = {
        str(path.relative_to(ROOT)): bad
        for path in files
        if (bad := violations(path.read_text(encoding="utf-8")))
    }
    assert found == {}


@pytest.mark.parametrize(
    "source",
    [
        "import pytest",
        "import _pytest.monkeypatch",
        "from pytest import MonkeyPatch",
        "def f():\n    import pytest",
        "from tests.integration.test_operator_kmock import x",
        "from tests.unit import test_spec",
        "import tests.cluster.conftest",
        "from tests import integration",
        "import tests",
        "from kmock._internal import dicts",
        "from kmock import _internal",
    ],
)
def test_each_forbidden_import_is_caught(source: str) -> None:
    assert violations(source), source


@pytest.mark.parametrize(
    "source",
    [
        "from tests.support.processes import free_port",
        "from tests.support import errors",
        "from tests import support",
        "import tests.support.cluster.harness",
        "import kmock",
        "from nodelab.kube import main",
        "from . import sibling",
        "import pytesting_tools",
    ],
)
def test_the_kit_the_product_and_libraries_are_allowed(source: str) -> None:
    assert violations(source) == []
