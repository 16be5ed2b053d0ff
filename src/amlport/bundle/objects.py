"""The object store: immutable blobs named by the SHA-256 of their bytes.

Layout: ``objects/sha256/<first 2 hex>/<all 64 hex>``. An object is written once, atomically
(by the store: temp file + fsync + rename, or a conditional blob write) and never modified;
writing bytes that are already stored is a no-op, which is what makes a second export of an
unchanged source cheap. Every read that returns bytes checks them against the name, and a
read of an object whose size the caller knows (from a manifest) never reads more than that.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from amlport.bundle import envelope, packs
from amlport.bundle.codec import MAX_META_BYTES, PLAIN, Codec, Hasher
from amlport.bundle.files import TooLarge
from amlport.bundle.packs import PackEntries, Packer, PackIndex
from amlport.bundle.store import RepoStore, Staging
from amlport.errors import IntegrityError, UsageError
from amlport.model.manifest import DIGEST_RE
from amlport.progress import ByteProgress
from amlport.streams import OwningChunkStream, read_into

CHUNK_SIZE = 1 << 20  # 1 MiB: bounded memory for any object size
MAX_CHUNK_SIZE = 4 << 20
ALGORITHM = "sha256"
FOLDER = f"objects/{ALGORITHM}/"
META_OVERHEAD = envelope.HEADER_SIZE + 4096  # envelope, zstd framing, a seal
LISTING_THRESHOLD = 256  # remote: more presence checks than this are one listing instead
_VERIFY_HINT = "run `amlport verify` and re-export the affected assets"

Sizer = Callable[[str], "int | None"]  # digest -> bytes of the stored object, None: missing


def format_digest(hexdigest: str) -> str:
    return f"{ALGORITHM}:{hexdigest}"


def hex_of(digest: str) -> str:
    """The 64 hex characters of a ``sha256:<hex>`` digest (UsageError when malformed)."""
    if not DIGEST_RE.match(digest):
        raise UsageError(f"{digest!r} is not a digest of the form sha256:<64 lowercase hex>")
    return digest.split(":", 1)[1]


def digest_of(data: bytes) -> str:
    return format_digest(hashlib.sha256(data).hexdigest())


def normalize_md5(value: str) -> bytes:
    """Content-MD5 as 16 raw bytes, from hex (listing form) or base64 (HTTP header form)."""
    text = value.strip()
    try:
        raw = bytes.fromhex(text) if len(text) == 32 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        raw = b""
    if len(raw) != 16:
        raise UsageError(f"{value!r} is not an MD5 in hex or base64")
    return raw


_T = TypeVar("_T")


class ObjectStore:
    """Content-addressed objects under ``objects/`` of a store (a folder or a container)."""

    def __init__(self, store: RepoStore, codec: Codec = PLAIN, *, packing: bool = False) -> None:
        self.store = store
        self.codec = codec
        # ``config.json`` declares ``packs``: small objects of a batch go to pack files, and
        # every lookup consults the pack index (``packs.py``), read once per open repository.
        self.packing = packing
        self._index: PackIndex | None = None
        self._index_lock = threading.Lock()
        self._damaged: frozenset[str] | None = None  # ``_damaged_packs``
        self._batch: Packer | None = None
        self._twins = _Twins()  # streams judged once for several names (``put_stream``)
        # In a batch over a local folder: per fan-out folder (``ab``), the loose objects
        # small enough to be packed (``_loose_small``), listed once instead of one lookup
        # of each new object's file.
        self._loose: dict[str, frozenset[str]] = {}

    @property
    def base(self) -> Path:
        """The local folder of the objects (UsageError for a remote repository)."""
        return self.store.local_path(FOLDER)

    @staticmethod
    def key(digest: str) -> str:
        hexd = hex_of(digest)
        return f"{FOLDER}{hexd[:2]}/{hexd}"

    def path(self, digest: str) -> Path:
        """The file of an object in a local repository (UsageError for a remote one)."""
        return self.store.local_path(self.key(digest))

    def has(self, digest: str) -> bool:
        return self._locate_sound(digest) is not None or self.store.exists(self.key(digest))

    def size(self, digest: str) -> int | None:
        """Bytes of a stored object, None when it is missing (or only in a damaged pack)."""
        found = self._locate_sound(digest)
        return found[2] if found is not None else self.store.size(self.key(digest))

    def location(self, digest: str) -> str:
        """Where an object's bytes are, for messages and tests: its key, or ``<pack key>@
        <offset>+<length>`` for a packed one (the copy that is read)."""
        found = self._reading(digest)
        if found is None or found[0] is None:
            return self.key(digest)
        return f"{packs.pack_key(found[0])}@{found[1]}+{found[2]}"

    # --- pack files (``packs.py``) ---------------------------------------------------------

    def pack_index(self) -> PackIndex:
        """Every packed object, from the index pieces read once (an unreadable piece is in
        ``problems``, its objects are missing)."""
        with self._index_lock:
            if self._index is None:
                self._index = self._load_index() if self.packing else PackIndex()
            return self._index

    def forget_pack_index(self) -> None:
        """Read the index pieces again at the next lookup (``prune`` rewrote them)."""
        with self._index_lock:
            self._index = None
            self._damaged = None

    def _load_index(self) -> PackIndex:
        index = PackIndex()
        self._add_unseen_pieces(index)
        return index

    def _add_unseen_pieces(self, index: PackIndex) -> bool:
        """Read into ``index`` the index pieces it has not read yet (nor found unreadable);
        True when there were any. A FIFO, a link or a directory in place of a piece is named
        (its objects would be missing without a word): read as a piece, it is refused for
        what it is."""
        seen = index.index_keys | {key for key, _ in index.problems}
        folder = packs.INDEX_FOLDER
        new = [n for n in self.store.list(folder) if packs.index_key(n) not in seen]
        new += [n for n in self.store.not_regular(folder) if packs.index_key(n) not in seen]
        for name in new:
            key = packs.index_key(name)
            try:
                index.add_table(key, self.read_index_plain(name))
            except IntegrityError as exc:
                index.problems.append((key, exc.message))
        return bool(new)

    def _found_new_packs(self) -> bool:
        """Read the index pieces written since this store read the index (a writer packed
        objects meanwhile: a reader open beside a running backup finds the snapshot root
        the backup wrote last, but not yet its packed pieces); True when there were any.
        Asked only when a read finds an object missing, never by ``has``: a backup's
        lookups of new objects must not list ``packs/index/`` each."""
        if not self.packing:
            return False
        index = self.pack_index()
        with self._index_lock:  # one reader at a time adds them (``add_table``: see there)
            found = self._add_unseen_pieces(index)
            if found:
                self._damaged = None
        return found

    def read_index_piece(self, name: str) -> list[PackEntries]:
        """The packs one index piece lists, checked against its name and every bound."""
        return packs.decode_index(self.read_index_plain(name), where=packs.index_key(name))

    def read_index_plain(self, name: str) -> bytes:
        """The plain bytes of an index piece, checked against its name (not yet parsed)."""
        key = packs.index_key(name)
        if "/" in name or len(name) != 64 or packs.pack_of_name(f"{name[:2]}/{name}") is None:
            raise IntegrityError(f"{key} is not named like a pack index", hint=_VERIFY_HINT)
        try:
            stored = self.store.read(key, limit=packs.MAX_INDEX_BYTES + META_OVERHEAD)
        except TooLarge as exc:
            raise IntegrityError(f"{key} has {exc.size} bytes, more than a pack index may hold",
                                 hint=_VERIFY_HINT) from None  # fmt: skip
        plain = self.codec.unpack_meta(stored, name, where=key, limit=packs.MAX_INDEX_BYTES)
        if self.codec.meta_name(plain) != name:
            raise IntegrityError(f"{key} is corrupt: its contents do not match its name",
                                 hint=_VERIFY_HINT)  # fmt: skip
        return plain

    def write_index_piece(self, plain: bytes) -> str:
        """Store an index piece (durable when this returns); its key."""
        name = self.codec.meta_name(plain)
        key = packs.index_key(name)
        with self.store.synced_together():
            self.store.put_once(key, self.codec.pack_meta(plain, name))
        return key

    def iter_pack_keys(self) -> Iterator[tuple[str, int]]:
        """(pack hex, stored size) of every pack file, indexed or not."""
        for name, size in self.store.list_sizes(packs.FOLDER):
            pack = packs.pack_of_name(name)
            if pack is not None:
                yield pack, size

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Objects ``add``ed inside are made durable together when the block ends (the
        store's ``synced_together``); in a repository with packs, those smaller than
        ``packs.PACK_BELOW`` go to pack files, and the index piece naming them is written,
        durable, after the packs are and before the block returns: whatever records the
        objects (the source index, a snapshot root) comes after it, however the block ends."""
        if not self.packing or self._batch is not None:
            with self.store.synced_together():
                yield
            return
        packer = Packer(self.store.put_once)
        self._batch = packer
        self._loose = {}
        try:
            with self.store.synced_together():  # loose objects and packs durable together
                try:
                    yield
                finally:
                    packer.flush()
        finally:
            try:
                plain = packer.index_plain()  # the packs written, even if the block raised
                if plain is not None:
                    key = self.write_index_piece(plain)
                    self.pack_index().add_table(key, plain)
            finally:
                self._batch = None
                self._loose = {}

    def _loose_small(self, hexd: str) -> bool:
        """May the object ``hexd`` be stored loose at a size a batch packs (a stream, an
        unpack)? Asked of each new object of a batch: in a local folder its fan-out folder
        is listed once per batch (a first backup's folders hold few loose objects, and a
        lookup of each new object's file was ~4 % of its main process, docs/design/0007,
        "First-backup time (A, session 9)"); True then only for a name listed, which the
        caller checks by its size as before. A loose object written meanwhile by another
        process may be missed: it is then packed too, a second copy that reads and prune
        take as any. Elsewhere (a remote store) always True: the caller asks the store."""
        if self.store.local_root is None:
            return True
        fan = hexd[:2]
        names = self._loose.get(fan)
        if names is None:
            names = frozenset(
                name
                for name, size in self.store.list_sizes(f"{FOLDER}{fan}/")
                if size < packs.PACK_BELOW and "/" not in name
            )
            self._loose[fan] = names
        return hexd in names

    def _locate(self, digest: str) -> tuple[str | None, int, int] | None:
        """(pack hex, or None while in the batch's memory; offset, length), None: not packed."""
        if not self.packing:
            return None
        hexd = hex_of(digest)
        batch = self._batch
        if batch is not None:
            found = batch.find(hexd)
            if found is not None:
                return found
        return self.pack_index().find(hexd, self._damaged_packs)  # a sound copy first

    def _locate_sound(self, digest: str) -> tuple[str | None, int, int] | None:
        """``_locate``, but None when the pack holding the object is damaged (missing, or not
        at the size its index gives): such an object counts as not stored, as a loose one
        not at its size does, so a backup stores it again (loose) instead of trusting it."""
        found = self._locate(digest)
        return None if self._in_damaged_pack(found) else found

    def _in_damaged_pack(self, found: tuple[str | None, int, int] | None) -> bool:
        """Is ``found`` (a ``_locate`` answer) an entry of a damaged pack?"""
        return found is not None and found[0] is not None and found[0] in self._damaged_packs()

    def _reading(self, digest: str) -> tuple[str | None, int, int] | None:
        """Where to read an object: its pack, unless the pack is damaged and a loose copy
        was stored since (then the loose copy; without one the damaged pack, whose read
        names what is wrong)."""
        found = self._locate(digest)
        if not self._in_damaged_pack(found):
            return found
        return None if self.store.exists(self.key(digest)) else found

    def _damaged_packs(self) -> frozenset[str]:
        """Packs the index names that are missing or not at their indexed size: one listing
        of ``packs/``, taken at the first lookup of a packed object (and again after
        ``forget_pack_index``)."""
        with self._index_lock:
            damaged = self._damaged
        if damaged is None:
            index = self.pack_index()
            actual = dict(self.iter_pack_keys())
            known = len(index.packs)  # a piece added meanwhile (``add_table``) waits
            damaged = frozenset(
                pack
                for pack, size in zip(index.packs[:known], index.pack_sizes[:known], strict=True)
                if actual.get(pack) != size
            )
            with self._index_lock:
                self._damaged = damaged
        return damaged

    def _read_packed(self, digest: str, found: tuple[str | None, int, int]) -> bytes:
        """The stored bytes of a packed object (FileNotFoundError: its pack is missing)."""
        pack, offset, length = found
        if pack is None and self._batch is not None:
            data = self._batch.buffered(offset, length)
            if data is not None:
                return data
            again = self._locate(digest)
            if again is None or again[0] is None:
                raise FileNotFoundError(digest)
            pack, offset, length = again
        if pack is None:
            raise FileNotFoundError(digest)
        index, hexd = self.pack_index(), hex_of(digest)
        if not index.has_copies(hexd):  # the one copy: the caller's check names what is wrong
            return self._read_copy(digest, pack, offset, length)
        return self._read_sound_copy(digest, (pack, offset, length), index.copies_of(hexd))

    def _read_copy(self, digest: str, pack: str, offset: int, length: int) -> bytes:
        key = packs.pack_key(pack)
        data = self.store.read_range(key, offset, length)  # never more than the entry says
        if len(data) != length:
            raise IntegrityError(
                f"object {digest}: pack {key} is cut short ({len(data)} of {length} bytes at "
                f"offset {offset})",
                hint=_VERIFY_HINT,
            )
        return data

    def _read_sound_copy(
        self, digest: str, first: tuple[str, int, int], copies: list[tuple[str, int, int]]
    ) -> bytes:
        """An object the index holds in several packs (F, session 8): the first copy whose
        bytes check, ``first`` (``_locate``'s choice) first, so a damaged copy (bytes flipped
        at its pack's size, which ``_damaged_packs`` cannot see) does not hide a sound one
        until a prune; checked here, as only the bytes of one copy reach the caller. None
        sound: the first copy's bytes or error, for the caller's check to name."""
        first_read: bytes | Exception | None = None  # what the first copy gave
        for copy in [first, *(c for c in copies if c != first)]:
            try:
                data = self._read_copy(digest, *copy)
            except (FileNotFoundError, IntegrityError) as exc:  # gone, or cut short
                first_read = exc if first_read is None else first_read
                continue
            try:
                return self.checked(digest, data)
            except IntegrityError:
                first_read = data if first_read is None else first_read
        if isinstance(first_read, Exception):
            raise first_read
        assert first_read is not None
        return first_read

    def stored_checked(self, digest: str) -> bytes:
        """The stored bytes of an object (sealed ones sealed), loose or packed, after checking
        that they open to bytes of its name (a repack copies nothing damaged)."""
        with self.open_stored(digest) as fh:
            return self.checked(digest, fh.read())

    def checked(self, digest: str, stored: bytes) -> bytes:
        """``stored`` (an object's stored bytes, from wherever) when they open to bytes of
        its name, else IntegrityError (``stored_checked``; prune checks a copy before it
        drops another)."""
        try:
            plain = stored
            if self.codec.sealed:
                where = f"object {digest}"
                plain = b"".join(self.codec.open_data(io.BytesIO(stored), hex_of(digest),
                                                      where=where))  # fmt: skip
            actual = self.digest_of(plain)
            if actual != digest:
                raise IntegrityError(
                    f"object {digest} is corrupt: its bytes hash to {actual}", hint=_VERIFY_HINT
                )
        except IntegrityError:
            if not self._is_meta(stored, digest):  # a snapshot piece is checked as one
                raise
        return stored

    def _is_meta(self, stored: bytes, digest: str) -> bool:
        try:
            plain = self.codec.unpack_meta(stored, hex_of(digest), where=f"object {digest}",
                                           limit=MAX_META_BYTES)  # fmt: skip
        except IntegrityError:
            return False
        return self.codec.meta_name(plain) == hex_of(digest)

    def open_stored(self, digest: str) -> BinaryIO:
        """The stored bytes of an object (sealed ones sealed), loose or packed, unchecked."""

        def read() -> BinaryIO:
            found = self._reading(digest)
            if found is not None:
                return io.BytesIO(self._read_packed(digest, found))
            return self.store.open(self.key(digest))

        return self._missing_unless_new_packs(digest, read)

    def _missing_unless_new_packs(self, digest: str, read: Callable[[], _T]) -> _T:
        """``read()`` of an object; when it finds the object missing (FileNotFoundError),
        the index pieces written since are read (``_found_new_packs``) and, when there were
        any, ``read`` is tried once more, before the object counts as missing (the one
        retry of every read: ``open``, ``open_stored``, ``read_meta_stored``, ``_read``)."""
        try:
            return read()
        except FileNotFoundError:
            if not self._found_new_packs():
                raise _missing(digest) from None
        try:
            return read()
        except FileNotFoundError:
            raise _missing(digest) from None

    def stored_size(self, plain_size: int) -> int:
        """Bytes a data object of ``plain_size`` bytes takes in this store (the codec's
        overhead added: ``size``/``sizes``/``sizer`` report stored sizes)."""
        return self.codec.stored_size(plain_size)

    def plain_sizer(self) -> Sizer:
        """``sizer`` in plain bytes (what a manifest records): -1 for a stored size no plain
        size gives (a damaged sealed object), so it never matches a recorded size."""
        sizer = self.sizer()
        if not self.codec.sealed:
            return sizer
        from amlport.bundle.crypto import plain_size_of

        def size(digest: str) -> int | None:
            stored = sizer(digest)
            if stored is None:
                return None
            plain = plain_size_of(stored)
            return -1 if plain is None else plain

        return size

    def digest_of(self, data: bytes) -> str:
        """The name of a data object holding ``data`` in this repository."""
        if not self.codec.sealed:
            return digest_of(data)
        hasher = self.codec.hasher()
        hasher.update(data)
        return format_digest(hasher.hexdigest())

    def put_bytes(self, data: bytes) -> str:
        return self.add(data)[0]

    def add(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; (its digest, whether this call stored it: False when present).
        Inside a ``batch`` of a repository with packs, a small object goes to a pack."""
        digest = self.digest_of(data)
        key = self.key(digest)
        found = self._locate(digest)
        damaged = self._in_damaged_pack(found)
        if found is not None and not damaged:
            return digest, False
        batch = self._batch
        stored_size = self.codec.stored_size(len(data))
        # an object of a damaged pack is stored loose: the index reads its first copy
        if batch is not None and stored_size < packs.PACK_BELOW and not damaged:
            hexd = hex_of(digest)
            if self._loose_small(hexd) and self.store.size(key) == stored_size:
                return digest, False  # loose already (a stream, an unpack)
            return digest, batch.add(hexd, self.codec.pack_data(data, hexd))
        if self.codec.sealed:
            # Present at its sealed size: kept without sealing again. Missing or cut short:
            # sealed and stored (``put_once`` replaces what is not this object), as in a
            # plain repository.
            if self.store.size(key) == self.codec.stored_size(len(data)):
                return digest, False
            return digest, self.store.put_once(key, self.codec.pack_data(data, hex_of(digest)))
        return digest, self.store.put_once(key, data)  # write once

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_md5: str | None = None,
        expected_digest: str | None = None,
        chunk_size: int = CHUNK_SIZE,
        progress: ByteProgress | None = None,
        judge: Callable[[bytes | memoryview], object] | None = None,
        again: Callable[[], contextlib.AbstractContextManager[BinaryIO]] | None = None,
    ) -> tuple[str, int]:
        """Store a stream of any size with bounded memory; (digest, size).

        The bytes go to the store's staging area (a temp file, or uncommitted blocks) while
        SHA-256 (and MD5 when ``expected_md5`` is given) are computed; a wrong MD5 (or a
        digest other than ``expected_digest``) raises IntegrityError and stores nothing.

        ``judge`` (the secret scan): a check whose verdict depends on the bytes alone. It
        is handed every byte in order, then ``b""``, where it raises to refuse them; nothing
        is stored then. With ``again`` (the same bytes, read anew), a stream that begins
        with the same first chunk as an earlier stream of this store (likely the same model
        under another name) is hashed but neither judged nor staged: when its bytes are
        those the earlier stream stored after its judge let them pass (the same SHA-256),
        they were judged and stored once; else they are read ``again`` and stored as any
        stream (``_Judging``; docs/design/0005, "CPU per MiB of a large-model backup (G,
        session 9)").
        """
        if not 0 < chunk_size <= MAX_CHUNK_SIZE:
            raise UsageError(f"chunk_size must be 1..{MAX_CHUNK_SIZE} bytes, got {chunk_size}")
        want_md5 = normalize_md5(expected_md5) if expected_md5 else None
        hint = self.key(expected_digest) if expected_digest else None
        read_again = False
        with self.store.staging(FOLDER, hint) as stage:
            with_md5 = want_md5 is not None
            sealer = _SealingStage(self.codec, stage) if self.codec.sealed else None
            sink = stage if sealer is None else sealer
            hasher = self.codec.hasher() if sealer is not None else None
            twins = self._twins if again is not None else None
            judging = None if judge is None else _Judging(judge, twins, chunk_size)
            try:
                sha, md5, size = _copy_hashing(
                    stream, sink, chunk_size, with_md5, progress, hasher, judging
                )
                if want_md5 is not None and md5 is not None and md5.digest() != want_md5:
                    raise IntegrityError(
                        f"content MD5 mismatch after {size} bytes: expected {want_md5.hex()}, "
                        f"read {md5.hexdigest()}",
                        hint="the source changed or the transfer was damaged; re-run the export",
                    )
                digest = format_digest(sha.hexdigest())
                if expected_digest is not None and digest != expected_digest:
                    raise IntegrityError(
                        f"object {expected_digest} is corrupt: its bytes hash to {digest}",
                        hint="the copy was damaged or tampered with; get a fresh one",
                    )
                taken = judging is not None and judging.twin_of(digest)
                if judging is not None and not taken and not judging.now:
                    read_again = True  # (nothing was staged: the staging area goes)
                elif not taken:
                    if sealer is not None:  # the store re-checks the SHA-256 it was given
                        stage.commit(self.key(digest), sealer.finish(hex_of(digest)))
                    else:
                        stage.commit(self.key(digest), digest)
                    if judging is not None:
                        judging.stored(digest)
            finally:
                if judging is not None:
                    judging.release()
        if read_again:
            assert again is not None  # (a stream is a twin only with ``again``)
            with again() as fresh:  # stored as any stream, judged as it is read
                return self.put_stream(
                    fresh,
                    expected_md5=expected_md5,
                    expected_digest=expected_digest,
                    chunk_size=chunk_size,
                    progress=progress,
                    judge=judge,
                )
        self._loose.pop(hex_of(digest)[:2], None)  # listed again when a batch next asks
        return digest, size

    # --- metadata objects (format 2: snapshot pieces, ``trees.py``) ------------------------

    def put_meta(self, plain: bytes, *, name: str | None = None) -> tuple[str, bool]:
        """Store a metadata object (compressed, sealed in an encrypted repository); (its
        digest, whether this call stored it). ``name``: ``codec.meta_name(plain)`` when the
        caller has it already."""
        name = self.codec.meta_name(plain) if name is None else name
        digest = format_digest(name)
        key = self.key(digest)
        found = self._locate(digest)
        damaged = self._in_damaged_pack(found)
        if (found is not None and not damaged) or self.store.exists(key):
            return digest, False
        stored = self.codec.pack_meta(plain, name)
        batch = self._batch
        if batch is not None and len(stored) < packs.PACK_BELOW and not damaged:
            return digest, batch.add(name, stored)
        return digest, self.store.put_once(key, stored)

    def get_meta(self, digest: str, *, where: str) -> bytes:
        """A metadata object's plain bytes, checked against its name."""
        name = hex_of(digest)
        try:
            stored = self.read_meta_stored(digest)
        except TooLarge as exc:
            raise IntegrityError(
                f"{where}: object {digest} has {exc.size} bytes, more than a snapshot piece "
                "may hold",
                hint=_VERIFY_HINT,
            ) from None
        plain = self.codec.unpack_meta(stored, name, where=f"{where}, object {digest}",
                                       limit=MAX_META_BYTES)  # fmt: skip
        if self.codec.meta_name(plain) != name:
            raise IntegrityError(
                f"{where}: object {digest} is corrupt: its contents do not match its name",
                hint=_VERIFY_HINT,
            )
        return plain

    def _read_meta(self, digest: str) -> bytes:
        """The stored bytes of a metadata object, loose or (a later writer's) packed."""
        limit = MAX_META_BYTES + META_OVERHEAD
        found = self._reading(digest)
        if found is None:
            return self.store.read(self.key(digest), limit=limit)
        if found[2] > limit:
            raise TooLarge(self.location(digest), found[2], limit)
        return self._read_packed(digest, found)

    def read_meta_stored(self, digest: str) -> bytes:
        """A metadata object as stored (its envelope), unchecked (``pack`` checks it)."""
        return self._missing_unless_new_packs(digest, lambda: self._read_meta(digest))

    def get_bytes(self, digest: str, size: int | None = None) -> bytes:
        """The object's bytes, checked; ``size``: what the manifest says it holds (never more
        is read; unknown: the size it has in the store)."""
        data = self._read(digest, size)
        if self.codec.sealed:
            where = f"object {digest}"
            data = b"".join(self.codec.open_data(io.BytesIO(data), hex_of(digest), where=where))
        actual = self.digest_of(data)
        if actual != digest:
            raise IntegrityError(
                f"object {digest} is corrupt: its bytes hash to {actual}", hint=_VERIFY_HINT
            )
        return data

    def open(self, digest: str, size: int | None = None) -> BinaryIO:
        """A reader that raises IntegrityError at end of file when the bytes do not match;
        ``size``: what the manifest says it holds (a larger object is refused at once)."""
        limit = None if size is None else self.stored_size(size)

        def stored() -> BinaryIO:
            found = self._reading(digest)
            if found is None:
                return self.store.open(self.key(digest), limit=limit)
            if limit is not None and found[2] > limit:
                raise _larger(digest, self._plain_size(found[2]), size)
            return io.BytesIO(self._read_packed(digest, found))

        raw = self._missing_unless_new_packs(digest, stored)
        return io.BufferedReader(self._verifying(raw, digest), buffer_size=CHUNK_SIZE)

    def _verifying(self, raw: BinaryIO, digest: str) -> _VerifyingReader:
        if not self.codec.sealed:
            return _VerifyingReader(raw, digest)
        try:
            plain = OwningChunkStream(raw, self.codec.open_data(raw, hex_of(digest),
                                                         where=f"object {digest}"))  # fmt: skip
        except BaseException:
            raw.close()
            raise
        return _VerifyingReader(cast(BinaryIO, plain), digest, self.codec.hasher())

    def check(self, digest: str) -> str | None:
        """None when the object is present and whole, else the problem in words."""
        size, problem = self.measure(digest)
        return _missing(digest).message if size is None else problem

    def measure(self, digest: str, expected: int | None = None) -> tuple[int | None, str | None]:
        """Read an object once: (its size, the problem in words or None); (None, None) when it
        is missing. One request per object in a remote store. ``expected``: the size the
        manifest says; a larger object is measured, not read."""
        limit = None if expected is None else self.stored_size(expected)
        found = self._reading(digest)
        try:
            if found is not None:
                if limit is not None and found[2] > limit:
                    return self._plain_size(found[2]), None  # the caller compares it
                raw: BinaryIO = io.BytesIO(self._read_packed(digest, found))
            else:
                raw = self.store.open(self.key(digest), limit=limit)
        except FileNotFoundError:
            return None, None
        except TooLarge as exc:
            return self._plain_size(exc.size), None  # the caller compares it with its own
        except IntegrityError as exc:  # not a regular file
            return 0, exc.message
        size = 0
        try:
            with io.BufferedReader(self._verifying(raw, digest), buffer_size=CHUNK_SIZE) as fh:
                while chunk := fh.read(CHUNK_SIZE):
                    size += len(chunk)
        except IntegrityError as exc:
            return size, exc.message
        return size, None

    def missing(self, digests: Iterable[str]) -> list[str]:
        """The digests not stored, sorted. A remote store answers many with one listing."""
        wanted = sorted(set(digests))
        if self.store.local_root is None and len(wanted) > LISTING_THRESHOLD:
            stored = set(self.iter_digests())
            return [d for d in wanted if d not in stored]
        return [d for d in wanted if not self.has(d)]

    def presence(self) -> Callable[[str], bool]:
        """A ``has`` for many lookups (``sizer``)."""
        sizer = self.sizer()
        return lambda digest: sizer(digest) is not None

    def sizer(self) -> Sizer:
        """A ``size`` for many lookups: locally ``size`` itself (one ``lstat``); remotely one
        listing, taken at the first call (a miss is confirmed by a request: the object may be
        newer)."""
        if self.store.local_root is not None:
            return self.size
        listed: dict[str, int] | None = None
        mutex = threading.Lock()

        def size(digest: str) -> int | None:
            nonlocal listed
            with mutex:
                if listed is None:
                    # a damaged pack lists objects that do not count: ask one by one then
                    damaged = self.packing and bool(self._damaged_packs())
                    listed = {} if damaged else dict(self.iter_sizes())
            found = listed.get(digest)
            return found if found is not None else self.size(digest)

        return size

    def sizes(self, digests: Iterable[str]) -> dict[str, int | None]:
        """The stored size of each digest (None: missing). A remote store answers many with
        one listing."""
        wanted = set(digests)
        remote_many = self.store.local_root is None and len(wanted) > LISTING_THRESHOLD
        sizer = self.sizer() if remote_many else self.size
        return {digest: sizer(digest) for digest in sorted(wanted)}

    def iter_digests(self) -> Iterator[str]:
        for digest, _ in self.iter_sizes():
            yield digest

    def iter_sizes(self) -> Iterator[tuple[str, int]]:
        """(digest, size) of every stored object, loose then packed (each once): one listing
        in a remote store."""
        index = self.pack_index() if self.packing else None
        both: set[str] = set()  # loose and packed: listed once
        for name, size in self.store.list_sizes(FOLDER):
            digest = digest_of_name(name)
            if digest is not None:
                if index is not None and index.find(digest[len(ALGORITHM) + 1 :]) is not None:
                    both.add(digest)
                yield digest, size
        if index is not None:
            for hexd, length in index.items():
                digest = format_digest(hexd)
                if digest not in both:
                    yield digest, length

    def iter_temp_files(self) -> Iterator[Path]:
        return self.store.temp_files(FOLDER)

    def sweep_temp_files(self, older_than_s: float) -> int:
        return self.store.sweep_temp(FOLDER, older_than_s)

    def delete(self, digest: str) -> int:
        """Remove a loose object; the bytes freed (0 when it was not there). A packed object
        goes with its pack (``garbage.py``)."""
        key = self.key(digest)
        size = self.store.size(key)
        if size is None:
            return 0
        self.store.delete(key)
        return size

    def _plain_size(self, stored: int) -> int:
        if not self.codec.sealed:
            return stored
        from amlport.bundle.crypto import plain_size_of

        plain = plain_size_of(stored)
        return stored if plain is None else plain

    def _read(self, digest: str, size: int | None) -> bytes:
        """The stored bytes of a data object; ``size``: its plain size, if known."""

        def stored() -> bytes:
            found = self._reading(digest)
            if found is not None:
                if size is not None and found[2] > self.stored_size(size):
                    raise _larger(digest, self._plain_size(found[2]), size)
                return self._read_packed(digest, found)
            limit = self.size(digest) if size is None else self.stored_size(size)
            if limit is None:
                raise FileNotFoundError(digest)
            return self.store.read(self.key(digest), limit=limit)

        try:
            return self._missing_unless_new_packs(digest, stored)
        except TooLarge as exc:
            raise IntegrityError(
                f"object {digest} has {self._plain_size(exc.size)} bytes, the manifest says {size}",
                hint=_VERIFY_HINT,
            ) from None


def digest_of_name(name: str) -> str | None:
    """The digest of an object's name below ``objects/sha256/`` (``ab/ab12…``), if it is one."""
    fan, _, hexd = name.partition("/")
    digest = format_digest(hexd)
    ok = len(fan) == 2 and DIGEST_RE.match(digest) and hexd.startswith(fan)
    return digest if ok else None


def _larger(digest: str, actual: int, size: int | None) -> IntegrityError:
    return IntegrityError(f"object {digest} has {actual} bytes, the manifest says {size}",
                          hint=_VERIFY_HINT)  # fmt: skip


def _missing(digest: str) -> IntegrityError:
    return IntegrityError(f"object {digest} is missing from the repository", hint=_VERIFY_HINT)


def _copy_hashing(
    src: BinaryIO,
    dst: Staging | _SealingStage,
    chunk_size: int,
    with_md5: bool,
    progress: ByteProgress | None,
    hasher: Hasher | None = None,
    judging: _Judging | None = None,
) -> tuple[Hasher, hashlib._Hash | None, int]:
    sha: Hasher = hashlib.sha256() if hasher is None else hasher
    md5 = hashlib.md5(usedforsecurity=False) if with_md5 else None
    size = 0
    # A stream longer than one chunk gets one buffer: each further chunk lands in it
    # (``readinto``), is hashed (the hashes release the GIL on large buffers) and written from
    # it, without a new object per chunk; every consumer copies what it keeps (docs/design/0005,
    # "Large blobs"). A small object is one read, without that buffer.
    buffer: memoryview | None = None
    while True:
        if buffer is None:
            chunk = src.read(chunk_size)
            if len(chunk) == chunk_size:
                buffer = memoryview(bytearray(chunk_size))
        else:  # a view, not bytes: the hashes and every ``write`` take any bytes-like object
            chunk = cast(bytes, buffer[: read_into(src, buffer)])
        if not chunk:
            if judging is not None:
                judging.end()  # the judge's verdict on a stream judged as it was read
            return sha, md5, size
        sha.update(chunk)
        if md5 is not None:
            md5.update(chunk)
        if judging is None or judging.feed(chunk, sha, size):  # a twin's: hashed only
            dst.write(chunk)
        size += len(chunk)
        if progress is not None:
            progress(len(chunk))


class _Lead:
    """The first stream of a store to begin with a given first chunk: judged as it is read.
    ``clean``: the digest of its bytes once they were judged, let pass and stored."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.clean: str | None = None


class _Twins:
    """The streams of one store, by the digest of their first chunk: those that begin alike
    are likely the same bytes (one model stored under several names, three of the bench's
    models), judged and staged once (``put_stream``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._leads: dict[bytes, _Lead] = {}

    def join(self, first: bytes) -> tuple[_Lead, bool]:
        """The lead of the streams that begin with a chunk of digest ``first``, and whether
        the caller is it (the first to ask)."""
        with self._lock:
            lead = self._leads.get(first)
            if lead is not None:
                return lead, False
            lead = self._leads[first] = _Lead()
            return lead, True

    def leave(self, first: bytes, lead: _Lead) -> None:
        """A lead that ended without storing (refused, failed): the streams that wait for
        it are read again, and the next stream to begin so leads."""
        with self._lock:
            if self._leads.get(first) is lead:
                del self._leads[first]
        lead.done.set()


class _Judging:
    """How one stream is judged (``put_stream``'s ``judge``). As it is read and staged
    (``now``); or, when an earlier stream of the store began with the same chunk
    (``_Twins``), hashed only: once its digest is known, it is the earlier one's bytes,
    judged and stored (``twin_of``), or it is read again and stored as any stream. The
    verdict depends on the bytes alone, so every byte stored was judged."""

    def __init__(
        self, judge: Callable[[bytes | memoryview], object], twins: _Twins | None, chunk: int
    ) -> None:
        self._judge = judge
        self._twins = twins  # None: judged as read
        self._chunk = chunk
        self._first = b""
        self._lead: _Lead | None = None
        self._leading = False
        self.now = True  # judged and staged as read

    def feed(self, chunk: bytes | memoryview, sha: Hasher, before: int) -> bool:
        """The next chunk (``sha`` has taken it; ``before``: the bytes before it); whether
        it is staged."""
        if before == 0 and self._twins is not None and len(chunk) == self._chunk:
            self._first = cast(Any, sha).copy().digest()  # the first chunk's, no second pass
            self._lead, self._leading = self._twins.join(self._first)
            self.now = self._leading
        if self.now:
            self._judge(chunk)
        return self.now

    def end(self) -> None:
        """The stream ended: the verdict of a stream judged as read (raises to refuse)."""
        if self.now:
            self._judge(b"")

    def twin_of(self, digest: str) -> bool:
        """Are the bytes of this stream, hashed only, those its lead judged and stored? (It
        waits for the lead's end, however it ends.)"""
        lead = self._lead
        if self.now or lead is None:
            return False
        lead.done.wait()
        return lead.clean == digest

    def stored(self, digest: str) -> None:
        """The stream's bytes were judged, let pass and stored under ``digest``."""
        if self._leading and self._lead is not None:
            self._lead.clean = digest
            self._lead.done.set()

    def release(self) -> None:
        """The stream's store ended (stored, refused or failed): a lead that stored nothing
        lets the streams waiting for it go."""
        lead = self._lead
        if self._leading and lead is not None and not lead.done.is_set():
            assert self._twins is not None
            self._twins.leave(self._first, lead)


class _SealingStage:
    """Plain bytes in, sealed bytes to the store's staging (``crypto.SealWriter``); keeps the
    SHA-256 of what was staged, which a store may re-check at commit."""

    def __init__(self, codec: Codec, stage: Staging) -> None:
        self._stage = stage
        self._sha = hashlib.sha256()
        self._writer = codec.data_writer(self._staged)

    def _staged(self, data: bytes) -> None:
        self._sha.update(data)
        self._stage.write(data)

    def write(self, data: bytes) -> None:
        self._writer.write(data)

    def finish(self, name: str) -> str:
        """Seal the last segment; the SHA-256 digest of every byte staged."""
        self._writer.finish(name)
        return format_digest(self._sha.hexdigest())


class _VerifyingReader(io.RawIOBase):
    """Hashes what is read; at end of file the hash must equal the object's name."""

    def __init__(self, raw: BinaryIO, digest: str, hasher: Hasher | None = None) -> None:
        self._raw = raw
        self._digest = digest
        self._sha: Hasher = hashlib.sha256() if hasher is None else hasher
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if data:
            self._sha.update(data)
            memoryview(buffer)[: len(data)] = data
            return len(data)
        if not self._checked:
            self._checked = True
            actual = format_digest(self._sha.hexdigest())
            if actual != self._digest:
                raise IntegrityError(
                    f"object {self._digest} is corrupt: its bytes hash to {actual}",
                    hint=_VERIFY_HINT,
                )
        return 0

    def close(self) -> None:
        self._raw.close()
        super().close()
