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
index piece names (a crashed backup's) is deleted. Two pieces giving a pack two sizes, or a
name under ``packs/index/`` not named like a piece, stop prune before anything is deleted.

An index piece that cannot be read (damaged, a FIFO, a link or a directory in its place)
lists nothing prune can see: while an object a snapshot uses has no copy elsewhere (loose,
or in a sound or salvaged pack a readable piece names) the piece may be its only trace, so
prune stops before deleting anything, naming the piece and what to do. Once every such
object has another copy (the next backup stored them again), prune removes the piece with
the old pieces, and the packs only it named as unindexed leftovers (a directory in its place
is removed when empty, else named: ``unreadable_index_pieces`` in the report).

A damaged pack (missing, not at its indexed size, or whose bytes do not hash to its name:
every pack holding a live object is read whole, ``packs.pack_problem``) goes with its index
entries once every live object it holds has a sound copy — loose, in a sound pack, or its
own bytes salvaged into a new pack when they check; while one has none it stays, with those
objects' entries, and prune warns (``DamagedPack``; docs/design/0007, *Pack features*).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from amlport.bundle import packs
from amlport.bundle.files import TooLarge
from amlport.bundle.lock import DEFAULT_STALE_AFTER
from amlport.bundle.notices import Warn
from amlport.bundle.objects import META_OVERHEAD, ObjectStore, format_digest, hex_of
from amlport.bundle.packs import PackEntries, Packer
from amlport.bundle.snapshots import SnapshotStore
from amlport.errors import IntegrityError, UsageError
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
    damaged_packs: list[DamagedPack] = field(default_factory=list)  # removed or kept
    # index pieces that could not be read, (to be) removed: (key, why)
    unreadable_pieces: list[tuple[str, str]] = field(default_factory=list)

    @property
    def objects_removed(self) -> int:
        return len(self.removed)

    def pack_lines(self) -> list[str]:
        """What happened to damaged packs, a line each (a kept one is also a warning)."""
        verb = "would drop" if self.dry_run else "dropped"
        removed = "would remove" if self.dry_run else "removed"
        pieces = [
            f"{removed} unreadable pack index piece {key} ({why}): every object a snapshot "
            "uses has another copy"
            for key, why in self.unreadable_pieces
        ]
        return pieces + [
            f"{verb} damaged pack {d.key} ({d.problem}): every object of it a snapshot uses "
            f"has a sound copy" + (f" ({d.salvaged} salvaged)" if d.salvaged else "")
            if not d.only_copies
            else f"kept damaged pack {d.key} ({d.problem}): the only copy of "
            f"{len(d.only_copies)} object(s) a snapshot uses"
            for d in self.damaged_packs
        ]

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
            "damaged_packs_removed": [d.key for d in self.damaged_packs if not d.only_copies],
            "damaged_packs_kept": [d.to_dict() for d in self.damaged_packs if d.only_copies],
            "unreadable_index_pieces": [key for key, _ in self.unreadable_pieces],
        }


def collect_garbage(
    objects: ObjectStore,
    snapshots: SnapshotStore,
    *,
    dry_run: bool,
    progress: Progress | None = None,
    warn: Warn | None = None,
    among: Iterable[str] | None = None,
) -> PruneReport:
    """Delete what no snapshot reaches (``dry_run``: only say what). ``among``: the
    snapshots that count as kept (a dry run's "once these others are forgotten", for
    ``forget --dry-run --prune``); every snapshot when None."""
    report = PruneReport(dry_run=dry_run)
    if among is not None and not dry_run:
        raise ValueError("only a dry run may leave snapshots out of what is live")
    live: set[str] = set()
    seen: set[str] = set()  # format-2 pieces read: a piece two snapshots share is read once
    for snapshot_id in snapshots.ids() if among is None else among:  # one at a time
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
        report.damaged_packs = plan.damaged
        report.unreadable_pieces = [(packs.index_key(n), why) for n, why in plan.unreadable]
        for damaged in plan.damaged:
            if damaged.only_copies and warn is not None:
                warn(damaged.message())
        report.packs_removed = len(plan.delete)
        report.bytes_freed += plan.freed
        if not dry_run:
            report.packs_written = _apply(objects, plan, warn)
    if not dry_run:
        older = DEFAULT_STALE_AFTER.total_seconds()
        report.temp_files_removed = objects.sweep_temp_files(older)
        if objects.packing:
            report.temp_files_removed += objects.store.sweep_temp(packs.FOLDER, older)
    return report


@dataclass
class DamagedPack:
    """A pack the index names that is missing, not at its indexed size, or whose bytes do not
    hash to its name, and what prune did with it."""

    pack: str  # hex
    problem: str
    only_copies: list[str] = field(default_factory=list)  # live digests with no sound copy
    salvaged: int = 0  # live objects copied out of it (their bytes checked)
    in_place: bool = False  # at its size, its bytes damaged: its objects count as stored

    @property
    def key(self) -> str:
        return packs.pack_key(self.pack)

    def to_dict(self) -> dict[str, Any]:
        return {"pack": self.key, "problem": self.problem, "only_copies": self.only_copies,
                "salvaged": self.salvaged}  # fmt: skip

    def message(self) -> str:
        first = self.only_copies[0]
        more = f" and {len(self.only_copies) - 1} more" if len(self.only_copies) > 1 else ""
        remedy = (
            "forget the snapshots that use them (`amlport verify` names them)"
            if self.in_place
            else "the next backup stores again those its workspace still holds, or forget "
            "the snapshots that use them (`amlport verify` names them)"
        )
        return (
            f"pack {self.key} is damaged ({self.problem}) and holds the only copy of "
            f"{len(self.only_copies)} object(s) snapshots use ({first}{more}): prune keeps it "
            f"and its index entries; {remedy}, then prune again"
        )


@dataclass
class _PackPlan:
    index_names: list[str]  # the index pieces read (all replaced when ``rewrite``)
    keep: list[PackEntries]  # packs kept, with their live entries only
    # pieces that could not be read, (name, why): removed, every live object being elsewhere
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    # (object hex, pack hex, offset, length) to copy to new packs, each checked when copied
    repack: list[tuple[str, str, int, int]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)  # pack hex
    freed: int = 0
    rewrite: bool = False
    damaged: list[DamagedPack] = field(default_factory=list)


def _plan_packs(objects: ObjectStore, live: set[str]) -> _PackPlan:
    """What to do with the packs; IntegrityError (nothing deleted yet) when two pieces
    disagree on a pack's size, a name under ``packs/index/`` is no piece's, or a piece cannot
    be read while a live object has no copy it does not name (``_check_elsewhere``); other
    unreadable pieces are planned for removal. Every pack holding a live object
    is read whole (``packs.pack_problem``, verify's check): a damaged one is planned by
    ``_plan_damaged``, after the sound ones, whose copies of an object are the ones kept."""
    listed = list(objects.store.list(packs.INDEX_FOLDER))
    odd = [n for n in objects.store.not_regular(packs.INDEX_FOLDER) if n not in listed]
    names: list[str] = []  # the pieces read
    unreadable: list[tuple[str, str]] = []
    merged: dict[str, PackEntries] = {}
    for name in [*listed, *odd]:
        try:
            pieces = objects.read_index_piece(name)
        except IntegrityError as exc:
            if packs.pack_of_name(f"{name[:2]}/{name}") != name:  # not a piece amlport wrote
                raise
            unreadable.append((name, exc.message))
            continue
        names.append(name)
        for pack in pieces:
            found = merged.setdefault(pack.pack, PackEntries(pack.pack, pack.size))
            if found.size != pack.size:
                raise IntegrityError(f"two pack index pieces disagree on the size of pack "
                                     f"{packs.pack_key(pack.pack)}",
                                     hint="run `amlport verify`")  # fmt: skip
            found.entries.extend(pack.entries)
    stored = dict(objects.iter_pack_keys())
    damage = {h: why for h in sorted(merged) if (why := _damage(objects, merged[h], stored, live))}
    plan = _PackPlan(index_names=names, keep=[], rewrite=len(names) > 1, unreadable=unreadable)
    taken: set[str] = set()  # objects kept: one copy each
    for pack_hex in sorted(merged, key=lambda h: (h in damage, h)):  # sound packs first
        pack = merged[pack_hex]
        entries = sorted(set(pack.entries), key=lambda e: (e[1], e[2], e[0]))
        alive = [e for e in entries if format_digest(e[0]) in live and e[0] not in taken]
        taken.update(e[0] for e in alive)
        if pack_hex in damage:
            _plan_damaged(objects, plan, pack, alive, damage[pack_hex], stored.get(pack_hex, 0))
            continue
        alive_bytes = sum(e[2] for e in alive)
        if len(alive) != len(pack.entries):
            plan.rewrite = True
        if not alive:
            plan.delete.append(pack_hex)
            plan.freed += pack.size
        elif alive_bytes * 2 < pack.size:  # most of it unreachable: copy the rest
            plan.delete.append(pack_hex)
            plan.repack += [(e[0], pack_hex, e[1], e[2]) for e in alive]
            plan.freed += pack.size - alive_bytes
        else:
            plan.keep.append(PackEntries(pack_hex, pack.size, alive))
    if unreadable:
        _check_elsewhere(objects, plan, live, taken)
    for pack_hex, size in stored.items():
        if pack_hex not in merged:  # written by a run killed before its index: garbage
            plan.delete.append(pack_hex)
            plan.freed += size
    return plan


def _check_elsewhere(
    objects: ObjectStore, plan: _PackPlan, live: set[str], taken: set[str]
) -> None:
    """With an unreadable index piece: IntegrityError (nothing deleted yet) unless every live
    object has a copy it does not name: loose, or in a pack a readable piece names (not one
    only a damaged pack holds). The piece lists what prune cannot see: while it may hold an
    object's only trace, neither it nor the packs no readable piece names may go."""
    lost = {hex_of(d) for damaged in plan.damaged for d in damaged.only_copies}
    reached = taken - lost
    missing = [
        d for d in sorted(live)
        if hex_of(d) not in reached and not objects.store.exists(objects.key(d))
    ]  # fmt: skip
    if not missing:
        return
    name, why = plan.unreadable[0]
    more = f" and {len(plan.unreadable) - 1} more" if len(plan.unreadable) > 1 else ""
    raise IntegrityError(
        f"pack index piece {packs.index_key(name)}{more} cannot be read ({why}), and "
        f"{len(missing)} object(s) snapshots use have no other copy ({missing[0]}"
        f"{' …' if len(missing) > 1 else ''}): prune stops before deleting anything",
        hint="`amlport verify` names the files that use them; a backup of a workspace that "
        "still holds them stores them again, or `amlport forget` the snapshots that use them; "
        "then prune again removes the unreadable piece",
    )


def _damage(
    objects: ObjectStore, pack: PackEntries, stored: dict[str, int], live: set[str]
) -> str | None:
    """What is wrong with a pack the index names (None: sound): one listing, then the bytes
    of a pack holding a live object hashed (the cost of reading every packed byte a snapshot
    uses once: docs/design/0007; a pack of dead objects goes whatever its bytes)."""
    actual = stored.get(pack.pack)
    if actual is None:
        return "missing"
    if actual != pack.size:
        return f"{actual} bytes, the index says {pack.size}"
    if not any(format_digest(e[0]) in live for e in pack.entries):
        return None
    problem = packs.pack_problem(objects.store, pack.pack)
    if problem is None:
        return None
    return problem.split(": ", 1)[-1] if "hash" in problem else problem


def _plan_damaged(
    objects: ObjectStore,
    plan: _PackPlan,
    pack: PackEntries,
    alive: list[tuple[str, int, int]],
    problem: str,
    actual_size: int,
) -> None:
    """A damaged pack goes (it and its index entries) once every live object it holds has
    a sound copy: a loose one whose bytes check, one in a sound pack (``taken`` before:
    those are not in ``alive``), or its own bytes in this pack when they check (salvaged:
    copied to a new pack). While one has none, the pack stays with the entries of those
    objects (never the only evidence lost), and prune says so (``DamagedPack.message``)."""
    in_place = problem != "missing" and actual_size == pack.size
    record = DamagedPack(pack.pack, problem, in_place=in_place)
    lost: list[tuple[str, int, int]] = []
    for hexd, offset, length in alive:
        digest = format_digest(hexd)
        if _sound_loose(objects, digest):
            continue
        if _sound_entry(objects, digest, pack.pack, offset, length):
            plan.repack.append((hexd, pack.pack, offset, length))
            record.salvaged += 1
        else:
            lost.append((hexd, offset, length))
    plan.damaged.append(record)
    if len(lost) != len(pack.entries):
        plan.rewrite = True
    if lost:
        record.only_copies = [format_digest(e[0]) for e in lost]
        plan.keep.append(PackEntries(pack.pack, pack.size, lost))
    else:
        plan.delete.append(pack.pack)
        plan.freed += actual_size


def _remove_unreadable(objects: ObjectStore, key: str, warn: Warn | None) -> None:
    """Delete an unreadable index piece (a FIFO or a link: the entry itself); a directory in
    its place is removed when empty, else named with what to do."""
    try:
        objects.store.delete(key)
        return
    except IntegrityError:  # a directory (``RepoStore.delete``)
        pass
    try:
        os.rmdir(objects.store.local_path(key))
        return
    except (OSError, UsageError):
        pass
    if warn is not None:
        warn(f"{key} is a directory where a pack index piece belongs, and it is not empty: "
             "every object a snapshot uses has another copy, so remove it yourself (it is no "
             "file amlport wrote), then run `amlport verify`")  # fmt: skip


def _sound_loose(objects: ObjectStore, digest: str) -> bool:
    """Is there a loose copy of ``digest`` whose bytes open to its name?"""
    try:
        limit = packs.MAX_ENTRY_BYTES + META_OVERHEAD
        stored = objects.store.read(objects.key(digest), limit=limit)
        objects.checked(digest, stored)
    except (FileNotFoundError, TooLarge, IntegrityError):
        return False
    return True


def _read_entry(objects: ObjectStore, pack_hex: str, offset: int, length: int) -> bytes:
    """An entry's stored bytes (FileNotFoundError: no pack; IntegrityError: cut short)."""
    key = packs.pack_key(pack_hex)
    data = objects.store.read_range(key, offset, length)
    if len(data) != length:
        raise IntegrityError(f"pack {key} is cut short ({len(data)} of {length} bytes at "
                             f"offset {offset})")  # fmt: skip
    return data


def _sound_entry(
    objects: ObjectStore, digest: str, pack_hex: str, offset: int, length: int
) -> bool:
    """Does the entry's copy in ``pack_hex`` open to its object's name?"""
    try:
        objects.checked(digest, _read_entry(objects, pack_hex, offset, length))
    except (FileNotFoundError, IntegrityError):
        return False
    return True


def _apply(objects: ObjectStore, plan: _PackPlan, warn: Warn | None = None) -> int:
    """Carry out ``plan`` in the crash-safe order; the packs written."""
    written: list[PackEntries] = []
    if plan.repack:
        packer = Packer(objects.store.put_once)
        with objects.store.synced_together():  # the new packs durable before their index
            for hexd, pack_hex, offset, length in plan.repack:
                data = _read_entry(objects, pack_hex, offset, length)
                packer.add(hexd, objects.checked(format_digest(hexd), data))
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
    for name, _ in plan.unreadable:  # the live objects are elsewhere (``_check_elsewhere``)
        _remove_unreadable(objects, packs.index_key(name), warn)
    named = {p.pack for p in plan.keep + written}
    for pack_hex in plan.delete:
        if pack_hex not in named:
            objects.store.delete(packs.pack_key(pack_hex))
    objects.forget_pack_index()
    return len(written)
