"""The proof of a restore (``restore --check``): the target holds what the snapshot holds.

1. **Files**: every ``files/…`` of the snapshot is at its mapped place in the target with the
   content the import meant to write (the snapshot object, re-bound to the target where the
   file binds to storage). The expected digest comes from the storage importer's own plan; the
   target's bytes are hashed (a local target by ``stat``, any other target by reading them —
   metadata alone proves nothing).
2. **Lineage**: the target is walked again and its graph compared with the snapshot's
   ``lineage``: every node of the snapshot is there with the same kind, and present in
   storage when it was present at backup time (so every pointer that resolved still
   resolves); the edges among the snapshot's nodes are the same, with the same multiplicity.
   Node ids are datastore-relative, so "equal under the mapping" is plain equality.

The check writes nothing: the target is planned against through a dry-run write guard
(storage/guard.py), which refuses every write. ``restore --check --read-only`` is this check
alone, on a disaster-recovery copy that must not change.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from amlport.backup.diff import Edge, graph_sets
from amlport.bundle import Repository
from amlport.errors import AmlportError
from amlport.importers.base import ImportContext
from amlport.importers.datastore import DatastoreImporter
from amlport.importing.engine import import_rules, mapping_for
from amlport.lineage import build_graph
from amlport.model import findings as F
from amlport.model.manifest import Manifest
from amlport.model.mapping import Mapping
from amlport.storage.base import Source
from amlport.storage.guard import GuardedTarget, WriteGuard
from amlport.storage.target import LocalTarget, Target
from amlport.walk import walk


@dataclass
class CheckReport:
    files_checked: int = 0
    files_blocked: int = 0  # not restorable under this map (reported by the import)
    files_missing: list[str] = field(default_factory=list)
    digest_mismatches: list[str] = field(default_factory=list)
    nodes_expected: int = 0
    edges_expected: int = 0
    missing_nodes: list[str] = field(default_factory=list)
    kind_mismatches: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)  # present in the snapshot, not now
    missing_edges: list[Edge] = field(default_factory=list)
    extra_edges: list[Edge] = field(default_factory=list)
    pointers: int = 0
    dangling_pointers: int = 0

    @property
    def ok(self) -> bool:
        return not (
            self.files_missing
            or self.digest_mismatches
            or self.missing_nodes
            or self.kind_mismatches
            or self.unresolved
            or self.missing_edges
            or self.extra_edges
        )

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in vars(self).items() if not k.endswith("_edges")}
        data["missing_edges"] = [list(e) for e in self.missing_edges]
        data["extra_edges"] = [list(e) for e in self.extra_edges]
        data["ok"] = self.ok
        return data

    def problems(self) -> list[str]:
        out = [f"missing in the target: {p}" for p in self.files_missing]
        out += [f"content differs from the snapshot: {p}" for p in self.digest_mismatches]
        out += [f"lineage node missing: {n}" for n in self.missing_nodes]
        out += [f"lineage node of another kind: {n}" for n in self.kind_mismatches]
        out += [
            f"no longer resolves (pointer or folder without blobs): {n}" for n in self.unresolved
        ]
        out += [f"lineage edge missing: {k} {u} -> {v}" for u, v, k in self.missing_edges]
        out += [f"lineage edge not in the snapshot: {k} {u} -> {v}" for u, v, k in self.extra_edges]
        return out


def check_restore(
    repo: Repository, manifest: Manifest, mapping: Mapping, target: Target, scan: Source
) -> CheckReport:
    report = CheckReport()
    check_files(report, repo, manifest, mapping, target)
    check_lineage(report, manifest, scan)
    return report


def check_files(
    report: CheckReport, repo: Repository, manifest: Manifest, mapping: Mapping, target: Target
) -> None:
    guard = WriteGuard(dry_run=True)  # a check plans only: every write is refused
    # The map with the source's aliases of a mapped container, as the import planned it
    # (``mapping_for``): files listed under ``workspaceblobstore`` of a map naming ``devblob``.
    aliased = mapping_for(manifest, mapping)
    ctx = ImportContext(repo, manifest, aliased, import_rules(manifest, mapping), _ignore)
    inner = target.inner if isinstance(target, GuardedTarget) else target
    hashed_by_stat = isinstance(inner, LocalTarget)  # stat hashes a local file's bytes
    for action in DatastoreImporter(guard.wrap(target)).plan(ctx):
        if action.action in ("blocked", "failed"):  # failed: a name the target cannot hold
            report.files_blocked += 1
            continue
        report.files_checked += 1
        if action.action == "create":
            report.files_missing.append(action.target)
            continue
        d = action.details
        if hashed_by_stat:
            same = action.action == "skip"
        else:
            same = _hash(target, d["container"], d["name"]) == d["digest"]
        if not same:
            report.digest_mismatches.append(action.target)


def check_lineage(report: CheckReport, manifest: Manifest, scan: Source) -> None:
    inv = walk(scan)
    lg = build_graph(inv)
    nodes = {str(n["id"]): n for n in manifest.lineage.get("nodes", [])}
    _, expected = graph_sets(manifest.lineage)
    report.nodes_expected, report.edges_expected = len(nodes), sum(expected.values())
    for nid, attrs in sorted(nodes.items()):
        if nid not in lg.g:
            report.missing_nodes.append(nid)
        elif lg.g.nodes[nid].get("kind") != attrs.get("kind"):
            report.kind_mismatches.append(nid)
        elif attrs.get("exists", True) and not lg.g.nodes[nid].get("exists", True):
            report.unresolved.append(nid)
    found: Counter[Edge] = Counter(
        (u, v, str(k)) for u, v, k in lg.g.edges(data="kind") if u in nodes and v in nodes
    )
    report.missing_edges = sorted((expected - found).elements())
    report.extra_edges = sorted((found - expected).elements())
    report.pointers = len(inv.pointers)
    report.dangling_pointers = sum(1 for f in inv.findings if f.code == F.DANGLING_POINTER)


def _hash(target: Target, container: str, name: str) -> str | None:
    try:
        data = target.read_bytes(container, name)
    except (AmlportError, OSError):  # unreadable is "not the expected content"
        return None
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _ignore(_: str) -> None:
    return None
