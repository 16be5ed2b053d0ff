"""The direction of imports the design brief fixes: model/ and rewriters/ stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IO_MODULES = (
    "azure",
    "fsspec",
    "rich",
    "typer",
    "requests",
    "amlport.storage",
    "amlport.cli",
    "amlport.walk",
    "amlport.bundle",
    "amlport.export",
)
PURE_TREES = (REPO / "src" / "amlport" / "model", REPO / "rewriters")
NO_CLI = (
    REPO / "src" / "amlport" / "walk",
    REPO / "src" / "amlport" / "lineage",
    REPO / "src" / "amlport" / "bundle",
    REPO / "src" / "amlport" / "audit",
    REPO / "src" / "amlport" / "storage",
    REPO / "exporters",
    REPO / "importers",
)


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _violations(roots: tuple[Path, ...], banned: tuple[str, ...]) -> list[str]:
    bad = []
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            for name in _imports(path):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_model_and_rewriters_do_no_io() -> None:
    assert _violations(PURE_TREES, IO_MODULES) == []


def test_only_the_cli_prints() -> None:
    assert _violations(NO_CLI, ("amlport.cli", "rich.console", "typer")) == []


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import azure.storage.blob\nfrom rich import print\n", encoding="utf-8")
    assert _imports(bad) == ["azure.storage.blob", "rich"]
