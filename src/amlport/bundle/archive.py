"""Pack one snapshot into a ``.tar.gz`` and unpack such a file into a repository.

A pack holds ``config.json``, exactly the objects of one snapshot, and the snapshot last —
the repository layout, so ``tar -x`` of a pack is itself a valid repository. Packs are
deterministic (no times, owners or modes from the machine). A format-2 snapshot travels in
format 2: its root (``snapshots/<id>``) and its pieces (metadata objects: an overlay list's
overlay and its base's nodes and chunks too) with its data objects, under the config of its
repository's format.

Unpacking treats the archive as hostile. Every member is checked before anything is written,
in one pass over the archive: only regular files and directories whose names match the layout
exactly are allowed (no absolute paths, ``..``, links, devices or odd names); the snapshots are
read, checked against their names and parsed (refusing unknown majors); and every object must
be one a snapshot of the archive references, of the size it records (no unreferenced payload
of any size rides along). A format-2 snapshot's pieces are read (bounded, each checked
against its name) while scanning; every piece must be reached from a root of the archive.
Nothing is extracted by name: objects are streamed into the object
store, re-hashed on the way in, and the snapshots are written last.

A pack of an encrypted repository (docs/design/0013, "Packs") carries its objects, pieces and
root as stored (sealed) and its ``config.json`` and wrapped keys (``keys/<id>.json``): it stays
encrypted at rest and holds no secret. Unpacking it needs a user key that opens one of those
wrapped keys (nothing can be checked against its name without it); with it every piece is
decrypted and checked while scanning, as in a plain pack, and every data object is decrypted,
authenticated and its keyed hash compared with its name while it is copied, as it travelled,
into a new repository (a copy of the pack's ``config.json`` and keys) or one with the same
master key. Any other target is refused: re-encrypting would rename every object and the
snapshot itself.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import hmac
import io
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, BinaryIO, cast

from amlport.bundle import crypto, envelope, files, keys, trees
from amlport.bundle.codec import MAX_META_BYTES, PLAIN, Codec
from amlport.bundle.config import MAX_CONFIG_BYTES, RepositoryConfig
from amlport.bundle.objects import (
    CHUNK_SIZE,
    FOLDER,
    META_OVERHEAD,
    ObjectStore,
    format_digest,
    hex_of,
)
from amlport.bundle.snapshots import (
    MAX_MANIFEST_BYTES,
    SHORT_ID_LENGTH,
    SnapshotStore,
    check_snapshot_bytes,
    check_snapshot_hash,
)
from amlport.bundle.store import RepoStore
from amlport.errors import IntegrityError, UsageError
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import Manifest
from amlport.model.manifest_codec import EntryReader
from amlport.progress import Progress

_OBJECT_RE = re.compile(r"objects/sha256/([0-9a-f]{2})/(\1[0-9a-f]{62})")
_SNAPSHOT_RE = re.compile(r"snapshots/([0-9a-f]{64})\.json")
_ROOT_RE = re.compile(r"snapshots/([0-9a-f]{64})")
_KEY_RE = re.compile(r"keys/([0-9a-f]{16})\.json")  # an encrypted pack's wrapped keys
MAX_PIECE_STORED = MAX_META_BYTES + META_OVERHEAD
MAX_PIECES_TOTAL = 256 << 20  # stored bytes of the pieces a scan holds in memory
_DIR_RE = re.compile(r"(objects|objects/sha256|objects/sha256/[0-9a-f]{2}|snapshots|keys)/?")
_HINT = "the archive was not made by `amlport pack` or was altered; nothing was unpacked"
#: bytes of headers (GNU long names, PAX records, sparse maps) that one member may have: a
#: pack's names are under 100 characters; tarfile would read any declared size into memory
MAX_HEADER_BYTES = 64 << 10
#: decompressed bytes after the archive's end-of-archive blocks (tar pads to 10 KiB records)
MAX_TRAILER_BYTES = 1 << 20
#: the member types ``pack`` writes (never sparse: a sparse map turns a few bytes into holes
#: of any size)
_PLAIN_TYPES = (tarfile.REGTYPE, tarfile.AREGTYPE)
_VERIFY = "run `amlport verify` with the key; restore the object from another copy"


@dataclass
class PackReport:
    path: Path
    snapshot_id: str
    objects: int = 0  # data objects
    bytes: int = 0
    pieces: int = 0  # format 2: metadata objects (root pieces, list nodes, chunks)
    encrypted: bool = False  # sealed objects, config.json and wrapped keys (design/0013)


@dataclass
class Scanned:
    """An archive checked by ``scan``: its members, and its snapshots (bytes, parsed)."""

    members: list[tarfile.TarInfo]
    manifests: dict[str, tuple[bytes, Manifest]]
    #: format 2: stored bytes of the objects that may be pieces (they carry an envelope)
    candidates: dict[str, bytes] = field(default_factory=dict)
    held: int = 0  # stored bytes of ``candidates``
    roots: set[str] = field(default_factory=set)  # ids of the format-2 snapshots
    pieces: set[str] = field(default_factory=set)  # pieces reached from the roots
    config: RepositoryConfig | None = None  # the pack's config.json, when it has one
    config_raw: bytes = b""
    keys: dict[str, bytes] = field(default_factory=dict)  # an encrypted pack's wrapped keys
    #: how the pack's objects are named and stored: PLAIN, or the sealed codec of the
    #: repository it was packed from (opened with the user's key)
    codec: Codec = PLAIN

    @property
    def sealed(self) -> bool:
        return self.codec.sealed


@dataclass
class UnpackReport:
    snapshots: list[str] = field(default_factory=list)
    objects_added: int = 0
    objects_present: int = 0
    bytes_added: int = 0
    encrypted: bool = False  # a pack of an encrypted repository (its key opened it)


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
    progress: Progress | None = None,
) -> PackReport:
    """Write the pack atomically; every object is re-hashed while it is copied. An encrypted
    repository's objects are copied as stored, each decrypted and checked on the way (its
    key is needed: the snapshot's pieces say which objects it has)."""
    sid = snapshots.resolve(snapshot_id)
    records = _key_records(objects.store) if objects.codec.sealed else {}
    pieces: set[str] = set()
    if snapshots.format_of(sid) == 2:
        snapshot_name = snapshots.root_key(sid)
        raw = snapshots.store.read(snapshot_name, limit=trees.MAX_ROOT_BYTES)
        pieces = set()  # one walk: every entry checked as a format-1 pack is, every piece
        manifest = snapshots.load_exact(sid, LoadPlan.only("files", "assets"), pieces=pieces)
        data = manifest.digests()
        if _meta_name(objects.codec, raw, sid, trees.MAX_ROOT_BYTES) != sid:  # bytes packed
            raise IntegrityError(f"snapshot {sid[:SHORT_ID_LENGTH]} changed while packing")
    else:
        snapshot_name = snapshots.key(sid)
        raw = snapshots.read_raw(sid)  # checked against its id
        data = Manifest.from_json_bytes(raw, where=f"snapshot {sid[:16]}").digests()
    report = PackReport(out_path, sid, encrypted=objects.codec.sealed)
    digests = sorted(data | pieces)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with files.temp_file(out_path.parent) as (tmp, fh):
        with (
            gzip.GzipFile(fileobj=fh, mode="wb", mtime=0, filename="") as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            _add_bytes(tar, "config.json", config.to_bytes())
            for key_id, record in sorted(records.items()):
                _add_bytes(tar, f"{keys.FOLDER}{key_id}.json", record)
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


def _key_records(store: RepoStore) -> dict[str, bytes]:
    """The wrapped master keys of an encrypted repository as stored, each checked (they hold
    the master key only wrapped by a user key: no secret; a pack carries them so that the
    keys that open the repository open the pack)."""
    ids = keys.key_ids(store)
    if not ids or len(ids) > keys.MAX_RECORDS:
        raise IntegrityError(f"repository {store.display} holds {len(ids)} wrapped keys",
                             hint="run `amlport repo key list REPO`")  # fmt: skip
    records = {}
    for key_id in ids:
        records[key_id] = store.read(f"{keys.FOLDER}{key_id}.json", limit=keys.MAX_RECORD_BYTES)
        _check_record(key_id, records[key_id], where=f"repository {store.display}")
    return records


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_info(name, len(data)), io.BytesIO(data))


def _add_object(tar: tarfile.TarFile, objects: ObjectStore, digest: str) -> int:
    hexd = digest.split(":", 1)[1]
    if objects.codec.sealed:  # the stored (sealed) bytes, each segment opened on the way
        raw = objects.open_stored(digest)  # loose or packed: carried loose either way
        copy = _CheckedCopy(raw, objects.codec, digest, f"object {digest}", _VERIFY)
        with io.BufferedReader(copy, buffer_size=CHUNK_SIZE) as fh:  # tar wants whole reads
            size = objects.size(digest)
            if size is None:
                raise IntegrityError(f"object {digest} is missing from the repository")
            tar.addfile(_info(f"objects/sha256/{hexd[:2]}/{hexd}", size), fh)
            if fh.read(1) or not copy.finished:  # every byte copied, and checked at the end
                raise IntegrityError(f"object {digest} changed while packing", hint=_VERIFY)
        return size
    with objects.open(digest) as fh:  # raises IntegrityError when the object is missing
        size = objects.size(digest)
        if size is None:  # removed between open and now: only a concurrent prune does that
            raise IntegrityError(f"object {digest} is missing from the repository")
        tar.addfile(_info(f"objects/sha256/{hexd[:2]}/{hexd}", size), fh)
        fh.read(1)  # reach end of file, where the verifying reader checks the hash
    return size


def _add_piece(tar: tarfile.TarFile, objects: ObjectStore, digest: str) -> int:
    """A metadata object as stored (its envelope), the very bytes checked against its name."""
    stored = objects.read_meta_stored(digest)
    if _meta_name(objects.codec, stored, hex_of(digest), MAX_META_BYTES) != hex_of(digest):
        raise IntegrityError(f"pack: object {digest} is corrupt: its contents do not match "
                             "its name", hint=_VERIFY)  # fmt: skip
    _add_bytes(tar, objects.key(digest), stored)
    return len(stored)


def _meta_name(codec: Codec, stored: bytes, name: str, limit: int) -> str:
    """The name the plain bytes of a stored metadata object hash to (IntegrityError when it
    does not open: damaged, or sealed under another name)."""
    plain = codec.unpack_meta(stored, name, where=f"object {name[:16]}", limit=limit)
    return codec.meta_name(plain)


class _CheckedCopy(io.RawIOBase):
    """The stored bytes of a sealed data object, released only once the segment that holds
    them authenticated; at the end the keyed hash of the plain bytes must be the object's
    name (IntegrityError otherwise). At most two segments in memory."""

    def __init__(self, raw: BinaryIO, codec: Codec, digest: str, where: str, hint: str) -> None:
        self._raw = raw
        self._hint = hint
        self._buf = bytearray()  # bytes read from ``raw`` and not yet released
        self._verified = 0  # of them, how many authenticated
        self._head = envelope.HEADER_SIZE + crypto.SALT_SIZE
        self._digest = digest
        self._where = where
        self._hasher = codec.hasher()
        self.finished = False
        try:
            tee = cast(BinaryIO, _Tee(raw, self._buf))
            self._segments = codec.open_data(tee, hex_of(digest), where=where)
        except BaseException:
            raw.close()
            raise

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while not self._verified and not self.finished:
            self._advance()
        n = min(len(buffer), self._verified)
        memoryview(buffer)[:n] = self._buf[:n]
        del self._buf[:n]
        self._verified -= n
        return n

    def _advance(self) -> None:
        try:
            plain = next(self._segments)
        except StopIteration:
            self.finished = True
            if format_digest(self._hasher.hexdigest()) != self._digest or self._verified != len(
                self._buf
            ):
                raise IntegrityError(
                    f"{self._where} is corrupt: its bytes do not hash to its name", hint=self._hint
                ) from None
            return
        self._hasher.update(plain)
        self._verified += self._head + len(plain) + crypto.SEGMENT_OVERHEAD
        self._head = 0

    def close(self) -> None:
        self._raw.close()
        super().close()


class _Tee(io.RawIOBase):
    """Reads ``raw``, keeping a copy of every byte in ``into``."""

    def __init__(self, raw: BinaryIO, into: bytearray) -> None:
        self._raw = raw
        self._into = into

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        data = self._raw.read(-1 if size is None else size)
        self._into += data
        return data


# --- unpack -------------------------------------------------------------------------------


def scan(archive: Path, user_key: Callable[[], keys.UserKey | None] | None = None) -> Scanned:
    """Every member of a pack and its snapshots, after checking each member is allowed and
    each object referenced; IntegrityError otherwise. Nothing is written. ``user_key``: the
    key of an encrypted pack's repository, asked only for an encrypted pack (none: exit 2)."""
    with _open_tar(archive) as tar:
        scanned = _scan_members(tar)
        cast(_Stream, tar.fileobj).drain(MAX_TRAILER_BYTES)  # the gzip CRC, nothing after
    if not scanned.manifests:
        raise IntegrityError(f"{archive} holds no snapshot", hint=_HINT)
    _open_keys(archive, scanned, user_key)
    _load_roots(scanned)
    _check_referenced(scanned)
    return scanned


@contextlib.contextmanager
def _open_tar(archive: Path) -> Iterator[tarfile.TarFile]:
    """The members of ``archive``, a regular file (a link to one is followed; a FIFO is not
    waited on, a device not read), read through ``_Stream``: no member's headers are read
    past ``MAX_HEADER_BYTES``, and a damaged stream or tar is an IntegrityError naming the
    archive (never a traceback), also when found while a member's bytes are copied."""
    try:
        raw = files.open_regular(archive.resolve())
    except FileNotFoundError:
        raise UsageError(f"no archive at {archive}") from None
    except IntegrityError as exc:  # not a file amlport reads an archive from: bad input
        raise UsageError(
            exc.message.replace(str(archive.resolve()), str(archive), 1),
            hint="give the .tar.gz file that `amlport pack` wrote",
        ) from None
    with raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        stream = _Stream(gz, archive)
        try:
            with tarfile.open(fileobj=stream, mode="r:", tarinfo=_BoundedInfo) as tar:
                yield tar
        except tarfile.TarError as exc:
            raise stream.damaged(exc) from None


class _Stream(io.RawIOBase):
    """The decompressed tar stream. While a member's headers are parsed (``_BoundedInfo``)
    reads are counted against ``MAX_HEADER_BYTES`` before they are made; decompression and
    read errors are IntegrityErrors naming the archive."""

    def __init__(self, gz: gzip.GzipFile, archive: Path) -> None:
        self._gz = gz
        self._archive = archive
        self.depth = 0  # > 0 while a member's headers are parsed
        self.header_left = 0
        self.member_at = 0  # where the member whose headers are parsed starts

    def damaged(self, exc: BaseException) -> IntegrityError:
        return IntegrityError(f"{self._archive} is not a readable .tar.gz ({exc})", hint=_HINT)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if self.depth:
            want = MAX_HEADER_BYTES + 1 if size is None or size < 0 else size
            self.header_left -= want
            if self.header_left < 0:
                raise IntegrityError(
                    f"{self._archive}: the archive member at byte {self.member_at} of the tar "
                    f"stream has headers (names, PAX records, sparse maps) larger than "
                    f"{MAX_HEADER_BYTES >> 10} KiB; none was read",
                    hint=_HINT,
                )
        try:
            return self._gz.read(size)
        except (OSError, EOFError, zlib.error) as exc:
            raise self.damaged(exc) from None

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(buffer))
        memoryview(buffer)[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return self._gz.seek(offset, whence)
        except (OSError, EOFError, zlib.error) as exc:
            raise self.damaged(exc) from None

    def tell(self) -> int:
        return self._gz.tell()

    def drain(self, limit: int) -> None:
        """Read to the end of the gzip stream (its CRC and length are checked there):
        damage that no member read would reach is caught before anything is written, and
        more than ``limit`` bytes after the end of the archive are refused."""
        left = limit
        while chunk := self.read(min(CHUNK_SIZE, left + 1)):
            left -= len(chunk)
            if left < 0:
                raise IntegrityError(
                    f"{self._archive} holds more than {limit >> 10} KiB after the end of "
                    "the archive",
                    hint=_HINT,
                )


class _BoundedInfo(tarfile.TarInfo):
    """A member whose headers are read within ``MAX_HEADER_BYTES`` (``_Stream``): tarfile
    reads a GNU long name, a PAX header or a sparse map of any declared size into memory."""

    @classmethod
    def fromtarfile(cls, tar: tarfile.TarFile) -> _BoundedInfo:
        stream = cast(_Stream, tar.fileobj)
        if not stream.depth:  # a PAX or long-name header parses the next one within it
            stream.header_left, stream.member_at = MAX_HEADER_BYTES, stream.tell()
        stream.depth += 1
        try:
            return super().fromtarfile(tar)
        finally:
            stream.depth -= 1


def _scan_members(tar: tarfile.TarFile) -> Scanned:
    """One pass: each member checked, and config and snapshots read as they are reached."""
    scanned = Scanned([], {})
    seen: set[str] = set()
    for member in tar:
        _check_member(member, seen)
        scanned.members.append(member)
        _read_metadata(tar, member, scanned)
    return scanned


def _open_keys(
    archive: Path, scanned: Scanned, user_key: Callable[[], keys.UserKey | None] | None
) -> None:
    """An encrypted pack: its sealed codec, from the user's key and the pack's wrapped keys
    (KeyRequired, WrongKey: exit 2). A plain pack holds no key (a config.json stripped of its
    ``encryption`` must not pass a sealed pack off as plain)."""
    config = scanned.config
    if config is None or not config.encrypted:
        if scanned.keys:
            raise IntegrityError(
                f"{archive}: config.json declares no encryption but the archive holds wrapped "
                "keys (config.json was altered?)",
                hint=_HINT,
            )
        return
    if not scanned.keys:
        raise IntegrityError(f"{archive} is an encrypted pack without its wrapped keys",
                             hint=_HINT)  # fmt: skip
    if len(scanned.keys) > keys.MAX_RECORDS:
        raise IntegrityError(f"{archive} holds more than {keys.MAX_RECORDS} wrapped keys",
                             hint=_HINT)  # fmt: skip
    if len(scanned.roots) != len(scanned.manifests):
        raise IntegrityError(f"{archive}: a format-1 snapshot in an encrypted pack", hint=_HINT)
    user = user_key() if user_key is not None else None
    if user is None:
        raise crypto.KeyRequired(
            f"{archive} is a pack of an encrypted repository: unpacking it needs that "
            "repository's key",
            hint=crypto.KEY_HINT,
        )
    records = _Records(scanned.keys, f"in the archive {archive}")
    try:
        master = keys.unwrap(cast(RepoStore, records), config.id, user)
    except keys.WrongKey:
        raise keys.WrongKey(
            f"the {user.origin} does not open the encrypted pack {archive}",
            hint="give a key of the repository it was packed from (`amlport repo key list`)",
        ) from None
    scanned.codec = crypto.SealedCodec(master)


class _Records:
    """The wrapped keys of a pack (or bytes just read), as ``keys.py`` reads them from a
    repository: each checked by ``keys.read_record`` (size, nesting, types, KDF bounds)."""

    def __init__(self, records: dict[str, bytes], display: str) -> None:
        self.records = records
        self.display = display

    def list(self, prefix: str) -> Iterator[str]:
        yield from (f"{key_id}.json" for key_id in sorted(self.records))

    def read(self, key: str, *, limit: int) -> bytes:
        key_id = key.removeprefix(keys.FOLDER).removesuffix(".json")
        data = self.records[key_id]
        if len(data) > limit:
            raise files.TooLarge(key, len(data), limit)
        return data


def _check_record(key_id: str, raw: bytes, *, where: str) -> None:
    keys.read_record(cast(RepoStore, _Records({key_id: raw}, where)), key_id)


class _ArchivePieces:
    """The pieces of an archive, for ``trees.TreeReader`` (``get_meta`` as the store's)."""

    def __init__(self, candidates: dict[str, bytes], codec: Codec) -> None:
        self.candidates = candidates
        self.codec = codec

    def get_meta(self, digest: str, *, where: str) -> bytes:
        stored = self.candidates.get(digest)
        if stored is None:
            raise IntegrityError(
                f"archive is incomplete: {where} needs object {digest}", hint=_HINT
            )
        name = digest.split(":", 1)[1]
        plain = self.codec.unpack_meta(stored, name, where=f"{where}, object {digest}",
                                       limit=MAX_META_BYTES)  # fmt: skip
        if self.codec.meta_name(plain) != name:
            raise IntegrityError(f"archive object {digest} is corrupt", hint=_HINT)
        return plain


def _load_roots(scanned: Scanned) -> None:
    """Parse each format-2 snapshot from its pieces (all checked), noting what it reaches."""
    codec = scanned.codec
    pieces = _ArchivePieces(scanned.candidates, codec)
    for sid in sorted(scanned.roots):
        stored = scanned.manifests[sid][0]
        where = f"snapshot {sid[:SHORT_ID_LENGTH]}"
        plain = codec.unpack_meta(stored, sid, where=where, limit=trees.MAX_ROOT_BYTES)
        check_snapshot_hash(sid, codec.meta_name(plain))
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
        match = _OBJECT_RE.fullmatch(member.name)
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
        if member.size != scanned.codec.stored_size(want):  # sealed: plus a fixed overhead
            raise IntegrityError(
                f"archive member {_shown(member.name)} has {member.size} bytes, its snapshot "
                f"records {want} ({scanned.codec.stored_size(want)} stored)",
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
    if member.isdir() and _DIR_RE.fullmatch(name):
        return
    if member.type not in _PLAIN_TYPES or member.sparse is not None:
        raise IntegrityError(f"archive member {shown} is not a regular file", hint=_HINT)
    limit = _size_limit(name)
    if limit is None:
        raise IntegrityError(f"archive member {shown} is outside the bundle layout", hint=_HINT)
    if member.size > limit:
        raise IntegrityError(f"archive member {shown} is too large ({member.size})", hint=_HINT)


def _size_limit(name: str) -> int | None:
    if name == "config.json":
        return MAX_CONFIG_BYTES
    if _SNAPSHOT_RE.fullmatch(name):
        return MAX_MANIFEST_BYTES
    if _ROOT_RE.fullmatch(name):
        return trees.MAX_ROOT_BYTES
    if _KEY_RE.fullmatch(name):
        return keys.MAX_RECORD_BYTES
    if _OBJECT_RE.fullmatch(name):
        return 1 << 62
    return None


def check_target(scanned: Scanned, objects: ObjectStore, location: str) -> None:
    """A pack goes into a repository whose objects have the same names: a plain pack into a
    plain repository; an encrypted pack into one with the same master key (the repository
    it came from, a copy of it, or one a former unpack made). UsageError (exit 2) otherwise,
    before anything is written: re-encrypting would rename every object and the snapshot."""
    target = objects.codec
    if not scanned.sealed:
        if target.sealed:  # its names are keyed: every object and piece would change
            raise UsageError(
                f"repository {location} is encrypted: a pack of an unencrypted repository "
                "does not go into an encrypted one (every name would change)",
                hint="unpack into an unencrypted repository, then restore or back up from it",
            )
        return
    probe = b"amlport.pack/target\x00"  # equal keyed names: the same id key, the same master
    if not target.sealed or not hmac.compare_digest(
        target.meta_name(probe), scanned.codec.meta_name(probe)
    ):
        what = "another master key" if target.sealed else "no encryption"
        raise UsageError(
            f"repository {location} has {what}: a pack of an encrypted repository unpacks "
            "only into a new repository or into one with the same master key (the repository "
            "it was packed from, or a copy of it); it is never decrypted or re-encrypted",
            hint="give a new folder or container to --repo (it opens with the same keys as "
            "the packed repository), then restore from it",
        )


def init_copy(store: RepoStore, scanned: Scanned) -> bool:
    """Make an empty place the repository an encrypted pack came from: its wrapped keys, then
    its ``config.json`` (exclusively and last, as ``Repository.init`` does). False when a
    repository appeared there meanwhile (open it, and ``check_target`` decides)."""
    store.prepare_init()
    for key_id, record in sorted(scanned.keys.items()):
        store.create(f"{keys.FOLDER}{key_id}.json", record)  # kept when a retry finds it
    return store.create("config.json", scanned.config_raw)


def unpack_into(
    archive: Path,
    scanned: Scanned,
    objects: ObjectStore,
    snapshots: SnapshotStore,
    progress: Progress | None = None,
) -> UnpackReport:
    """Import a scanned archive: stream its objects, write its snapshots last."""
    report = UnpackReport(encrypted=scanned.sealed)
    manifests = scanned.manifests
    with _open_tar(archive) as tar:
        objs = [m for m in scanned.members if _OBJECT_RE.fullmatch(m.name)]
        pieces = {d: scanned.candidates[d] for d in scanned.pieces}
        for done, member in enumerate(objs, start=1):
            _import_object(tar, member, objects, report, pieces, scanned.codec)
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
    """Check ``config.json`` and wrapped keys; read, check and parse a format-1 snapshot;
    keep a format-2 root and every object that may be a piece (its envelope says zstd) for
    ``_load_roots`` (sizes were bounded by ``_check_member``)."""
    out = scanned.manifests
    if member.name == "config.json":
        with _read_member(tar, member) as fh:
            scanned.config_raw = fh.read()
        scanned.config = RepositoryConfig.from_bytes(scanned.config_raw, where="archive")
    elif match := _KEY_RE.fullmatch(member.name):
        with _read_member(tar, member) as fh:
            raw = fh.read()
        _check_record(match.group(1), raw, where="in the archive")
        scanned.keys[match.group(1)] = raw
    elif match := _SNAPSHOT_RE.fullmatch(member.name):
        sid = match.group(1)
        with _read_member(tar, member) as fh:
            raw = fh.read()
        check_snapshot_bytes(sid, raw)
        out[sid] = (raw, Manifest.from_json_bytes(raw, where=f"snapshot {sid[:16]}"))
    elif match := _ROOT_RE.fullmatch(member.name):
        sid = match.group(1)
        with _read_member(tar, member) as fh:
            out[sid] = (fh.read(), Manifest(source={}))  # parsed from its pieces later
        scanned.roots.add(sid)
    elif (match := _OBJECT_RE.fullmatch(member.name)) and member.size <= MAX_PIECE_STORED:
        with _read_member(tar, member) as fh:
            if not _may_be_piece(fh.read(envelope.HEADER_SIZE)):
                return
            fh.seek(0)
            stored = fh.read()
        scanned.held += len(stored)  # a running total: one sum per member is quadratic
        if scanned.held > MAX_PIECES_TOTAL:
            raise IntegrityError(
                f"archive holds more than {MAX_PIECES_TOTAL >> 20} MiB of snapshot pieces",
                hint=_HINT,
            )
        scanned.candidates[format_digest(match.group(2))] = stored


def _may_be_piece(head: bytes) -> bool:
    """A piece's envelope says zstd (a sealed data object's says none: it is not held)."""
    try:
        return envelope.parse_header(head, where="").codec == envelope.CODEC_ZSTD
    except IntegrityError:
        return False


def _import_object(
    tar: tarfile.TarFile,
    member: tarfile.TarInfo,
    objects: ObjectStore,
    report: UnpackReport,
    scanned_piece: dict[str, bytes] | None = None,
    codec: Codec = PLAIN,
) -> None:
    match = _OBJECT_RE.fullmatch(member.name)
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
    if codec.sealed:  # stored as it travelled, committed only once every segment opened
        report.bytes_added += _import_sealed(tar, member, objects, codec, digest)
        report.objects_added += 1
        return
    with _read_member(tar, member) as fh:
        _, size = objects.put_stream(cast(BinaryIO, fh), expected_digest=digest)
    report.objects_added += 1
    report.bytes_added += size


def _import_sealed(
    tar: tarfile.TarFile, member: tarfile.TarInfo, objects: ObjectStore, codec: Codec, digest: str
) -> int:
    key = objects.key(digest)
    where = f"archive member {_shown(member.name)}"
    sha = hashlib.sha256()
    size = 0
    raw = cast(BinaryIO, _read_member(tar, member))
    with (
        _CheckedCopy(raw, codec, digest, where, _HINT) as copy,
        objects.store.staging(FOLDER, key) as stage,
    ):
        while chunk := copy.read(CHUNK_SIZE):
            sha.update(chunk)
            stage.write(chunk)
            size += len(chunk)
        if not copy.finished or size != member.size:
            raise IntegrityError(f"{where} is truncated", hint=_HINT)
        stage.commit(key, format_digest(sha.hexdigest()))
    return size
