"""``prune``: delete the objects that no snapshot references any more.

The set of live objects is computed from every snapshot — its data objects and, in format 2,
the pieces of its tree; a piece two snapshots share is read once, so prune walks only what
differs between them. A list stored as an overlay keeps its base (a full list, perhaps of a
forgotten snapshot) and the overlay alive; its data objects are the base's but those the
overlay removed, and those it puts (``SnapshotStore.pieces``). If a snapshot cannot be read,
prune stops (IntegrityError) rather than delete objects a damaged snapshot might still need.
Temp files that crashed writers left behind are swept too, once they are older than the lock
stale limit (a live writer holds a lock, and prune runs under an exclusive one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.bundle.lock import DEFAULT_STALE_AFTER
from amlport.bundle.objects import ObjectStore
from amlport.bundle.snapshots import SnapshotStore
from amlport.progress import Progress


@dataclass
class PruneReport:
    dry_run: bool
    snapshots: int = 0
    objects_total: int = 0
    objects_referenced: int = 0
    removed: list[str] = field(default_factory=list)  # digests (to be) deleted
    bytes_freed: int = 0
    temp_files_removed: int = 0

    @property
    def objects_removed(self) -> int:
        return len(self.removed)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "snapshots": self.snapshots,
            "objects_total": self.objects_total,
            "objects_referenced": self.objects_referenced,
            "objects_removed": self.objects_removed,
            "bytes_freed": self.bytes_freed,
            "temp_files_removed": self.temp_files_removed,
        }


def collect_garbage(
    objects: ObjectStore,
    snapshots: SnapshotStore,
    *,
    dry_run: bool,
    progress: Progress | None = None,
) -> PruneReport:
    report = PruneReport(dry_run=dry_run)
    live: set[str] = set()
    seen: set[str] = set()  # format-2 pieces read: a piece two snapshots share is read once
    for snapshot_id in snapshots.ids():  # one snapshot's digests at a time, not its lists
        report.snapshots += 1
        data, pieces = snapshots.pieces(snapshot_id, seen)
        live |= data
        live |= pieces
    live |= seen
    stored = list(objects.iter_digests())
    report.objects_total = len(stored)
    for done, digest in enumerate(stored, start=1):
        if digest in live:
            report.objects_referenced += 1
        else:
            report.removed.append(digest)
            freed = objects.delete(digest) if not dry_run else objects.size(digest) or 0
            report.bytes_freed += freed
        if progress is not None:
            progress("prune", done, len(stored))
    if not dry_run:
        report.temp_files_removed = objects.sweep_temp_files(DEFAULT_STALE_AFTER.total_seconds())
    return report
