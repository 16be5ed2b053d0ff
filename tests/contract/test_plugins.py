"""The plugin contracts: every registered exporter, importer, rewriter and audit check runs
the suite of its kind (issue 23; the registries are ``amlport.plugins.Registry``).

Parametrised over the registries themselves, so a plugin added to one (a built-in, or an
exporter installed under ``amlport.exporters.v1``) runs the suite without a line here.

- exporters, over every item of every fixture workspace: ``accepts`` answers a bool and never
  raises; an accepted item exports to an ``AssetEntry`` of one of the exporter's kinds whose
  files are all files the exporter put into the bundle (or is ``AssetUnsupported``), and the
  same twice;
- importers: the registry entry resolves to a class whose ``name`` is the entry's name, with
  ``plan`` and ``apply`` (the end-to-end behaviour is tests/integration: datastore, v2 assets,
  MLflow registry);
- rewriters, over the example of each family in docs/uri-forms.md, both directions: the text
  parses to that family, and the family module leaves it, re-binds it to text that parses, or
  refuses it with ``KeepWithWarning``/``Unmappable`` — nothing else escapes;
- audit checks, over the control planes of fixtures/arm (good, bad, and nothing known): every
  outcome is a list, a rule of the catalogue names the check, and no check raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache

import pytest
from helpers import REPO_ROOT
from helpers.rewriter_identities import EXPORT, IMPORT
from helpers.walkfacts import WORKSPACES, scanned

from amlport.audit.armfiles import load_arm_folder
from amlport.audit.catalog import load_rules
from amlport.audit.dataplane import NO_SOURCE_REASON
from amlport.audit.engine import CheckContext
from amlport.audit.facts import ControlPlane, DataPlane, merge
from amlport.audit.runner import CHECKS
from amlport.export.selection import INCLUDE_KINDS, select
from amlport.exporters import EXPORTERS, registered
from amlport.exporters.base import KINDS, AssetUnsupported, ExportContext, ExportItem
from amlport.importers import IMPORTERS
from amlport.model.manifest import AssetEntry
from amlport.model.uris import UriError, parse_uri
from amlport.rewriters import FAMILY_MODULES, KeepWithWarning, Unmappable

registered()  # the entry-point plugins join the registry before it is parametrised over
FIXTURES = sorted(p.name for p in WORKSPACES.iterdir() if p.is_dir())


class RecordingSink:
    """The ``FileSink`` an exporter writes through, keeping every bundle path it handed out."""

    def __init__(self, inventory_blobs: set[tuple[str, str]]) -> None:
        self.blobs = inventory_blobs
        self.paths: set[str] = set()

    def bundle_path(self, container: str, name: str) -> str:
        return f"files/{container}/{name}"

    def add_blob(self, container: str, name: str) -> str:
        path = self.bundle_path(container, name)
        self.paths.add(path)
        return path

    def add_folder(self, container: str, prefix: str) -> list[str]:
        start = prefix.rstrip("/") + "/" if prefix else ""
        return [self.add_blob(c, n) for c, n in sorted(self.blobs)
                if c == container and n.startswith(start)]  # fmt: skip

    def add_generated(self, bundle_path: str, data: bytes) -> str:
        self.paths.add(bundle_path)
        return bundle_path


@cache
def _workspace(name: str) -> tuple[object, object, list[ExportItem], set[tuple[str, str]]]:
    inv, lg = scanned(name)
    chosen = select(inv, lg, [], frozenset(INCLUDE_KINDS))
    from amlport.storage.local import LocalSource

    blobs = {(b.container, b.name) for b in LocalSource(WORKSPACES / name).list_blobs()}
    return inv, lg, chosen.items, blobs


def _context(name: str) -> tuple[ExportContext, RecordingSink, list[ExportItem]]:
    inv, lg, items, blobs = _workspace(name)
    sink = RecordingSink(blobs)
    warnings: list[str] = []
    ctx = ExportContext(inv, lg, sink, warnings.append, selected={i.node for i in items})  # type: ignore[arg-type]
    return ctx, sink, items


def _exported(exporter: object, item: ExportItem, ctx: ExportContext) -> AssetEntry | None:
    try:
        return exporter.export(item, ctx)  # type: ignore[attr-defined,no-any-return]
    except AssetUnsupported:
        return None


# --- exporters ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(EXPORTERS))
def test_an_exporter_names_itself_and_its_kinds(name: str) -> None:
    exporter = EXPORTERS[name]
    assert exporter.name == name
    assert exporter.kinds and set(exporter.kinds) <= set(KINDS)


def _run(exporter: object, fixture: str) -> list[AssetEntry | None]:
    """Every item of a fixture offered to one exporter, in order, as an export run does."""
    ctx, sink, items = _context(fixture)
    entries: list[AssetEntry | None] = []
    for item in items:
        accepted = exporter.accepts(item, ctx)  # type: ignore[attr-defined]
        assert isinstance(accepted, bool), (item, accepted)
        if not accepted:
            continue
        assert item.kind in exporter.kinds, item  # type: ignore[attr-defined]
        entry = _exported(exporter, item, ctx)
        entries.append(entry)
        if entry is None:
            continue
        assert isinstance(entry, AssetEntry) and entry.kind in exporter.kinds, entry  # type: ignore[attr-defined]
        assert entry.name and entry.id, entry
        assert set(entry.files) <= sink.paths, sorted(set(entry.files) - sink.paths)[:3]
    return entries


@pytest.mark.parametrize("fixture", FIXTURES)
@pytest.mark.parametrize("name", list(EXPORTERS))
def test_an_exporter_accepts_or_declines_and_exports_what_it_accepts(
    name: str, fixture: str
) -> None:
    exporter = EXPORTERS[name]
    assert _run(exporter, fixture) == _run(exporter, fixture)  # and the same every time


def test_every_fixture_item_kind_has_an_exporter() -> None:
    kinds = {i.kind for f in FIXTURES for i in _workspace(f)[2]}
    assert kinds <= {k for e in EXPORTERS.values() for k in e.kinds}


# --- importers ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(IMPORTERS))
def test_an_importer_resolves_to_a_class_of_its_name(name: str) -> None:
    cls = IMPORTERS[name]
    assert isinstance(cls, type) and cls.name == name  # type: ignore[attr-defined]
    assert callable(getattr(cls, "plan", None)) and callable(getattr(cls, "apply", None))


# --- rewriters ---------------------------------------------------------------------------


@cache
def _examples() -> dict[str, list[str]]:
    """family -> every URI written in docs/uri-forms.md and docs/rewriting.md that parses."""
    found: dict[str, list[str]] = {}
    for doc in ("uri-forms.md", "rewriting.md"):
        text = (REPO_ROOT / "docs" / doc).read_text(encoding="utf-8")
        for candidate in dict.fromkeys(re.findall(r"`([^`\s]+)`", text)):
            try:
                family = parse_uri(candidate).family
            except UriError:
                continue  # prose, a placeholder or an ellipsis
            found.setdefault(family, []).append(candidate)
    return found


def _family_cases() -> Iterator[tuple[str, str]]:
    for family in FAMILY_MODULES:
        for example in _examples().get(family, []):
            yield family, example


def test_every_rewriter_family_has_a_documented_example() -> None:
    assert sorted(set(FAMILY_MODULES) - set(_examples())) == []


@pytest.mark.parametrize("rules", [EXPORT, IMPORT], ids=["export", "import"])
@pytest.mark.parametrize(("family", "example"), list(_family_cases()))
def test_a_rewriter_rebinds_keeps_or_refuses(family: str, example: str, rules: object) -> None:
    parsed = parse_uri(example)
    assert parsed.family == family
    module = FAMILY_MODULES[family]
    assert family in module.FAMILIES
    try:
        after = module.rewrite(parsed, rules)  # type: ignore[arg-type]
    except (KeepWithWarning, Unmappable):
        return
    assert after is None or (isinstance(after, str) and parse_uri(after).family)


# --- audit checks ------------------------------------------------------------------------


def _planes() -> dict[str, ControlPlane]:
    arm = REPO_ROOT / "fixtures" / "arm"
    return {"unknown": ControlPlane(), **{p.name: load_arm_folder(p) for p in sorted(arm.iterdir())
                                          if p.is_dir()}}  # fmt: skip


def test_every_audit_check_is_named_by_a_rule() -> None:
    assert {r.check for r in load_rules()} == set(CHECKS)


@pytest.mark.parametrize("plane", ["unknown", "good", "bad"])
@pytest.mark.parametrize("name", list(CHECKS))
def test_an_audit_check_answers_without_raising(name: str, plane: str) -> None:
    dp = DataPlane.not_checked(NO_SOURCE_REASON)
    facts = merge(dp, _planes()[plane], containers=())
    rule = next(r for r in load_rules() if r.check == name)
    outcomes = CHECKS[name](rule, CheckContext(facts=facts, inventory=None))
    assert isinstance(outcomes, list)
