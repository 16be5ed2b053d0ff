"""The test suite stands alone (issue 23): no ``sys.path`` edits, nothing read from outside the
repository, and no helper defined twice (shared ones live in ``tests/helpers/``)."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

from helpers import REPO_ROOT, TESTS

# Public module-level helpers defined in two test modules on purpose, with who removes them
# (none now: a shared helper lives in tests/helpers/).
KNOWN_TWICE: dict[str, str] = {}


def _sources() -> list[Path]:
    return sorted(TESTS.rglob("*.py"))


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def test_no_test_module_edits_sys_path() -> None:
    edits = re.compile(r"sys\.path\s*(\.\s*(insert|append|extend)|\[|\+?=)")
    found = [
        f"{p.relative_to(REPO_ROOT)}:{n}"
        for p in _sources()
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if edits.search(line)
    ]
    assert found == [], "import helpers as `helpers.<module>` (pythonpath in pyproject.toml)"


def test_nothing_reads_a_folder_beside_the_repository() -> None:
    outside = re.compile(r"\.\./shared|[\"']shared[\"']\s*/|/\s*[\"']shared[\"']")
    files = [*_sources(), REPO_ROOT / "Makefile", REPO_ROOT / "pyproject.toml"]
    found = [
        f"{p.relative_to(REPO_ROOT)}:{n}"
        for p in files
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
        if outside.search(line)
    ]
    assert found == [], "copy what a test needs into fixtures/ (with its licence)"


def test_no_helper_is_defined_twice() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for path in _sources():
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            name = node.name
            if name.startswith(("test_", "_")) or _is_fixture(node):
                continue  # tests, module-private helpers and fixtures are per module
            where[name].append(str(path.relative_to(TESTS)))
    twice = {n: w for n, w in where.items() if len(w) > 1 and n not in KNOWN_TWICE}
    assert twice == {}, "move the helper into tests/helpers/ and import it"
    stale = {n for n in KNOWN_TWICE if len(where.get(n, [])) < 2}
    assert stale == set(), "remove these from KNOWN_TWICE"
