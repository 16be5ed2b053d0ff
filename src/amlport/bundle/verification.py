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

import hashlib
from dataclasses import dataclass, field
from typing import Any

from amlport.bundle import packs
from amlport.bundle.objects import CHUNK_SIZE, ObjectStore
from amlport.bundle.snapshots import SHORT_ID_LENGTH, SnapshotStore
from amlport.errors import IntegrityError
from amlport.model.manifest import Manifest
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


@dataclass
class _Reference:
    size: int
    paths: list[str] = field(default_factory=list)


def verify(
    objects: ObjectStore,
    snapshots: SnapshotStore,
    snapshot_id: str | None = None,
    progress: Progress | None = None,
) -> VerifyReport:
    report = VerifyReport()
    ids = [snapshots.resolve(snapshot_id)] if snapshot_id else snapshots.ids()
    refs: dict[str, _Reference] = {}
    pieces: set[str] = set()
    for sid in ids:
        report.snapshots.append(sid)
        manifest = _load(snapshots, sid, report, pieces)
        if manifest is not None:
            _collect(manifest, refs)
    report.pieces_checked = len(pieces)
    check_packs(objects, report)
    for done, digest in enumerate(sorted(refs), start=1):
        _check_object(objects, digest, refs[digest], report)
        if progress is not None:
            progress("verify", done, len(refs))
    return report


def check_packs(objects: ObjectStore, report: VerifyReport) -> None:
    """Every index piece readable, every pack it names present, of its size, and whole."""
    if not objects.packing:
        return
    index = objects.pack_index()
    for key, message in index.problems:
        report.problems.append(VerifyProblem(CORRUPT_PACK_INDEX, f"{message} ({key})"))
    stored = dict(objects.iter_pack_keys())
    for pack, size in zip(index.packs, index.pack_sizes, strict=True):
        key = packs.pack_key(pack)
        report.packs_checked += 1
        actual = stored.get(pack)
        if actual is None:
            message = f"pack {key} is missing: the objects its index names are missing"
            report.problems.append(VerifyProblem(MISSING_PACK, message))
        elif actual != size:
            message = f"pack {key} has {actual} bytes, its index says {size}"
            report.problems.append(VerifyProblem(CORRUPT_PACK, message))
        else:
            problem = _hash_pack(objects, key, pack)
            if problem is not None:
                report.problems.append(VerifyProblem(CORRUPT_PACK, problem))


def _hash_pack(objects: ObjectStore, key: str, pack: str) -> str | None:
    sha = hashlib.sha256()
    try:
        with objects.store.open(key, limit=packs.MAX_PACK_BYTES) as fh:
            while chunk := fh.read(CHUNK_SIZE):
                sha.update(chunk)
    except FileNotFoundError:
        return f"pack {key} was removed while being checked"
    except IntegrityError as exc:
        return f"pack {key}: {exc.message}"
    if sha.hexdigest() != pack:
        return f"pack {key} is corrupt: its bytes hash to {sha.hexdigest()}"
    return None


def _load(
    snapshots: SnapshotStore, sid: str, report: VerifyReport, pieces: set[str]
) -> Manifest | None:
    try:
        return snapshots.load_exact(sid, pieces=pieces)
    except IntegrityError as exc:
        report.problems.append(VerifyProblem(CORRUPT_SNAPSHOT, str(exc), snapshot_id=sid))
        return None


def _collect(manifest: Manifest, refs: dict[str, _Reference]) -> None:
    short = (manifest.snapshot_id or "")[:SHORT_ID_LENGTH]
    for entry in manifest.files:
        ref = refs.setdefault(entry.digest, _Reference(entry.size))
        ref.paths.append(f"{short}:{entry.path}")


def _check_object(objects: ObjectStore, digest: str, ref: _Reference, report: VerifyReport) -> None:
    report.objects_checked += 1
    paths = tuple(ref.paths)
    # One read: presence, size and hash; an object larger than recorded is not read.
    size, problem = objects.measure(digest, ref.size)
    if size is None:
        message = f"object {digest} is missing (used by {_first(paths)})"
        report.problems.append(VerifyProblem(MISSING_OBJECT, message, digest=digest, paths=paths))
        return
    report.bytes_checked += min(size, ref.size)  # a larger one was not read
    if problem is not None:
        message = f"{problem} (used by {_first(paths)})"
        report.problems.append(VerifyProblem(CORRUPT_OBJECT, message, digest=digest, paths=paths))
    elif size != ref.size:
        message = f"object {digest} has {size} bytes, the manifest says {ref.size}"
        report.problems.append(VerifyProblem(SIZE_MISMATCH, message, digest=digest, paths=paths))


def _first(paths: tuple[str, ...]) -> str:
    more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
    return f"{paths[0]}{more}" if paths else "no file"
