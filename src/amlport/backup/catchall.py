"""The catch-all of a whole-workspace backup: every blob no exporter claimed.

Exporters carry what the lineage closure of the selected assets needs. A backup must carry
*every* blob of the workspace containers — unreferenced uploads, files the walker does not
recognise, legacy working directories, amlport's own import records — or a restore is not a
restore. ``CatchAll`` runs after the exporters planned their files (``ExportRequest.extension``)
and plans the rest, grouped into ``data`` assets marked ``unclassified``: one per upload or
run folder (``LocalUpload/<hash>``, ``azureml/<run>``, ``ExperimentRun/dcid.<run>``) or top-level
folder. It also widens the recorded lineage to the whole graph, since the whole workspace is in
the snapshot.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import TYPE_CHECKING

from amlport.backup.recording import RecordingSource as RecordingSource
from amlport.model.manifest import AssetEntry
from amlport.walk import classify as C

if TYPE_CHECKING:  # a backup decided from its listing never plans: it imports none of them
    from amlport.export.selection import Selection
    from amlport.export.writer import BundleWriter
    from amlport.lineage.graph import LineageGraph
    from amlport.model.inventory import Inventory

NAME = "backup-catch-all"
ASSET_PREFIX = "unclassified:"
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def group_of(container: str, name: str, artifact_container: str) -> str:
    """The folder a leftover blob is grouped under (its asset)."""
    if container == artifact_container:
        m = C.RUN_PREFIX.match(name)
        if m:
            return f"ExperimentRun/dcid.{m['run']}"
        return name.split("/", 1)[0]
    bp = C.classify_blobstore(name)
    return f"{bp.root}/{bp.key}" if bp.key is not None else bp.root


class CatchAll:
    """``PlanExtension`` adding every blob the exporters left out to the snapshot."""

    name = NAME

    def __init__(self, recorder: RecordingSource) -> None:
        self.recorder = recorder

    def __call__(
        self, inv: Inventory, lg: LineageGraph, chosen: Selection, writer: BundleWriter
    ) -> list[AssetEntry]:
        chosen.nodes |= set(lg.g.nodes)  # the whole workspace: record the whole graph
        artifacts = inv.source.artifact_container
        groups: dict[tuple[str, str], list[str]] = defaultdict(list)
        for blob in self.recorder.blobs:
            if not writer.is_planned(blob.container, blob.name):
                groups[(blob.container, group_of(blob.container, blob.name, artifacts))].append(
                    blob.name
                )
        return [self._asset(writer, c, g, names) for (c, g), names in sorted(groups.items())]

    def release(self) -> None:
        self.recorder.blobs = []

    @staticmethod
    def _asset(writer: BundleWriter, container: str, group: str, names: list[str]) -> AssetEntry:
        datastore = writer.source.descriptor.datastore_of(container) or container
        planned = (writer.add_blob_or_warn(container, n) for n in sorted(names))
        files = [path for path in planned if path is not None]  # a secret in a name: warned
        slug = _SLUG.sub("-", f"{datastore}-{group}").strip("-")[:120]
        return AssetEntry(
            kind="data",
            name=f"unclassified-{slug}",
            id=f"{ASSET_PREFIX}{datastore}/{group}",
            files=files,
            v2_yaml=None,
            portable=True,
            requires=[],
            attrs={"unclassified": True, "location": f"{datastore}/{group}", "blobs": len(files)},
        )
