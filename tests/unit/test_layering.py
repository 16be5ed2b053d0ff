"""The direction of imports (docs/design/0000-map.md): every package sits on a floor and imports
only from floors below it; model/ and rewriters/ stay pure; only the CLI prints."""

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
        for path in sorted(root.rglob("*.py")) if root.is_dir() else [root]:
            for name in _imports(path):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    bad.append(f"{path.relative_to(REPO)} imports {name}")
    return bad


def test_model_and_rewriters_do_no_io() -> None:
    assert _violations(PURE_TREES, IO_MODULES) == []


def test_only_the_cli_prints() -> None:
    assert _violations(NO_CLI, ("amlport.cli", "rich.console", "typer")) == []
    every = tuple(p for n, p in _package_dirs().items() if n not in ("cli", "__main__"))
    assert _violations(every, ("amlport.cli", "rich.console", "typer")) == []


# --- the floors ---------------------------------------------------------------------------
# Bottom to top; a package imports only from a lower floor, never from its own (siblings stay
# independent: export and importing, backup and promote) or a higher one. Keys are the
# top-level names under ``amlport``: a package (``storage``), a module (``errors`` for
# errors.py), ``amlport`` for the package's own ``__init__`` (its version). The plugin trees
# exporters/, importers/, rewriters/ install as ``amlport.exporters`` & co.
FLOORS: tuple[tuple[str, ...], ...] = (
    ("secret_prefilter",),  # the native prefilter of the byte scan (secrets uses it)
    # leaf utilities
    ("amlport", "secrets", "streams", "plaintext", "progress", "processes", "memory"),
    ("errors", "plugins"),  # error types, the plugin registry (both redact through secrets)
    ("safeload",),  # the one YAML/JSON parser
    ("model",),  # pure value types, record formats (provenance), the map
    ("storage", "rewriters"),  # the I/O edge; pure URI/format rewriters
    ("walk", "bundle"),  # reading a workspace; the repository over a store
    ("lineage", "audit"),  # the graph from a walk; the audit of storage and ARM
    ("exporters", "report"),  # asset-kind plugins; the HTML report
    ("importers",),  # target plugins (may use exporters' parsers and audit's ARM client)
    ("export", "importing"),  # the two engines, siblings
    ("backup", "promote"),  # flows built from export and import
    ("cli",),  # the only place that prints
    ("__main__",),
)
PLUGIN_TREES = {"exporters": REPO / "exporters", "importers": REPO / "importers",
                "rewriters": REPO / "rewriters"}  # fmt: skip
# Known imports from a floor above, each with its owner; the lead removes an entry when the
# owner's change lands (the test fails on an entry no longer needed).
ALLOWED_UP: dict[tuple[str, str], str] = {}


def _floor_of() -> dict[str, int]:
    return {name: n for n, floor in enumerate(FLOORS) for name in floor}


def _package_dirs() -> dict[str, Path]:
    """Every top-level name under amlport, with the file or folder it lives in."""
    src = REPO / "src" / "amlport"
    names: dict[str, Path] = {"amlport": src / "__init__.py"}
    for child in sorted(src.iterdir()):
        if child.is_dir() and (child / "__init__.py").exists():
            names[child.name] = child
        elif child.suffix == ".py" and child.name != "__init__.py":
            names[child.stem] = child
    return {**names, **PLUGIN_TREES}


def _absolute(path: Path, node: ast.ImportFrom, package: str) -> str:
    """The module a (possibly relative) ``from`` import names."""
    if node.level == 0:
        return node.module or ""
    parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def _amlport_imports(path: Path, package: str) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append(_absolute(path, node, package))
    return [n for n in names if n == "amlport" or n.startswith("amlport.")]


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "amlport"


def _upward_imports() -> list[tuple[str, str, str]]:
    """(file, imported module, why) for every import that is not from a lower floor."""
    floor = _floor_of()
    found = []
    for name, where in _package_dirs().items():
        files = sorted(where.rglob("*.py")) if where.is_dir() else [where]
        for path in files:
            base = where if where.is_dir() else where.parent
            inner = path.parent.relative_to(base).parts if where.is_dir() else ()
            package = ".".join(("amlport", name, *inner)) if where.is_dir() else "amlport"
            for module in _amlport_imports(path, package):
                target = _top(module)
                if target == name or target not in floor:
                    continue
                if floor[target] >= floor[name]:
                    rel = path.relative_to(REPO).as_posix()
                    side = "its own floor" if floor[target] == floor[name] else "a higher floor"
                    found.append((rel, module, f"{name} imports {target} ({side})"))
    return found


def test_every_package_has_a_floor() -> None:
    assert sorted(set(_package_dirs()) - set(_floor_of())) == []
    assert sorted(set(_floor_of()) - set(_package_dirs())) == []


def test_no_package_imports_from_its_floor_or_above() -> None:
    bad = [f"{f} imports {m}: {why}" for f, m, why in _upward_imports()
           if (f, m) not in ALLOWED_UP]  # fmt: skip
    assert bad == [], "see docs/design/0000-map.md"


def test_every_allowed_exception_is_still_needed() -> None:
    needed = {(f, m) for f, m, _ in _upward_imports()}
    assert sorted(set(ALLOWED_UP) - needed) == []


def test_the_floor_checker_sees_relative_and_lazy_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from ..cli import common\n    import amlport.export\n")
    assert _amlport_imports(bad, "amlport.storage") == ["amlport.cli", "amlport.export"]


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("import azure.storage.blob\nfrom rich import print\n", encoding="utf-8")
    assert _imports(bad) == ["azure.storage.blob", "rich"]


def test_what_the_guard_needs_is_defined_once_below_bundle() -> None:
    """The repository URL parsing and the durable writes live in storage/ (the guard's floor);
    bundle/ re-exports them rather than keeping copies (docs/design/0000-map.md)."""
    from amlport.bundle import files, fsspec_store, location
    from amlport.storage import durable, repo_location

    for name in ("as_location", "is_fsspec", "is_remote", "split_url", "URL_HINT"):
        assert getattr(location, name) is getattr(repo_location, name)
    assert fsspec_store.is_fsspec is repo_location.is_fsspec
    assert fsspec_store.SCHEME_PREFIX == repo_location.SCHEME_PREFIX
    assert all(getattr(files, name) is getattr(durable, name) for name in durable.__all__)
