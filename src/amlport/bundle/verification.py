"""``verify``: every snapshot's own hash, and every object it references present and whole.

A format-2 snapshot is checked through its pieces: the root against its id, each list node
and chunk against its name, as the snapshot is read (``pieces_checked`` counts them); a list
stored as an overlay, through its overlay and its base's nodes and chunks, and their counts.

In a repository with pack files, every pack the index names is read whole and hashed
against its name and size (``packs_checked``), and an unreadable index piece, a missing or
damaged pack is reported naming it; each packed object is then checked as a loose one is.

Each object is read and hashed once however many snapshots share it. Problems are collected,
not raised, so one report names every damaged object with the bundle paths that use it; the
CLI turns a report that is not ``ok`` into exit code 4. Content checks of YAML and MLmodel
files (``--deep``) live above this layer and read files through ``Repository.iter_files``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.bundle import packs
from amlport.bundle.objects import ObjectStore, hex_of
from amlport.bundle.snapshots import SHORT_ID_LENGTH, SnapshotStore
from amlport.errors import IntegrityError
from amlport.model.loadplan import SUMMARY, LoadPlan
from amlport.progress import Progress

MISSING_OBJECT = "missing_object"
CORRUPT_OBJECT = "corrupt_object"
SIZE_MISMATCH = "size_mismatch"
CORRUPT_SNAPSHOT = "corrupt_snapshot"
MISSING_PACK = "missing_pack"
CORRUPT_PACK = "corrupt_pack"
CORRUPT_PACK_INDEX = "corrupt_pack_index"


@dataclass(frozen=True)
class VerifyProblem:
    kind: str
    message: str
    snapshot_id: str | None = None
    digest: str | None = None
    paths: tuple[str, ...] = ()  # bundle paths (``<short snapshot id>:<path>``) using it

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "message": self.message,
            "snapshot_id": self.snapshot_id,
            "digest": self.digest,
            "paths": list(self.paths),
        }


@dataclass
class VerifyReport:
    snapshots: list[str] = field(default_factory=list)
    objects_checked: int = 0
    pieces_checked: int = 0  # format 2: roots' list nodes and chunks, each against its name
    bytes_checked: int = 0
    packs_checked: int = 0  # pack files, each read whole against its name
    problems: list[VerifyProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "snapshots": list(self.snapshots),
            "objects_checked": self.objects_checked,
            "pieces_checked": self.pieces_checked,
            "bytes_checked": self.bytes_checked,
            "packs_checked": self.packs_checked,
            "problems": [p.to_dict() for p in self.problems],
        }


def verify(
    objects: ObjectStore,
    snapshots: SnapshotStore,
    snapshot_id: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    """Memory: one snapshot's files and assets at a time (kept only for the check of their
    references), and one size per distinct object. The bundle paths a problem names are
    collected by a second read of the snapshots, for the damaged objects only (a
    ``<snapshot>:<path>`` string per file per snapshot was ~45 MB at 100k files and three
    snapshots; docs/design/0007, "Peak memory at 100k (E, session 6)")."""
    report = VerifyReport()
    ids = [snapshots.resolve(snapshot_id)] if snapshot_id else snapshots.ids()
    sizes: dict[str, int] = {}  # digest -> size, as the first snapshot naming it records it
    pieces: set[str] = set()
    loaded: list[str] = []
    for sid in ids:
        report.snapshots.append(sid)
        if _load(snapshots, sid, report, pieces, sizes):
            loaded.append(sid)
    report.pieces_checked = len(pieces)
    bad_packs = check_packs(objects, report)
    damaged: list[_Damaged] = []
    for done, digest in enumerate(sorted(sizes), start=1):
        found = _check_object(objects, digest, sizes[digest], report)
        if found is not None:
            damaged.append(found)
        if progress is not None:
            progress("verify", done, len(sizes))
    if damaged:
        paths = _paths_of(snapshots, loaded, {d.digest for d in damaged})
        report.problems += [d.problem(tuple(paths.get(d.digest, ()))) for d in damaged]
    if bad_packs:
        _say_what_stays_readable(objects, report, bad_packs, sizes, {d.digest for d in damaged})
    return report


def _say_what_stays_readable(
    objects: ObjectStore,
    report: VerifyReport,
    bad_packs: dict[str, int],
    sizes: dict[str, int],
    unreadable: set[str],
) -> None:
    """Each damaged pack's problem says whether the objects of it that a snapshot uses are
    still readable (reads fall back to another copy: a sound pack or a loose object) or how
    many are not (named as objects of their own). The problem stays one: the repository
    holds damage until a prune drops the pack (F, session 8)."""
    index = objects.pack_index()
    used: dict[str, list[str]] = {pack: [] for pack in bad_packs}
    for digest in sizes:
        for pack, _, _ in index.copies_of(hex_of(digest)):
            if pack in used:
                used[pack].append(digest)
    for pack, at in bad_packs.items():
        lost = sum(1 for d in used[pack] if d in unreadable)
        if not used[pack]:
            note = "no snapshot uses an object of it"
        elif lost:
            note = (
                f"{lost} of the {len(used[pack])} object(s) of it that snapshots use have no "
                "sound copy"
            )
        else:
            note = (
                f"the {len(used[pack])} object(s) of it that snapshots use are still readable "
                "from another copy"
            )
        old = report.problems[at]
        fix = "; a prune drops it" if not lost else ""
        report.problems[at] = VerifyProblem(old.kind, f"{old.message} ({note}{fix})",
                                            old.snapshot_id, old.digest, old.paths)  # fmt: skip


def check_packs(objects: ObjectStore, report: VerifyReport) -> dict[str, int]:
    """Every index piece readable, every pack it names present, of its size, and whole; the
    packs that are not, each with the place of its problem in ``report.problems``."""
    bad: dict[str, int] = {}
    if not objects.packing:
        return bad
    index = objects.pack_index()
    for key, message in index.problems:
        report.problems.append(VerifyProblem(CORRUPT_PACK_INDEX, f"{message} ({key})"))
    stored = dict(objects.iter_pack_keys())
    for pack, size in zip(index.packs, index.pack_sizes, strict=True):
        key = packs.pack_key(pack)
        report.packs_checked += 1
        actual = stored.get(pack)
        problem: VerifyProblem | None = None
        if actual is None:
            message = f"pack {key} is missing: the copies its index names are missing"
            problem = VerifyProblem(MISSING_PACK, message)
        elif actual != size:
            message = f"pack {key} has {actual} bytes, its index says {size}"
            problem = VerifyProblem(CORRUPT_PACK, message)
        elif (found := packs.pack_problem(objects.store, pack)) is not None:  # prune's check
            problem = VerifyProblem(CORRUPT_PACK, found)
        if problem is not None:
            bad[pack] = len(report.problems)
            report.problems.append(problem)
    return bad


_SUMMARY_WITH_REFERENCES = LoadPlan.only("files", "assets")  # check_references runs


def _load(
    snapshots: SnapshotStore,
    sid: str,
    report: VerifyReport,
    pieces: set[str],
    sizes: dict[str, int],
) -> bool:
    """Read and check one snapshot (every piece, entry and reference, as a whole read does),
    recording the size of each object it names; False (and a problem) when it is damaged."""
    found: dict[str, int] = {}

    def take(key: str, entry: Any) -> None:
        if key == "files":
            found.setdefault(entry.digest, entry.size)

    try:
        snapshots.load_exact(sid, _SUMMARY_WITH_REFERENCES, pieces=pieces, on_entry=take)
    except IntegrityError as exc:
        report.problems.append(VerifyProblem(CORRUPT_SNAPSHOT, str(exc), snapshot_id=sid))
        return False
    for digest, size in found.items():  # only a snapshot read whole counts
        sizes.setdefault(digest, size)
    return True


def _paths_of(snapshots: SnapshotStore, ids: list[str], digests: set[str]) -> dict[str, list[str]]:
    """The bundle paths (``<short snapshot id>:<path>``) naming each of ``digests``, in the
    order of the snapshots and of their files."""
    paths: dict[str, list[str]] = {}
    for sid in ids:
        short = sid[:SHORT_ID_LENGTH]

        def take(key: str, entry: Any, short: str = short) -> None:
            if key == "files" and entry.digest in digests:
                paths.setdefault(entry.digest, []).append(f"{short}:{entry.path}")

        try:
            snapshots.load_exact(sid, SUMMARY, on_entry=take)
        except IntegrityError:  # read whole a moment ago: its problem is reported already
            continue
    return paths


@dataclass
class _Damaged:
    """An object found missing, damaged or of another size; its paths come later."""

    kind: str
    digest: str
    message: str  # followed by `` (used by <first path> and N more)`` when ``used``
    used: bool = True

    def problem(self, paths: tuple[str, ...]) -> VerifyProblem:
        message = f"{self.message} (used by {_first(paths)})" if self.used else self.message
        return VerifyProblem(self.kind, message, digest=self.digest, paths=paths)


def _check_object(
    objects: ObjectStore, digest: str, expected: int, report: VerifyReport
) -> _Damaged | None:
    report.objects_checked += 1
    # One read: presence, size and hash; an object larger than recorded is not read.
    size, problem = objects.measure(digest, expected)
    if size is None:
        return _Damaged(MISSING_OBJECT, digest, f"object {digest} is missing")
    report.bytes_checked += min(size, expected)  # a larger one was not read
    if problem is not None:
        return _Damaged(CORRUPT_OBJECT, digest, problem)
    if size != expected:
        message = f"object {digest} has {size} bytes, the manifest says {expected}"
        return _Damaged(SIZE_MISMATCH, digest, message, used=False)
    return None


def _first(paths: tuple[str, ...]) -> str:
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return f"{paths[0]}{more}" if paths else "no file"
