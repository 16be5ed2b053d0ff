"""Pack one snapshot into a ``.tar.gz`` and unpack such a file into a repository.

A pack holds ``config.json``, exactly the objects of one snapshot, and the snapshot last —
the repository layout, so ``tar -x`` of a pack is itself a valid repository. Packs are
deterministic (no times, owners or modes from the machine). A format-2 snapshot travels in
format 2: its root (``snapshots/<id>``) and its pieces (metadata objects) with its data
objects, under the config of its repository's format.

Unpacking treats the archive as hostile. Every member is checked before anything is written,
in one pass over the archive: only regular files and directories whose names match the layout
exactly are allowed (no absolute paths, ``..``, links, devices or odd names); the snapshots are
read, checked against their names and parsed (refusing unknown majors); and every object must
be one a snapshot of the archive references, of the size it records (no unreferenced payload
of any size rides along). A format-2 snapshot's pieces are read (bounded, each checked
against its name) while scanning; every piece must be reached from a root of the archive.
Nothing is extracted by name: objects are streamed into the object
store, re-hashed on the way in, and the snapshots are written last.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from amlport.bundle import envelope, files, trees
from amlport.bundle.codec import MAX_META_BYTES, PLAIN
from amlport.bundle.config import MAX_CONFIG_BYTES, RepositoryConfig
from amlport.bundle.objects import META_OVERHEAD, ObjectStore, StageProgress, format_digest
from amlport.bundle.snapshots import (
    MAX_MANIFEST_BYTES,
    SHORT_ID_LENGTH,
    SnapshotStore,
    check_snapshot_bytes,
    check_snapshot_hash,
)
from amlport.errors import IntegrityError, UsageError
from amlport.model.manifest import EntryReader, Manifest

_OBJECT_RE = re.compile(r"^objects/sha256/([0-9a-f]{2})/(\1[0-9a-f]{62})$")
_SNAPSHOT_RE = re.compile(r"^snapshots/([0-9a-f]{64})\.json$")
_ROOT_RE = re.compile(r"^snapshots/([0-9a-f]{64})$")
MAX_PIECE_STORED = MAX_META_BYTES + META_OVERHEAD
MAX_PIECES_TOTAL = 256 << 20  # stored bytes of the pieces a scan holds in memory
_DIR_RE = re.compile(r"^(objects|objects/sha256|objects/sha256/[0-9a-f]{2}|snapshots)/?$")
_HINT = "the archive was not made by `amlport pack` or was altered; nothing was unpacked"


@dataclass
class PackReport:
    path: Path
    snapshot_id: str
    objects: int = 0  # data objects
    bytes: int = 0
    pieces: int = 0  # format 2: metadata objects (root pieces, list nodes, chunks)


@dataclass
class Scanned:
    """An archive checked by ``scan``: its members, and its snapshots (bytes, parsed)."""

    members: list[tarfile.TarInfo]
    manifests: dict[str, tuple[bytes, Manifest]]
    #: format 2: stored bytes of the objects that may be pieces (they carry an envelope)
    candidates: dict[str, bytes] = field(default_factory=dict)
    roots: set[str] = field(default_factory=set)  # ids of the format-2 snapshots
    pieces: set[str] = field(default_factory=set)  # pieces reached from the roots


@dataclass
class UnpackReport:
    snapshots: list[str] = field(default_factory=list)
    objects_added: int = 0
    objects_present: int = 0
    bytes_added: int = 0


def _info(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, 0
    return info


def pack(
    objects: ObjectStore,
    snapshots: SnapshotStore,
    config: RepositoryConfig,
    snapshot_id: str,
    out_path: Path,
    progress: StageProgress | None = None,
) -> PackReport:
    """Write the pack atomically; every object is re-hashed while it is copied."""
    sid = snapshots.resolve(snapshot_id)
    if objects.codec.sealed:
        raise UsageError(
            "pack does not carry snapshots of an encrypted repository in this release",
            hint="copy the repository folder or container instead (it stays encrypted)",
        )
    pieces: set[str] = set()
    if snapshots.format_of(sid) == 2:
        snapshot_name = snapshots.root_key(sid)
        raw = snapshots.store.read(snapshot_name, limit=trees.MAX_ROOT_BYTES)
        pieces = set()  # one walk: every entry checked as a format-1 pack is, every piece
        manifest = snapshots.load_exact(sid, keep=("files", "assets"), pieces=pieces)
        data = manifest.digests()
    else:
        snapshot_name = snapshots.key(sid)
        raw = snapshots.read_raw(sid)  # checked against its id
        data = Manifest.from_json_bytes(raw, where=f"snapshot {sid[:16]}").digests()
    report = PackReport(out_path, sid)
    digests = sorted(data | pieces)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with files.temp_file(out_path.parent) as (tmp, fh):
        with (
            gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_bytes(tar, "config.json", config.to_bytes())
            for done, digest in enumerate(digests, start=1):
                if digest in pieces:
                    report.bytes += _add_piece(tar, objects, digest)
                    report.pieces += 1
                else:
                    report.bytes += _add_object(tar, objects, digest)
                    report.objects += 1
                if progress is not None:
                    progress("pack", done, len(digests))
            _add_bytes(tar, snapshot_name, raw)
        files.finish(fh)
    files.publish(tmp, out_path)
    return report


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_object(tar: tarfile.TarFile, objects: ObjectStore, digest: str) -> int:
    hexd = digest.split(":", 1)[1]
    with objects.open(digest) as fh:  # raises IntegrityError when the object is missing
        size = objects.size(digest)
        if size is None:  # removed between open and now: only a concurrent prune does that
            raise IntegrityError(f"object {digest} is missing from the repository")
        tar.addfile(_info(f"objects/sha256/{hexd[:2]}/{hexd}", size), fh)
        fh.read(1)  # reach end of file, where the verifying reader checks the hash
    return size


def _add_piece(tar: tarfile.TarFile, objects: ObjectStore, digest: str) -> int:
    """A metadata object as stored (its envelope), checked against its name first."""
    stored = objects.store.read(objects.key(digest), limit=MAX_PIECE_STORED)
    objects.get_meta(digest, where="pack")  # raises when damaged
    _add_bytes(tar, objects.key(digest), stored)
    return len(stored)


# --- unpack -------------------------------------------------------------------------------


def scan(archive: Path) -> Scanned:
    """Every member of a pack and its snapshots, after checking each member is allowed and
    each object referenced; IntegrityError otherwise. Nothing is written."""
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            scanned = _scan_members(tar)
    except FileNotFoundError:
        raise UsageError(f"no archive at {archive}") from None
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise IntegrityError(f"{archive} is not a readable .tar.gz ({exc})", hint=_HINT) from None
    if not scanned.manifests:
        raise IntegrityError(f"{archive} holds no snapshot", hint=_HINT)
    _load_roots(scanned)
    _check_referenced(scanned)
    return scanned


def _scan_members(tar: tarfile.TarFile) -> Scanned:
    """One pass: each member checked, and config and snapshots read as they are reached."""
    scanned = Scanned([], {})
    seen: set[str] = set()
    for member in tar:
        _check_member(member, seen)
        scanned.members.append(member)
        _read_metadata(tar, member, scanned)
    return scanned


class _ArchivePieces:
    """The pieces of an archive, for ``trees.TreeReader`` (``get_meta`` as the store's)."""

    def __init__(self, candidates: dict[str, bytes]) -> None:
        self.candidates = candidates

    def get_meta(self, digest: str, *, where: str) -> bytes:
        stored = self.candidates.get(digest)
        if stored is None:
            raise IntegrityError(
                f"archive is incomplete: {where} needs object {digest}", hint=_HINT
            )
        name = digest.split(":", 1)[1]
        plain = PLAIN.unpack_meta(stored, name, where=f"{where}, object {digest}",
                                  limit=MAX_META_BYTES)  # fmt: skip
        if PLAIN.meta_name(plain) != name:
            raise IntegrityError(f"archive object {digest} is corrupt", hint=_HINT)
        return plain


def _load_roots(scanned: Scanned) -> None:
    """Parse each format-2 snapshot from its pieces (all checked), noting what it reaches."""
    pieces = _ArchivePieces(scanned.candidates)
    for sid in sorted(scanned.roots):
        stored = scanned.manifests[sid][0]
        where = f"snapshot {sid[:SHORT_ID_LENGTH]}"
        plain = PLAIN.unpack_meta(stored, sid, where=where, limit=trees.MAX_ROOT_BYTES)
        check_snapshot_hash(sid, PLAIN.meta_name(plain))
        root = trees.read_root(plain, where)
        reader = trees.TreeReader(pieces)  # type: ignore[arg-type]
        manifest = trees.load_manifest(root, reader, EntryReader(where), lineage=True)
        manifest.snapshot_id = sid
        scanned.manifests[sid] = (stored, manifest)
        scanned.pieces |= reader.pieces


def _check_referenced(scanned: Scanned) -> None:
    """Every object of the archive is referenced by one of its snapshots, with that size."""
    sizes: dict[str, int] = {}
    for _, manifest in scanned.manifests.values():
        for entry in manifest.files:
            sizes.setdefault(entry.digest, entry.size)
    for member in scanned.members:
        match = _OBJECT_RE.match(member.name)
        if match is None:
            continue
        digest = format_digest(match.group(2))
        if digest in scanned.pieces:
            continue
        want = sizes.get(digest)
        if want is None:
            raise IntegrityError(
                f"archive member {_shown(member.name)} is an object no snapshot of the "
                "archive references",
                hint=_HINT,
            )
        if member.size != want:
            raise IntegrityError(
                f"archive member {_shown(member.name)} has {member.size} bytes, its snapshot "
                f"records {want}",
                hint=_HINT,
            )


def _shown(name: str) -> str:
    return repr(name[:120] + ("…" if len(name) > 120 else ""))


def _check_member(member: tarfile.TarInfo, seen: set[str]) -> None:
    name = member.name
    shown = _shown(name)
    if name in seen:
        raise IntegrityError(f"archive member {shown} appears twice", hint=_HINT)
    seen.add(name)
    if member.isdir() and _DIR_RE.match(name):
        return
    if not member.isreg():
        raise IntegrityError(f"archive member {shown} is not a regular file", hint=_HINT)
    limit = _size_limit(name)
    if limit is None:
        raise IntegrityError(f"archive member {shown} is outside the bundle layout", hint=_HINT)
    if member.size > limit:
        raise IntegrityError(f"archive member {shown} is too large ({member.size})", hint=_HINT)


def _size_limit(name: str) -> int | None:
    if name == "config.json":
        return MAX_CONFIG_BYTES
    if _SNAPSHOT_RE.match(name):
        return MAX_MANIFEST_BYTES
    if _ROOT_RE.match(name):
        return trees.MAX_ROOT_BYTES
    if _OBJECT_RE.match(name):
        return 1 << 62
    return None


def unpack_into(
    archive: Path,
    scanned: Scanned,
    objects: ObjectStore,
    snapshots: SnapshotStore,
    progress: StageProgress | None = None,
) -> UnpackReport:
    """Import a scanned archive: stream its objects, write its snapshots last."""
    report = UnpackReport()
    manifests = scanned.manifests
    with tarfile.open(archive, mode="r:gz") as tar:
        objs = [m for m in scanned.members if _OBJECT_RE.match(m.name)]
        pieces = {d: scanned.candidates[d] for d in scanned.pieces}
        for done, member in enumerate(objs, start=1):
            _import_object(tar, member, objects, report, pieces)
            if progress is not None:
                progress("unpack", done, len(objs))
    for sid, (raw, manifest) in sorted(manifests.items()):
        missing = sorted(
            d for d in manifest.digests() | _pieces_of(scanned, sid) if not objects.has(d)
        )
        if missing:
            raise IntegrityError(
                f"archive is incomplete: snapshot {sid[:16]} needs {len(missing)} object(s) "
                f"it does not hold, first {missing[0]}",
                hint=_HINT,
            )
        if sid in scanned.roots:
            snapshots.store.create(snapshots.root_key(sid), raw)
        else:
            snapshots.import_raw(sid, raw)
        report.snapshots.append(sid)
    return report


def _pieces_of(scanned: Scanned, sid: str) -> set[str]:
    return scanned.pieces if sid in scanned.roots else set()


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> IO[bytes]:
    fh = tar.extractfile(member)
    if fh is None:  # scan() admitted regular files only
        raise IntegrityError(f"archive member {member.name!r} has no data", hint=_HINT)
    return fh


def _read_metadata(tar: tarfile.TarFile, member: tarfile.TarInfo, scanned: Scanned) -> None:
    """Check ``config.json``; read, check and parse a format-1 snapshot; keep a format-2
    root and every object that may be a piece for ``_load_roots`` (sizes were bounded by
    ``_check_member``)."""
    out = scanned.manifests
    if member.name == "config.json":
        with _read_member(tar, member) as fh:
            RepositoryConfig.from_bytes(fh.read(), where="archive")
    elif match := _SNAPSHOT_RE.match(member.name):
        sid = match.group(1)
        with _read_member(tar, member) as fh:
            raw = fh.read()
        check_snapshot_bytes(sid, raw)
        out[sid] = (raw, Manifest.from_json_bytes(raw, where=f"snapshot {sid[:16]}"))
    elif match := _ROOT_RE.match(member.name):
        sid = match.group(1)
        with _read_member(tar, member) as fh:
            out[sid] = (fh.read(), Manifest(source={}))  # parsed from its pieces later
        scanned.roots.add(sid)
    elif (match := _OBJECT_RE.match(member.name)) and member.size <= MAX_PIECE_STORED:
        with _read_member(tar, member) as fh:
            if not envelope.has_magic(fh.read(len(envelope.MAGIC))):
                return
            fh.seek(0)
            stored = fh.read()
        held = sum(len(v) for v in scanned.candidates.values()) + len(stored)
        if held > MAX_PIECES_TOTAL:
            raise IntegrityError(
                f"archive holds more than {MAX_PIECES_TOTAL >> 20} MiB of snapshot pieces",
                hint=_HINT,
            )
        scanned.candidates[format_digest(match.group(2))] = stored


def _import_object(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    objects: ObjectStore,
    report: UnpackReport,
    scanned_piece: dict[str, bytes] | None = None,
) -> None:
    match = _OBJECT_RE.match(member.name)
    assert match is not None  # filtered by the caller
    digest = format_digest(match.group(2))
    if objects.has(digest):
        report.objects_present += 1
        return
    piece = scanned_piece.get(digest) if scanned_piece is not None else None
    if piece is not None:  # checked by scan; stored as it travelled (its envelope)
        objects.store.put_once(objects.key(digest), piece)
        report.objects_added += 1
        report.bytes_added += len(piece)
        return
    with _read_member(tar, member) as fh:
        _, size = objects.put_stream(cast(BinaryIO, fh), expected_digest=digest)
    report.objects_added += 1
    report.bytes_added += size
