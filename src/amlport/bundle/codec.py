"""How a repository names and stores its objects: one ``Codec`` per repository.

- ``PlainCodec`` (format 1, and format 2 without encryption): a data object is named by the
  SHA-256 of its bytes and stored as those bytes; a metadata object (format 2: snapshot
  root pieces, list nodes, chunks) is named by the SHA-256 of a domain prefix and its bytes,
  and stored zstd-compressed in an envelope (``envelope.py``).
- ``crypto.SealedCodec`` (format 2, ``--encrypt``): names are keyed hashes (HMAC-SHA-256
  under the repository's id key, borg's "id key": equal files still share one object, but
  nobody without the key can confirm that a known file is stored) and every stored byte is
  sealed.

The domain prefix keeps the two namespaces apart: a workspace file can never be stored
under a metadata object's name (nor the reverse), whatever it holds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import BinaryIO, Protocol

from amlport.bundle import envelope

ALGORITHM = "sha256"
META_DOMAIN = b"amlport.meta/2\x00"
MAX_META_BYTES = 64 << 20  # one list node, chunk or root, decompressed


class Hasher(Protocol):
    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class Codec(Protocol):
    """What ``ObjectStore`` and ``SnapshotStore`` ask of a repository's codec."""

    #: False: data objects are stored as their plain bytes (sizes from a listing are theirs)
    sealed: bool

    def hasher(self) -> Hasher:
        """A fresh hash of a data object's plain bytes (its name, in hex)."""

    def meta_name(self, plain: bytes) -> str:
        """The hex name of a metadata object."""

    def pack_meta(self, plain: bytes, name: str) -> bytes:
        """The stored form of a metadata object."""

    def unpack_meta(self, stored: bytes, name: str, *, where: str, limit: int) -> bytes:
        """The plain bytes of a stored metadata object (IntegrityError when damaged)."""

    def stored_size(self, plain_size: int) -> int:
        """Bytes a data object of ``plain_size`` bytes takes in the store (plain: the same;
        sealed: plus a deterministic overhead), for size checks made from a listing."""

    def data_writer(self, sink: Callable[[bytes], None]) -> DataWriter:
        """Turns a data object's plain bytes into its stored form, written to ``sink``."""

    def pack_data(self, plain: bytes, name: str) -> bytes:
        """The stored form of a data object."""

    def open_data(self, raw: BinaryIO, name: str, *, where: str) -> Iterator[bytes]:
        """The plain bytes of a stored data object, a piece at a time."""


class DataWriter(Protocol):
    def write(self, data: bytes, /) -> None: ...

    def finish(self, name: str, /) -> None:
        """The stream ended; ``name``: its hex name (a sealed object binds it)."""


class _PassThrough:
    def __init__(self, sink: Callable[[bytes], None]) -> None:
        self.write = sink

    def finish(self, name: str) -> None:
        pass


class PlainCodec:
    sealed = False

    def hasher(self) -> Hasher:
        return hashlib.sha256()

    def meta_name(self, plain: bytes) -> str:
        return hashlib.sha256(META_DOMAIN + plain).hexdigest()

    def pack_meta(self, plain: bytes, name: str) -> bytes:
        return envelope.wrap(plain, compressed=True)

    def unpack_meta(self, stored: bytes, name: str, *, where: str, limit: int) -> bytes:
        return envelope.unwrap(stored, where=where, limit=limit)

    def stored_size(self, plain_size: int) -> int:
        return plain_size

    def data_writer(self, sink: Callable[[bytes], None]) -> DataWriter:
        return _PassThrough(sink)

    def pack_data(self, plain: bytes, name: str) -> bytes:
        return plain

    def open_data(self, raw: BinaryIO, name: str, *, where: str) -> Iterator[bytes]:
        while chunk := raw.read(1 << 20):
            yield chunk


PLAIN = PlainCodec()
