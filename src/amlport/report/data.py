"""What a report shows, gathered from a walked source or a stored snapshot (no HTML here).

A ``Report`` holds plain values only: strings as the workspace spelled them (the renderer
escapes them), numbers, lists. Two builders fill it:

- ``from_source``: an inventory and its listing (the walk), the lineage graph, the audit;
- ``from_snapshot``: a snapshot's manifest (assets with their files, the lineage it recorded).

``add_history`` adds a repository's snapshots of one source, oldest first, with what changed
between neighbours.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from amlport.lineage.graph import LineageGraph
from amlport.report.pipelines import Pipeline, pipelines_of

if TYPE_CHECKING:
    from amlport.audit.engine import AuditReport
    from amlport.bundle import Repository
    from amlport.bundle.snapshots import SnapshotInfo
    from amlport.model.inventory import Inventory
    from amlport.model.manifest import Manifest
    from amlport.walk.listing import Listing

# The interactive graph draws at most this many nodes (a browser lays out a few thousand
# nodes in seconds; a 100k-blob workspace's graph would hang the page). The rest is counted.
MAX_GRAPH_NODES = 2000
# Files listed per node in the side panel; the rest is counted.
MAX_NODE_FILES = 200
# Snapshots whose file lists are compared for "changes over time" (each is one manifest read).
MAX_HISTORY_DIFFS = 20
# Kinds drawn first when the graph is cut (what a reader looks for: runs, models, data).
KIND_ORDER = (
    "pipeline_run",
    "step_run",
    "run",
    "model",
    "data",
    "output",
    "environment",
    "pipeline",
    "component",
)


@dataclass
class GraphNode:
    id: str
    kind: str
    label: str
    attrs: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    files_total: int = 0


@dataclass
class HistoryRow:
    id: str
    created: str
    files: int
    size: int
    assets: int
    tags: list[str]
    added: int | None = None  # files added since the previous snapshot (None: not compared)
    removed: int | None = None
    changed: int | None = None
    current: bool = False


@dataclass
class Report:
    kind: str  # "source" or "snapshot"
    location: str
    generated: str
    account: str = ""
    workspace: str = ""
    snapshot: str | None = None
    counts: list[tuple[str, int]] = field(default_factory=list)
    total_bytes: int = 0
    models: list[dict[str, str]] = field(default_factory=list)
    environments: list[dict[str, str]] = field(default_factory=list)
    assets: list[dict[str, str]] = field(default_factory=list)  # a snapshot's asset list
    findings: list[dict[str, str]] = field(default_factory=list)  # the walk's findings
    nodes: list[GraphNode] = field(default_factory=list)
    edges: list[dict[str, str]] = field(default_factory=list)
    nodes_total: int = 0
    pipelines: list[Pipeline] = field(default_factory=list)
    audit: AuditReport | None = None
    audit_note: str = ""
    history: list[HistoryRow] = field(default_factory=list)
    history_note: str = ""
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """The counts ``amlport report --json`` prints."""
        audit = self.audit.summary() if self.audit is not None else None
        return {
            "kind": self.kind,
            "location": self.location,
            "snapshot": self.snapshot,
            "nodes": self.nodes_total,
            "nodes_drawn": len(self.nodes),
            "edges": len(self.edges),
            "pipelines": len(self.pipelines),
            "findings": len(self.findings),
            "audit": audit,
            "snapshots": len(self.history),
        }


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def graph_from_node_link(data: dict[str, Any]) -> LineageGraph:
    """A lineage graph from the node-link JSON a snapshot recorded (``Manifest.lineage``)."""
    lg = LineageGraph()
    for node in data.get("nodes") or []:
        attrs = {k: v for k, v in node.items() if k not in ("id", "kind", "label")}
        lg.add_node(str(node["id"]), str(node.get("kind", "")), str(node.get("label", "")), **attrs)
    for link in data.get("links") or []:
        source, target = str(link["source"]), str(link["target"])
        if source in lg.g and target in lg.g:
            attrs = {k: v for k, v in link.items() if k not in ("source", "target", "kind")}
            lg.add_edge(source, target, str(link.get("kind", "")), **attrs)
    return lg


def _graph(
    report: Report, lg: LineageGraph, files_of: Callable[[str, dict[str, Any]], list[str]]
) -> None:
    g = lg.g
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    ranked = sorted(g.nodes(data=True), key=lambda n: (order.get(n[1].get("kind"), 99), n[0]))
    drawn = {nid for nid, _ in ranked[:MAX_GRAPH_NODES]}
    report.nodes_total = g.number_of_nodes()
    for nid, data in sorted(g.nodes(data=True)):
        if nid not in drawn:
            continue
        files = files_of(nid, data)
        attrs = {k: str(v) for k, v in sorted(data.items()) if k not in ("kind", "label")}
        report.nodes.append(
            GraphNode(
                id=nid,
                kind=str(data.get("kind", "")),
                label=str(data.get("label") or nid),
                attrs=attrs,
                files=files[:MAX_NODE_FILES],
                files_total=len(files),
            )
        )
    for u, v, data in sorted(g.edges(data=True), key=lambda e: (e[0], e[1], str(e[2]))):
        if u in drawn and v in drawn:
            edge = {"source": u, "target": v, "kind": str(data.get("kind", ""))}
            if data.get("port"):
                edge["port"] = str(data["port"])
            report.edges.append(edge)
    report.pipelines = pipelines_of(lg)


def from_source(
    inv: Inventory,
    listing: Listing,
    lg: LineageGraph,
    location: str,
    audit: AuditReport | None,
) -> Report:
    """The report of a walked workspace: inventory, graph (files from the listing), audit."""
    desc = inv.source
    report = Report(
        kind="source",
        location=location,
        generated=_now(),
        account=desc.account or "",
        workspace=desc.workspace or "",
        audit=audit,
    )
    report.counts = [(k.replace("_", " "), n) for k, n in inv.counts().items()]
    report.total_bytes = inv.bytes
    report.models = [
        {
            "location": str(m.loc),
            "format": m.format,
            "run": m.run_id or "",
            "portable": "yes" if m.portable else f"no ({m.portability})",
            "pointer": m.pointer or "",
        }
        for m in sorted(inv.models.values(), key=lambda m: str(m.loc))
    ]
    report.environments = [
        {
            "id": e.env_id,
            "kind": e.kind,
            "image": e.image or "",
            "pinned": "yes" if e.pinned else "no: " + ", ".join(e.unpinned),
        }
        for e in sorted(inv.environments.values(), key=lambda e: e.env_id)
    ]
    report.findings = [
        f.to_dict() for f in sorted(inv.findings, key=lambda f: (-f.severity.rank, f.code, f.path))
    ]

    def files_of(nid: str, data: dict[str, Any]) -> list[str]:
        if data.get("kind") in ("pipeline_run", "step_run", "run") and data.get("run_id"):
            container = desc.artifact_container
            prefix = f"ExperimentRun/dcid.{data['run_id']}"
        elif isinstance(data.get("path"), str) and "/" in data["path"]:
            # A location (datastore/path) or a blob (container/name).
            head, prefix = data["path"].split("/", 1)
            container = desc.container_of(head) or head
        else:
            return []
        return [f"{b.container}/{b.name}" for b in listing.under(container, prefix)]

    _graph(report, lg, files_of)
    return report


def from_snapshot(manifest: Manifest, location: str) -> Report:
    """The report of a stored snapshot: its assets and files, the lineage it recorded."""
    source = manifest.source
    report = Report(
        kind="snapshot",
        location=location,
        generated=_now(),
        account=str(source.get("account") or ""),
        workspace=str(source.get("workspace") or ""),
        snapshot=manifest.snapshot_id,
        audit_note="The audit reads a workspace's storage and settings, not a snapshot: "
        "run 'amlport report SOURCE' or 'amlport audit SOURCE' on the workspace.",
        warnings=list(manifest.warnings),
    )
    kinds = Counter(a.kind for a in manifest.assets)
    report.counts = [(f"{k} assets", n) for k, n in sorted(kinds.items())]
    report.counts.append(("files", len(manifest.files)))
    report.total_bytes = sum(f.size for f in manifest.files)
    sizes = {f.path: f.size for f in manifest.files}
    report.assets = [
        {
            "kind": a.kind,
            "name": a.name,
            "files": str(len(a.files)),
            "bytes": f"{sum(sizes.get(p, 0) for p in a.files):,}",
            "portable": "yes" if a.portable else "no",
        }
        for a in sorted(manifest.assets, key=lambda a: (a.kind, a.name))
    ]
    files_by_node = {a.id: list(a.files) for a in manifest.assets}
    lg = graph_from_node_link(manifest.lineage or {})
    _graph(report, lg, lambda nid, _data: files_by_node.get(nid, []))
    return report


def _changes(older: Iterable[tuple[str, str]], newer: Iterable[tuple[str, str]]) -> tuple[int, ...]:
    a, b = dict(older), dict(newer)
    added = len(b.keys() - a.keys())
    removed = len(a.keys() - b.keys())
    changed = sum(1 for p in a.keys() & b.keys() if a[p] != b[p])
    return added, removed, changed


def add_history(report: Report, repo: Repository, source_key: str, current: str | None) -> None:
    """The repository's snapshots of ``source_key``, oldest first; the newest
    ``MAX_HISTORY_DIFFS`` are compared with the one before (files added, removed, changed)."""
    infos: list[SnapshotInfo] = [i for i in repo.list_snapshots() if i.source_key == source_key]
    report.history = [
        HistoryRow(
            id=i.id,
            created=i.created.strftime("%Y-%m-%d %H:%M:%S"),
            files=i.files,
            size=i.size,
            assets=i.assets,
            tags=list(i.tags),
            current=i.id == current,
        )
        for i in infos
    ]
    first = max(0, len(infos) - MAX_HISTORY_DIFFS - 1)
    previous: list[tuple[str, str]] | None = None
    for index in range(first, len(infos)):
        manifest = repo.load_snapshot(infos[index].id)
        files = [(f.path, f.digest) for f in manifest.files]
        if previous is not None:
            row = report.history[index]
            row.added, row.removed, row.changed = _changes(previous, files)
        previous = files
    if first > 0:
        report.history_note = (
            f"changes are computed for the newest {MAX_HISTORY_DIFFS} snapshots of {len(infos)}"
        )
