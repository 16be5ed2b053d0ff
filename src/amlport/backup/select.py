"""``restore --select KIND:NAME``: the part of a snapshot that brings back one asset.

The selection is the one ``export --select`` and ``backup --select`` make (export/selection.py),
taken from what the snapshot recorded instead of a fresh walk: the roots are the nodes of the
snapshot's lineage graph that ``KIND:NAME`` names (an id, the end of one, or a label); each
brings its closure — what it derives from, what it points to, the environments and component
files it uses; a pipeline its steps and the models they logged. The restore then carries the
assets of those nodes: their files under ``files/``, their v2 YAML (``--emit-assets``), their
lineage. Data payloads (uploads, run outputs that are no model) come only when selected
themselves, as for export; blobs no asset claims (the backup's catch-all) never.

The result is a narrowed ``Manifest`` (same id, source and metadata files): the importers,
the write guard and ``--check`` work on it unchanged, so a selected restore is as idempotent
and as proven as a whole one, and the check compares only what was selected.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from amlport.errors import UsageError
from amlport.export.selection import INCLUDE_KINDS, expand_all, node_kind_matches
from amlport.lineage.graph import LineageGraph
from amlport.model.manifest import Manifest
from amlport.report.data import graph_from_node_link

FILES_PREFIX = "files/"
PAYLOAD_KINDS = ("data",)  # asset kinds carried only when selected themselves


@dataclass(frozen=True)
class Selected:
    manifest: Manifest  # the narrowed snapshot
    roots: list[str]  # lineage nodes the --select options named
    assets: list[str]  # ids of the assets carried, roots first

    @property
    def files(self) -> int:
        """How many workspace files (``files/…``) the selection restores."""
        return sum(1 for f in self.manifest.files if _stored(f.path))


def select_manifest(manifest: Manifest, select: list[str]) -> Selected:
    """Narrow ``manifest`` to what ``select`` (``KIND:NAME`` …) needs; UsageError when an
    option is malformed or names nothing the snapshot holds."""
    lg = graph_from_node_link(manifest.lineage or {})
    roots = _roots(manifest, lg, select)
    nodes = lg.closure(expand_all(lg, roots))  # export's own expansion and closure
    assets = [
        a
        for a in manifest.assets
        if a.id in nodes and (a.kind not in PAYLOAD_KINDS or a.id in roots)
    ]
    if not assets:
        raise UsageError(
            f"--select {', '.join(select)} names lineage node(s) the snapshot holds no asset of",
            hint="list the snapshot's assets with `amlport ls REPO@ID --json`",
        )
    wanted = {p for a in assets for p in a.files}
    files = [f for f in manifest.files if f.path in wanted or not f.path.startswith(FILES_PREFIX)]
    kept = {a.id for a in assets}
    lineage = lg.to_node_link(nodes)
    held = {a.id for a in manifest.assets}
    for node in lineage["nodes"]:  # a payload left behind is not expected in the target
        if node["id"] in held and node["id"] not in kept and node.get("exists", True):
            node["exists"] = False
            node["not_restored"] = True
    narrowed = replace(
        manifest,
        assets=assets,
        files=files,
        lineage=lineage,
        rewrites=[r for r in manifest.rewrites if r.file in wanted or not _stored(r.file)],
        redactions=[r for r in manifest.redactions if r.file in wanted or not _stored(r.file)],
    )
    order = sorted(kept, key=lambda i: (i not in roots, i))
    return Selected(narrowed, roots, order)


def _roots(manifest: Manifest, lg: LineageGraph, select: list[str]) -> list[str]:
    """The lineage nodes each ``KIND:NAME`` names: an asset of that kind by its name (as
    ``ls`` lists it) or id, or a node by id, the end of one, or label (as export matches)."""
    roots: set[str] = set()
    for text in select:
        kind, sep, name = text.partition(":")
        if not sep or not name or kind not in INCLUDE_KINDS.values():
            raise UsageError(
                f"--select {text!r} is not KIND:NAME",
                hint=f"KIND is one of {', '.join(INCLUDE_KINDS.values())}; NAME an asset's "
                "name as `amlport ls REPO@ID --json` lists it (or its id)",
            )
        found = {
            a.id
            for a in manifest.assets
            if a.kind == kind and a.id in lg.g and name in (a.name, a.id)
        }
        found |= {n for n in lg.find(name) if node_kind_matches(lg, n, kind)}
        if not found:
            raise UsageError(
                f"--select {text!r} matches nothing in snapshot {str(manifest.snapshot_id)[:16]}",
                hint="list the snapshot's assets with `amlport ls REPO@ID --json`",
            )
        roots |= found
    return sorted(roots)


def _stored(path: str) -> bool:
    return path.startswith(FILES_PREFIX)
