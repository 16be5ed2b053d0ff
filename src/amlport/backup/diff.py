"""Compare two sides (snapshots or live sources): assets, runs, files, lineage, audit facts.

- **Assets** and **runs** (assets of kind ``run``) are matched by ``(kind, id)``: added,
  removed, or changed when their file lists differ or a common file differs.
- A **file** differs when the stored digests differ (two snapshots); against a live source,
  when the listing says so (size, MD5, or the incremental index), and only when nothing
  cheaper decides, by the digest of what a backup would store now (read, and rewritten to the
  neutral form where the file binds to storage — so a restored copy in another account equals
  its snapshot).
- **Lineage**: nodes and edges (``source → target`` per edge kind) of each side's recorded
  subgraph; a live side's graph is built fresh from its walk.
- **Audit facts**: each side's walk-decided audit outcomes that did not pass, as multisets
  of ``(rule, state, subject)`` (``backup/facts.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any, Protocol

from amlport.backup.facts import AuditFact, compare_facts
from amlport.memory import trim_heap
from amlport.model.manifest import AssetEntry


class Side(Protocol):
    label: str

    @property
    def assets(self) -> list[AssetEntry]: ...

    @property
    def lineage(self) -> dict[str, Any]: ...

    def paths(self) -> AbstractSet[str]: ...

    def size_of(self, path: str) -> int: ...

    def stored_digest(self, path: str) -> str | None: ...

    def source_size(self, path: str) -> int | None: ...

    def listing_md5(self, path: str) -> str | None: ...

    def source_md5(self, path: str) -> str | None: ...

    def final_digest(self, path: str) -> str: ...

    def audit_facts(self) -> list[AuditFact]: ...

    def compared(self) -> None:
        """The files, assets and lineage have been compared: let go of what only that
        needed (``audit_facts`` still answers; once it has, of what it needed too)."""
        ...


def same_file(path: str, a: Side, b: Side) -> bool:
    """Would both sides store the same bytes at ``path``? Cheapest evidence first."""
    da, db = a.stored_digest(path), b.stored_digest(path)
    if da is not None and db is not None:
        return da == db
    sa, sb = a.source_size(path), b.source_size(path)
    if sa is not None and sb is not None and sa != sb:
        return False
    if a.listing_md5(path) or b.listing_md5(path):
        ma, mb = a.source_md5(path), b.source_md5(path)
        if ma is not None and mb is not None:
            return ma == mb
    return a.final_digest(path) == b.final_digest(path)


@dataclass(frozen=True)
class AssetRef:
    kind: str
    id: str
    name: str
    files: int = 0

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class AssetChange:
    kind: str
    id: str
    name: str
    files_added: list[str] = field(default_factory=list)
    files_removed: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            "name": self.name,
            "files_added": self.files_added,
            "files_removed": self.files_removed,
            "files_changed": self.files_changed,
        }


@dataclass
class Section:
    added: list[AssetRef] = field(default_factory=list)
    removed: list[AssetRef] = field(default_factory=list)
    changed: list[AssetChange] = field(default_factory=list)
    unchanged: int = 0

    @property
    def different(self) -> bool:
        return bool(self.added or self.removed or self.changed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "added": [r.to_dict() for r in self.added],
            "removed": [r.to_dict() for r in self.removed],
            "changed": [c.to_dict() for c in self.changed],
            "unchanged": self.unchanged,
        }

    def counts(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.removed)} removed, "
            f"{len(self.changed)} changed, {self.unchanged} unchanged"
        )


Edge = tuple[str, str, str]  # (source, target, kind)


@dataclass
class DiffReport:
    a: str
    b: str
    assets: Section
    runs: Section
    files: dict[str, int]  # added, removed, changed, unchanged, bytes_added, bytes_changed
    nodes_added: list[str]
    nodes_removed: list[str]
    edges_added: list[Edge]
    edges_removed: list[Edge]
    audit_added: list[AuditFact] = field(default_factory=list)
    audit_removed: list[AuditFact] = field(default_factory=list)
    audit_unchanged: int = 0
    audit_compared: bool = True  # False: ``diff_sides(audit=False)`` (backup's own changes)

    @property
    def different(self) -> bool:
        files = self.files["added"] or self.files["removed"] or self.files["changed"]
        lineage = self.nodes_added or self.nodes_removed or self.edges_added or self.edges_removed
        audit = self.audit_added or self.audit_removed
        return bool(self.assets.different or self.runs.different or files or lineage or audit)

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.a,
            "b": self.b,
            "different": self.different,
            "assets": self.assets.to_dict(),
            "runs": self.runs.to_dict(),
            "files": dict(self.files),
            "lineage": {
                "nodes_added": self.nodes_added,
                "nodes_removed": self.nodes_removed,
                "edges_added": [_edge_dict(e) for e in self.edges_added],
                "edges_removed": [_edge_dict(e) for e in self.edges_removed],
            },
        } | ({"audit": self._audit_dict()} if self.audit_compared else {})

    def _audit_dict(self) -> dict[str, Any]:
        return {
            "added": [f.to_dict() for f in self.audit_added],
            "removed": [f.to_dict() for f in self.audit_removed],
            "unchanged": self.audit_unchanged,
        }

    def lines(self, *, limit: int = 50) -> list[str]:
        """A plain-text summary (the CLI prints it); long lists are cut at ``limit``."""
        f = self.files
        out = [
            f"assets: {self.assets.counts()}",
            f"runs:   {self.runs.counts()}",
            f"files:  {f['added']} added, {f['removed']} removed, {f['changed']} changed, "
            f"{f['unchanged']} unchanged ({f['bytes_added'] + f['bytes_changed']:,} bytes "
            "added or changed)",
            f"lineage: {len(self.nodes_added)} nodes added, {len(self.nodes_removed)} removed; "
            f"{len(self.edges_added)} edges added, {len(self.edges_removed)} removed",
        ]
        if self.audit_compared:
            out.append(
                f"audit:  {len(self.audit_added)} facts added, "
                f"{len(self.audit_removed)} removed, {self.audit_unchanged} unchanged"
            )
        detail: list[str] = []
        for section in (self.assets, self.runs):
            detail += [f"  + {r.kind} {r.id}" for r in section.added]
            detail += [f"  - {r.kind} {r.id}" for r in section.removed]
            detail += [
                f"  ~ {c.kind} {c.id} ({len(c.files_changed)} changed, "
                f"{len(c.files_added)} added, {len(c.files_removed)} removed files)"
                for c in section.changed
            ]
        detail += [f"  + edge {k}: {u} -> {v}" for u, v, k in self.edges_added]
        detail += [f"  - edge {k}: {u} -> {v}" for u, v, k in self.edges_removed]
        detail += [f"  + audit {f.state} {f.rule}: {f.subject}" for f in self.audit_added]
        detail += [f"  - audit {f.state} {f.rule}: {f.subject}" for f in self.audit_removed]
        out += detail[:limit]
        if len(detail) > limit:
            out.append(f"  … {len(detail) - limit} more (use --json for all)")
        return out


def _edge_dict(edge: Edge) -> dict[str, str]:
    return {"source": edge[0], "target": edge[1], "kind": edge[2]}


def diff_sides(a: Side, b: Side, *, audit: bool = True, consume: bool = False) -> DiffReport:
    """What changed from ``a`` to ``b`` (``b`` is the newer side by convention). ``audit``:
    compare the sides' audit facts too (a snapshot's are computed by walking it, so a
    backup's own summary of its changes leaves them out). ``consume``: the sides are not
    used again; each lets go of what the comparison no longer needs as it goes
    (``Side.compared``)."""
    pa, pb = a.paths(), b.paths()  # views where a side has them: no copy per side
    common = pa & pb
    changed = {p for p in sorted(common) if not same_file(p, a, b)}
    unchanged = len(common) - len(changed)
    del common  # one path set at a time (100k-file snapshots: ~4 MB each)
    added = pb - pa
    files = {
        "added": len(added),
        "removed": len(pa - pb),
        "changed": len(changed),
        "unchanged": unchanged,
        "bytes_added": sum(b.size_of(p) for p in added),
        "bytes_changed": sum(b.size_of(p) for p in changed),
    }
    del added, pa, pb  # views of the sides' path tables: they keep them alive
    assets = _sections(a.assets, b.assets, changed)
    nodes_a, edges_a = graph_sets(a.lineage)
    nodes_b, edges_b = graph_sets(b.lineage)
    # The lineage's differences now, and its sets let go before the walks below (100k
    # blobs: tens of MB of node ids and edge tuples; docs/design/0007, C session 8).
    nodes_added, nodes_removed = sorted(nodes_b - nodes_a), sorted(nodes_a - nodes_b)
    edges_added = sorted((edges_b - edges_a).elements())
    edges_removed = sorted((edges_a - edges_b).elements())
    del nodes_a, edges_a, nodes_b, edges_b
    # A snapshot's facts walk it (its listing, its inventory): one side at a time, each
    # holding no more of either snapshot than the walk needs (100k files: 395 -> 305 MB;
    # docs/design/0007, "Peak memory at 100k (E, session 6)").
    if consume:
        a.compared()
        b.compared()
        trim_heap()  # the compared lists' pages: the walks below grow from less (C, session 8)
    facts: tuple[list[AuditFact], list[AuditFact], int] = ([], [], 0)
    if audit:
        facts_a = a.audit_facts()
        if consume:
            a.compared()  # its facts are known: the rest of its snapshot goes
        facts = compare_facts(facts_a, b.audit_facts())
    return DiffReport(
        a=a.label,
        b=b.label,
        assets=assets[0],
        runs=assets[1],
        files=files,
        nodes_added=nodes_added,
        nodes_removed=nodes_removed,
        edges_added=edges_added,
        edges_removed=edges_removed,
        audit_added=facts[0],
        audit_removed=facts[1],
        audit_unchanged=facts[2],
        audit_compared=audit,
    )


def graph_sets(node_link: dict[str, Any]) -> tuple[set[str], Counter[Edge]]:
    """Node ids and edge multiset of a node-link graph (a manifest's ``lineage``)."""
    nodes = {str(n["id"]) for n in node_link.get("nodes", [])}
    edges: Counter[Edge] = Counter(
        (str(e["source"]), str(e["target"]), str(e.get("kind", "")))
        for e in node_link.get("links", [])
    )
    return nodes, edges


def _paths(asset: AssetEntry) -> set[str]:
    return set(asset.files) | ({asset.v2_yaml} if asset.v2_yaml else set())


def _sections(
    old: list[AssetEntry], new: list[AssetEntry], changed_files: set[str]
) -> tuple[Section, Section]:
    before = {(x.kind, x.id): x for x in old}
    after = {(x.kind, x.id): x for x in new}
    assets, runs = Section(), Section()
    for key in sorted(before.keys() | after.keys()):
        section = runs if key[0] == "run" else assets
        x, y = before.get(key), after.get(key)
        if x is None and y is not None:
            section.added.append(AssetRef(y.kind, y.id, y.name, len(_paths(y))))
        elif y is None and x is not None:
            section.removed.append(AssetRef(x.kind, x.id, x.name, len(_paths(x))))
        elif x is not None and y is not None:
            px, py = _paths(x), _paths(y)
            change = AssetChange(
                y.kind,
                y.id,
                y.name,
                files_added=sorted(py - px),
                files_removed=sorted(px - py),
                files_changed=sorted(px & py & changed_files),
            )
            if change.files_added or change.files_removed or change.files_changed:
                section.changed.append(change)
            else:
                section.unchanged += 1
    return assets, runs
