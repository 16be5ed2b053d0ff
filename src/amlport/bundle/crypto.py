"""``SealedCodec``: the codec of an encrypted repository (docs/design/0009).

Keys. A repository has one random 256-bit *master key* (``keys.py`` stores it wrapped by
user keys); HKDF-SHA-256 derives two keys from it:

- the *id key*: an object's name is HMAC-SHA-256(id key, plain bytes) (a metadata object's:
  of ``codec.META_DOMAIN`` + its bytes), written ``sha256:<hex>`` like any digest. Equal
  files still share one object (dedup), but nobody without the key can compute the name of a
  known file, so the repository does not confirm that it holds one (borg's "id key");
- the *encryption key*: AES-256-GCM over every stored byte.

Stored form (the envelope of ``envelope.py``, flag ``sealed``)::

    header   19 bytes  codec (0 data, 1 zstd metadata), sealed, length
    salt     16 bytes  random, one per stored object
    segments           nonce (12, random) + ciphertext + tag (16), each of SEGMENT plain
                       bytes but the last (0..SEGMENT bytes, at least one segment)

Each segment's associated data binds: a domain, the object's kind (data or metadata), the
header, the salt, the segment's index and whether it is the final one; the final segment's
also binds the object's name. So a segment cannot move to another object (another salt) or
another place (index), an object cut at a segment boundary lacks its final segment, and an
object stored under another object's name fails (a STREAM-like construction: the name is
known only once a streamed object ends, which is when its final segment is sealed). Readers
also compare the keyed hash of what they decrypted with the name, as for any object.

Data objects are not compressed, and their header's length is ``STREAMED`` (a streamed
object's length is not known when its header is written): their stored size is the plain
size plus a deterministic overhead (``stored_size``), so the size checks made from a listing
keep working. Metadata objects are zstd-compressed, then sealed.

A ``SealedCodec`` without a key (a repository opened without one) names nothing and opens
nothing: it raises ``KeyRequired``; ``check_layout`` still checks an object's structure.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import struct
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO

from amlport.bundle import envelope
from amlport.bundle.codec import META_DOMAIN, Hasher
from amlport.errors import IntegrityError, UsageError
from amlport.streams import OwningChunkStream

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CIPHER = "aes-256-gcm"
KDF = "hkdf-sha256"
ID_HASH = "hmac-sha256"
SEGMENT = 1 << 20  # plain bytes per sealed segment: reads and writes hold about two of them
NONCE_SIZE = 12
TAG_SIZE = 16
SALT_SIZE = 16
SEGMENT_OVERHEAD = NONCE_SIZE + TAG_SIZE
STREAMED = (1 << 64) - 1  # the header length of a data object: its segments carry the length
KIND_DATA = b"d"
KIND_META = b"m"
_AAD_DOMAIN = b"amlport.seal/1\x00"
_INDEX = struct.Struct(">QB")
_HINT = "the object is damaged or was replaced; run `amlport verify` with the key"
KEY_HINT = "give the repository's key: --key-file PATH or $AMLPORT_REPO_KEY (a passphrase)"


class KeyRequired(UsageError):
    """The repository is encrypted and was opened without its key (exit 2)."""


def derive(master: bytes) -> tuple[bytes, bytes]:
    """(encryption key, id key) of a 32-byte master key (HKDF-SHA-256, distinct infos)."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def one(info: bytes) -> bytes:
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(master)

    return one(b"amlport repository encryption key/1"), one(b"amlport repository id key/1")


def segments(plain_size: int) -> int:
    return max(1, -(-plain_size // SEGMENT))


def stored_size(plain_size: int) -> int:
    """Bytes a sealed data object of ``plain_size`` bytes takes (header, salt, segments)."""
    return envelope.HEADER_SIZE + SALT_SIZE + segments(plain_size) * SEGMENT_OVERHEAD + plain_size


def plain_size_of(stored: int) -> int | None:
    """The plain size a stored data object of ``stored`` bytes holds; None: no size fits."""
    rest = stored - envelope.HEADER_SIZE - SALT_SIZE
    if rest < SEGMENT_OVERHEAD:
        return None
    count = max(1, -(-rest // (SEGMENT + SEGMENT_OVERHEAD)))
    plain = rest - count * SEGMENT_OVERHEAD
    return plain if plain >= 0 and stored_size(plain) == stored else None


def _aad(kind: bytes, header: bytes, salt: bytes, index: int, final: bool, name: str) -> bytes:
    tail = name.encode("ascii") if final else b""
    return _AAD_DOMAIN + kind + header + salt + _INDEX.pack(index, final) + tail


class SealWriter:
    """Seals a stream of plain bytes segment by segment into ``sink``; ``finish(name)``
    seals the last segment (the name is known only then)."""

    def __init__(self, aead: AESGCM, kind: bytes, header: bytes, sink: Callable[[bytes], None]):
        self._aead = aead
        self._kind = kind
        self._header = header
        self._sink = sink
        self._salt = os.urandom(SALT_SIZE)
        self._buf = bytearray()
        self._index = 0
        sink(header + self._salt)

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) > SEGMENT:  # a full segment with more after it: not the last
            self._seal(bytes(self._buf[:SEGMENT]), final=False, name="")
            del self._buf[:SEGMENT]

    def finish(self, name: str) -> None:
        self._seal(bytes(self._buf), final=True, name=name)
        self._buf = bytearray()

    def _seal(self, plain: bytes, *, final: bool, name: str) -> None:
        nonce = os.urandom(NONCE_SIZE)
        aad = _aad(self._kind, self._header, self._salt, self._index, final, name)
        self._sink(nonce + self._aead.encrypt(nonce, plain, aad))
        self._index += 1


class _OpenReader:
    """The plain bytes of a sealed stream, one segment at a time (one read ahead, to know
    which segment is the final one)."""

    def __init__(self, aead: AESGCM, raw: BinaryIO, kind: bytes, name: str, where: str):
        self._aead = aead
        self._raw = raw
        self._kind = kind
        self._name = name
        self._where = where
        head = _read_exactly(raw, envelope.HEADER_SIZE + SALT_SIZE)
        self.header = envelope.parse_header(head, where=f"{where} is corrupt")
        if not self.header.sealed:
            raise IntegrityError(f"{where}: the object is not sealed, in an encrypted repository",
                                 hint=_HINT)  # fmt: skip
        self._head = head[: envelope.HEADER_SIZE]
        self._salt = head[envelope.HEADER_SIZE :]
        self._index = 0
        self._next = _read_exactly(raw, SEGMENT + SEGMENT_OVERHEAD)
        self._done = False

    def segments(self) -> Iterator[bytes]:
        while not self._done:
            record = self._next
            if len(record) < SEGMENT_OVERHEAD:
                raise IntegrityError(f"{self._where}: the object is truncated", hint=_HINT)
            following = b""
            if len(record) == SEGMENT + SEGMENT_OVERHEAD:
                following = _read_exactly(self._raw, SEGMENT + SEGMENT_OVERHEAD)
            final = not following
            aad = _aad(self._kind, self._head, self._salt, self._index, final,
                       self._name if final else "")  # fmt: skip
            yield self._open(record, aad, final)
            self._index += 1
            self._next = following
            self._done = final

    def _open(self, record: bytes, aad: bytes, final: bool) -> bytes:
        from cryptography.exceptions import InvalidTag

        try:
            return self._aead.decrypt(record[:NONCE_SIZE], record[NONCE_SIZE:], aad)
        except InvalidTag:
            what = "truncated, damaged, or stored under another name" if final else "damaged"
            raise IntegrityError(
                f"{self._where} is corrupt: segment {self._index} does not authenticate (the "
                f"object is {what}, or the key is not this repository's)",
                hint=_HINT,
            ) from None


def _read_exactly(raw: BinaryIO, size: int) -> bytes:
    parts: list[bytes] = []
    want = size
    while want:
        chunk = raw.read(want)
        if not chunk:
            break
        parts.append(chunk)
        want -= len(chunk)
    return b"".join(parts)


class SealedCodec:
    """The codec of an encrypted repository; ``master``: None when opened without the key."""

    sealed = True

    def __init__(self, master: bytes | None) -> None:
        self.has_key = master is not None
        self._enc_key = self._id_key = b""
        self._aead: AESGCM | None = None
        if master is not None:
            if len(master) != 32:
                raise UsageError("a repository master key has 32 bytes")
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._enc_key, self._id_key = derive(master)
            self._aead = AESGCM(self._enc_key)

    def _cipher(self) -> AESGCM:
        self._need_key()
        assert self._aead is not None
        return self._aead

    def _need_key(self) -> None:
        if not self.has_key:
            raise KeyRequired("this repository is encrypted and was opened without its key",
                              hint=KEY_HINT)  # fmt: skip

    # --- names ---

    def hasher(self) -> Hasher:
        self._need_key()
        return hmac.new(self._id_key, digestmod=hashlib.sha256)

    def meta_name(self, plain: bytes) -> str:
        self._need_key()
        return hmac.new(self._id_key, META_DOMAIN + plain, hashlib.sha256).hexdigest()

    # --- metadata: compressed, then sealed ---

    def pack_meta(self, plain: bytes, name: str) -> bytes:
        self._need_key()
        header = envelope.Header(envelope.CODEC_ZSTD, True, len(plain)).pack()
        out: list[bytes] = []
        writer = SealWriter(self._cipher(), KIND_META, header, out.append)
        writer.write(envelope.compress(plain))
        writer.finish(name)
        return b"".join(out)

    def unpack_meta(self, stored: bytes, name: str, *, where: str, limit: int) -> bytes:
        self._need_key()
        reader = _OpenReader(self._cipher(), io.BytesIO(stored), KIND_META, name, where)
        header = reader.header
        if header.codec != envelope.CODEC_ZSTD or header.length > limit:
            raise IntegrityError(
                f"{where}: not a metadata object, or it declares {header.length} bytes "
                f"(at most {limit})",
                hint=_HINT,
            )
        payload = b"".join(reader.segments())
        return envelope.decompress(payload, header.length, where=where)

    # --- data: sealed as they are ---

    def stored_size(self, plain_size: int) -> int:
        return stored_size(plain_size)

    def data_writer(self, sink: Callable[[bytes], None]) -> SealWriter:
        self._need_key()
        header = envelope.Header(envelope.CODEC_NONE, True, STREAMED).pack()
        return SealWriter(self._cipher(), KIND_DATA, header, sink)

    def pack_data(self, plain: bytes, name: str) -> bytes:
        out: list[bytes] = []
        writer = self.data_writer(out.append)
        writer.write(plain)
        writer.finish(name)
        return b"".join(out)

    def open_data(self, raw: BinaryIO, name: str, *, where: str) -> Iterator[bytes]:
        """The plain segments of a stored data object (IntegrityError when damaged)."""
        self._need_key()
        reader = _OpenReader(self._cipher(), raw, KIND_DATA, name, where)
        header = reader.header
        if header.codec != envelope.CODEC_NONE or header.length != STREAMED:
            raise IntegrityError(f"{where}: not a data object", hint=_HINT)
        return reader.segments()


def check_layout(head: bytes, stored: int, *, meta: bool | None, where: str) -> str | None:
    """Without the key: None when the first bytes (header and salt) and the stored size of
    an object are those of a sealed object of its kind (``meta``; None: the kind its header
    says), else the problem in words."""
    try:
        header = envelope.parse_header(head, where=where)
    except IntegrityError as exc:
        return exc.message
    if not header.sealed:
        return f"{where}: the object is not sealed, in an encrypted repository"
    if meta is None:
        meta = header.codec == envelope.CODEC_ZSTD
    if meta:
        rest = stored - envelope.HEADER_SIZE - SALT_SIZE
        if header.codec != envelope.CODEC_ZSTD or rest < SEGMENT_OVERHEAD:
            return f"{where}: not a sealed metadata object (codec {header.codec}, {stored} bytes)"
        return None
    if header.codec != envelope.CODEC_NONE or header.length != STREAMED:
        return f"{where}: not a sealed data object"
    if plain_size_of(stored) is None:
        return f"{where}: {stored} bytes is no whole number of sealed segments (truncated?)"
    return None


KIND_VALUE = b"v"


class SealedValues:
    """A view of a store whose ``open``/``write_chunks`` seal and unseal whole values (an
    encrypted repository's per-source index, ``index.py``: blob names and etags are not for
    whoever holds the repository). Everything else goes to the store as it is. A value that
    does not open (damaged, foreign, another key) reads as a ``ValueError`` midway — what a
    cache reader treats as "not usable" — or as an IntegrityError when opened."""

    def __init__(self, store: object, codec: SealedCodec) -> None:
        self._store = store
        self._codec = codec

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    def _name(self, key: str) -> str:
        return self._codec.meta_name(b"amlport.value/1\x00" + key.encode("utf-8"))

    def write_chunks(self, key: str, chunks: Iterator[bytes] | list[bytes]) -> None:
        self._store.write_chunks(key, self._sealed(key, chunks))  # type: ignore[attr-defined]

    def write(self, key: str, data: bytes) -> None:
        self.write_chunks(key, [data])

    def _sealed(self, key: str, chunks: Iterator[bytes] | list[bytes]) -> Iterator[bytes]:
        self._codec._need_key()
        out: list[bytes] = []
        header = envelope.Header(envelope.CODEC_NONE, True, STREAMED).pack()
        writer = SealWriter(self._codec._cipher(), KIND_VALUE, header, out.append)
        for chunk in chunks:
            writer.write(chunk)
            yield from out
            out.clear()
        writer.finish(self._name(key))
        yield from out

    def open(self, key: str, *, limit: int | None = None) -> BinaryIO:
        self._codec._need_key()
        raw = self._store.open(key, limit=limit)  # type: ignore[attr-defined]
        try:
            reader = _OpenReader(self._codec._cipher(), raw, KIND_VALUE, self._name(key), key)
        except BaseException:
            raw.close()
            raise
        return io.BufferedReader(_Values(raw, reader.segments()))


class UnusableValue(IntegrityError, ValueError):
    """A sealed value that does not open: an IntegrityError, and a ValueError for readers of
    caches that take unparsable content for "not usable"."""


class _Values(OwningChunkStream):
    """The segments of a sealed value; a damaged one is ``UnusableValue`` (a cache's reader
    takes it for unusable content)."""

    def next_chunk(self) -> bytes | None:
        try:
            return super().next_chunk()
        except IntegrityError as exc:
            raise UnusableValue(exc.message, hint=exc.hint) from None
