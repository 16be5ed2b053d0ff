"""The envelope of a format-2 object: how its stored bytes say what they hold.

Format 1 stores every object as its plain bytes. Format 2 keeps that for data objects of an
unencrypted repository (their stored size is their size, which the listing-based checks of
a backup rely on), and wraps everything else — compressed metadata (snapshot roots, list
nodes, chunks) and every object of an encrypted repository — in an envelope that records the
codec of *this* object::

    magic    8 bytes   89 41 4d 4c 50 0d 0a 1a   ("\\x89AMLP\\r\\n\\x1a", PNG-style: binary,
                                                  CR-LF and ^Z damage is detected)
    version  1 byte    1
    codec    1 byte    0 = none, 1 = zstd (of the plain bytes)
    flags    1 byte    bit 0: sealed (the payload is encrypted, ``crypto.py``)
    length   8 bytes   the plain length, big-endian
    payload  the (compressed) bytes, or their sealed form

The name of an object is always a hash of its *plain* bytes, so an object reads the same
whatever its codec, and a reader checks the hash after decoding. The declared length bounds
decompression (a zstd bomb stops at the length it declared, and a length over the caller's
limit is refused before anything is decompressed).

Which objects have an envelope is known from where they are named, never guessed from their
bytes: a file entry names a data object (plain bytes in an unencrypted repository, exactly as
format 1 wrote them), a snapshot root or list node names a metadata object (always an
envelope). Metadata names are hashed with a domain prefix (``codec.py``), so a data object
can never share a name with a metadata object whatever a workspace holds.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass

from amlport.errors import IntegrityError

MAGIC = b"\x89AMLP\r\n\x1a"
VERSION = 1
CODEC_NONE = 0
CODEC_ZSTD = 1
CODECS = {CODEC_NONE: "none", CODEC_ZSTD: "zstd"}
FLAG_SEALED = 1
_HEADER = struct.Struct(">8sBBBQ")
HEADER_SIZE = _HEADER.size  # 19
ZSTD_LEVEL = 3  # restic's "auto" level: fast, and metadata shrinks 4-10x
_HINT = "the object is damaged; run `amlport verify` and restore it from another copy"


@dataclass(frozen=True)
class Header:
    codec: int
    sealed: bool
    length: int  # of the plain bytes

    def pack(self) -> bytes:
        flags = FLAG_SEALED if self.sealed else 0
        return _HEADER.pack(MAGIC, VERSION, self.codec, flags, self.length)


def has_magic(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def parse_header(data: bytes, *, where: str) -> Header:
    """The header at the start of ``data`` (IntegrityError when it is not one we write)."""
    if len(data) < HEADER_SIZE or not has_magic(data):
        raise IntegrityError(f"{where}: not an amlport object envelope", hint=_HINT)
    _, version, codec, flags, length = _HEADER.unpack_from(data)
    if version != VERSION or codec not in CODECS or flags & ~FLAG_SEALED:
        raise IntegrityError(
            f"{where}: envelope version {version}, codec {codec}, flags {flags} are not "
            "known to this amlport",
            hint="upgrade amlport, or restore the object from another copy",
        )
    return Header(codec=codec, sealed=bool(flags & FLAG_SEALED), length=length)


def compress(data: bytes) -> bytes:
    return _zstd().ZstdCompressor(level=ZSTD_LEVEL, write_content_size=True).compress(data)


def decompress(payload: bytes, length: int, *, where: str) -> bytes:
    """Exactly ``length`` bytes from a zstd frame, never more (a bomb stops there)."""
    zstd = _zstd()
    try:
        # A stream read of at most length + 1 bytes: the frame's own content size (which
        # a hostile frame may set to anything) never sizes a buffer.
        with zstd.ZstdDecompressor().stream_reader(io.BytesIO(payload)) as reader:
            data = reader.read(length + 1)
            trailing = reader.read(1) if len(data) == length else b""
    except zstd.ZstdError as exc:
        raise IntegrityError(
            f"{where}: compressed payload is damaged ({exc})", hint=_HINT
        ) from None
    if trailing:
        data += trailing
    if len(data) != length:
        raise IntegrityError(
            f"{where}: payload holds {len(data)} bytes, its envelope says {length}", hint=_HINT
        )
    return data


def wrap(data: bytes, *, compressed: bool) -> bytes:
    """An unsealed envelope of ``data`` (zstd when ``compressed``)."""
    if compressed:
        return Header(CODEC_ZSTD, False, len(data)).pack() + compress(data)
    return Header(CODEC_NONE, False, len(data)).pack() + data


def unwrap(stored: bytes, *, where: str, limit: int) -> bytes:
    """The plain bytes of an unsealed envelope, at most ``limit`` of them."""
    header = parse_header(stored, where=where)
    if header.sealed:
        raise IntegrityError(
            f"{where}: the object is encrypted",
            hint="open the repository with its key (--key-file or $AMLPORT_REPO_KEY)",
        )
    if header.length > limit:
        raise IntegrityError(
            f"{where}: envelope declares {header.length} bytes, more than the {limit} such "
            "an object may hold",
            hint=_HINT,
        )
    payload = stored[HEADER_SIZE:]
    if header.codec == CODEC_NONE:
        if len(payload) != header.length:
            raise IntegrityError(
                f"{where}: payload holds {len(payload)} bytes, its envelope says {header.length}",
                hint=_HINT,
            )
        return payload
    return decompress(payload, header.length, where=where)


def _zstd():  # type: ignore[no-untyped-def]
    import zstandard  # imported when first needed: most commands never decompress

    return zstandard
