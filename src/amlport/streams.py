"""A raw byte stream over an iterator of chunks (stdlib only).

Wrapped in ``io.BufferedReader`` it reads like a file while memory stays at one chunk: a
blob download's chunks (``storage.azure.ChunkReader``), a rewriter's output
(``rewriters.text_log``). ``Tee`` lets an observer (a secret scanner, a hash) see every
byte a reader takes; ``write_sliced`` writes a large buffer to a local file in slices.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, BinaryIO, cast

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


class ChunkStream(io.RawIOBase):
    """A raw stream over ``chunks``; a subclass may change how the next chunk is got."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        super().__init__()
        self._chunks = chunks
        self._buf = memoryview(b"")

    def readable(self) -> bool:
        return True

    def next_chunk(self) -> bytes | None:
        """The next chunk, None at the end."""
        return next(self._chunks, None)

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._buf:
            chunk = self.next_chunk()
            if chunk is None:
                return 0
            self._buf = memoryview(chunk)
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._chunks = iter(())
        self._buf = memoryview(b"")
        super().close()


class OwningChunkStream(ChunkStream):
    """A ``ChunkStream`` whose chunks are made from ``raw`` (the segments of a sealed
    object): closing it closes ``raw``."""

    def __init__(self, raw: BinaryIO, chunks: Iterator[bytes]) -> None:
        super().__init__(chunks)
        self._raw = raw

    def close(self) -> None:
        self._raw.close()
        super().close()


class Tee(io.RawIOBase):
    """A raw stream that hands every chunk read through it to ``sink`` (a scanner, a hash):
    one pass over the bytes serves both the reader and the observer. The empty read that
    ends the stream reaches the sink too, so it can judge the whole."""

    def __init__(self, raw: BinaryIO, sink: Callable[[bytes], object]) -> None:
        super().__init__()
        self._raw = raw
        self._sink = sink

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        out = memoryview(buffer).cast("B")
        n = read_into(self._raw, out)
        self._sink(cast(bytes, out[:n]))  # a view of the caller's buffer: the sink copies
        return n


def read_into(raw: BinaryIO, out: memoryview) -> int:
    """``raw.readinto(out)``: the bytes land in the caller's buffer, with no object made per
    read (a large blob streamed through a reused buffer touches no fresh memory; docs/design/
    0005, "Large blobs"). A stream without its own ``readinto`` is read and copied."""
    readinto = getattr(type(raw), "readinto", None)
    if readinto is None or readinto is io.RawIOBase.readinto:
        data = raw.read(len(out))
        out[: len(data)] = data
        return len(data)
    return int(readinto(raw, out) or 0)


# The most bytes handed to one ``write`` of a local file. Linux caches a file in pieces
# ("folios") as large as the writes that fill it; on the shared build machine (a VM) the
# kernel's copy into large ones often cost ten times as much (likely memory handed back to
# the host and faulted in again): a transfer spooling 800 MiB spent 1.4-1.7 s of system CPU
# in 256 KiB writes and 0.6-0.8 s in 32 KiB ones (what rclone writes); in other minutes both
# cost the same. 32 calls per MiB cost ~0.1 ms of user CPU and copy nothing (docs/design/
# 0005, "CPU per MiB and scan (F, session 6)", "CPU per MiB of large models (E, session 8)").
WRITE_SLICE = 32 << 10


def write_sliced(fh: BinaryIO, data: bytes | bytearray | memoryview) -> None:
    """``fh.write(data)``, in slices of at most ``WRITE_SLICE`` bytes (views, not copies).
    ``fh`` is a buffered file (``write`` takes every byte it is given)."""
    if len(data) <= WRITE_SLICE:
        fh.write(data)
        return
    view = memoryview(data).cast("B")
    for at in range(0, len(view), WRITE_SLICE):
        fh.write(view[at : at + WRITE_SLICE])
