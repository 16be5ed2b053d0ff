"""``prune``: delete the objects that no snapshot references any more.

The set of live objects is computed from every snapshot — its data objects and, in format 2,
the pieces of its tree; a piece two snapshots share is read once, so prune walks only what
differs between them. A list stored as an overlay keeps its base (a full list, perhaps of a
forgotten snapshot) and the overlay alive; its data objects are the base's but those the
overlay removed, and those it puts (``SnapshotStore.pieces``). If a snapshot cannot be read,
prune stops (IntegrityError) rather than delete objects a damaged snapshot might still need.
Temp files that crashed writers left behind are swept too, once they are older than the lock
stale limit (a live writer holds a lock, and prune runs under an exclusive one).

Pack files (``packs.py``): a pack none of whose objects is live is deleted; one whose live
objects hold less than half its bytes is repacked (its live objects, each checked, copied to
a new pack). The index is then rewritten as one piece naming only live objects, in an order
that leaves a readable repository wherever a kill stops it: the new packs durable, then the
new index piece durable, then the old index pieces deleted, then the old packs. A pack no
index piece names (a crashed backup's) is deleted. An index piece that cannot be read, or a
pack it names that is missing, stops prune before anything is deleted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.bundle import packs
from amlport.bundle.lock import DEFAULT_STALE_AFTER
from amlport.bundle.objects import ObjectStore, format_digest
from amlport.bundle.packs import PackEntries, Packer
from amlport.bundle.snapshots import SnapshotStore
from amlport.errors import IntegrityError
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
    packs_removed: int = 0  # pack files deleted (repacked ones included)
    packs_written: int = 0  # by repacking

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
            "packs_removed": self.packs_removed,
            "packs_written": self.packs_written,
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
    plan = _plan_packs(objects, live) if objects.packing else None  # before any delete
    stored = list(objects.iter_digests())
    report.objects_total = len(stored)
    for done, digest in enumerate(stored, start=1):
        if digest in live:
            report.objects_referenced += 1
        else:
            report.removed.append(digest)
            # a packed object is freed with its pack (``plan``): only loose bytes count here
            loose = objects.store.size(objects.key(digest)) or 0
            freed = objects.delete(digest) if not dry_run else loose
            report.bytes_freed += freed
        if progress is not None:
            progress("prune", done, len(stored))
    if plan is not None:
        report.packs_removed = len(plan.delete)
        report.bytes_freed += plan.freed
        if not dry_run:
            report.packs_written = _apply(objects, plan)
    if not dry_run:
        older = DEFAULT_STALE_AFTER.total_seconds()
        report.temp_files_removed = objects.sweep_temp_files(older)
        if objects.packing:
            report.temp_files_removed += objects.store.sweep_temp(packs.FOLDER, older)
    return report


@dataclass
class _PackPlan:
    index_names: list[str]  # the index pieces read (all replaced when ``rewrite``)
    keep: list[PackEntries]  # packs kept, with their live entries only
    repack: list[str] = field(default_factory=list)  # digests to copy to new packs
    delete: list[str] = field(default_factory=list)  # pack hex
    freed: int = 0
    rewrite: bool = False


def _plan_packs(objects: ObjectStore, live: set[str]) -> _PackPlan:
    """What to do with the packs; IntegrityError (nothing deleted yet) when an index piece
    cannot be read or names a pack that is missing or of another size."""
    names = list(objects.store.list(packs.INDEX_FOLDER))
    merged: dict[str, PackEntries] = {}
    for name in names:
        for pack in objects.read_index_piece(name):  # strict: prune stops on damage
            found = merged.setdefault(pack.pack, PackEntries(pack.pack, pack.size))
            if found.size != pack.size:
                raise IntegrityError(f"two pack index pieces disagree on the size of pack "
                                     f"{packs.pack_key(pack.pack)}",
                                     hint="run `amlport verify`")  # fmt: skip
            found.entries.extend(pack.entries)
    stored = dict(objects.iter_pack_keys())
    plan = _PackPlan(index_names=names, keep=[], rewrite=len(names) > 1)
    taken: set[str] = set()  # objects kept: one copy each
    for pack_hex in sorted(merged):
        pack = merged[pack_hex]
        if stored.get(pack_hex) != pack.size:
            what = "missing" if pack_hex not in stored else f"{stored[pack_hex]} bytes"
            raise IntegrityError(
                f"pack {packs.pack_key(pack_hex)} named by the pack index is {what} (the "
                f"index says {pack.size} bytes): prune stops rather than lose its objects",
                hint="run `amlport verify` to see which snapshots use it",
            )
        entries = sorted(set(pack.entries), key=lambda e: (e[1], e[2], e[0]))
        alive = [e for e in entries if format_digest(e[0]) in live and e[0] not in taken]
        alive_bytes = sum(e[2] for e in alive)
        if len(alive) != len(pack.entries):
            plan.rewrite = True
        if not alive:
            plan.delete.append(pack_hex)
            plan.freed += pack.size
        elif alive_bytes * 2 < pack.size:  # most of it unreachable: copy the rest
            plan.delete.append(pack_hex)
            plan.repack += [format_digest(e[0]) for e in alive]
            plan.freed += pack.size - alive_bytes
        else:
            plan.keep.append(PackEntries(pack_hex, pack.size, alive))
        taken.update(e[0] for e in alive)
    for pack_hex, size in stored.items():
        if pack_hex not in merged:  # written by a run killed before its index: garbage
            plan.delete.append(pack_hex)
            plan.freed += size
    return plan


def _apply(objects: ObjectStore, plan: _PackPlan) -> int:
    """Carry out ``plan`` in the crash-safe order; the packs written."""
    written: list[PackEntries] = []
    if plan.repack:
        packer = Packer(objects.store.put_once)
        with objects.store.synced_together():  # the new packs durable before their index
            for digest in plan.repack:
                packer.add(digest.split(":", 1)[1], objects.stored_checked(digest))
            packer.flush()
        plain = packer.index_plain()
        written = packs.decode_index(plain, where="repack") if plain is not None else []
    kept_keys: set[str] = set()
    if plan.rewrite or written:
        new = plan.keep + written
        if new:
            plain = packs.encode_index(new)
            packs.decode_index(plain, where="the new pack index")  # readable, before it counts
            kept_keys.add(objects.write_index_piece(plain))  # durable
        for name in plan.index_names:
            key = packs.index_key(name)
            if key not in kept_keys:
                objects.store.delete(key)
    elif plan.index_names:
        kept_keys.update(packs.index_key(n) for n in plan.index_names)
    named = {p.pack for p in plan.keep + written}
    for pack_hex in plan.delete:
        if pack_hex not in named:
            objects.store.delete(packs.pack_key(pack_hex))
    objects.forget_pack_index()
    return len(written)
