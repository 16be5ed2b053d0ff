"""A raw byte stream over an iterator of chunks (stdlib only).

Wrapped in ``io.BufferedReader`` it reads like a file while memory stays at one chunk: a
blob download's chunks (``storage.azure.ChunkReader``), a rewriter's output
(``rewriters.text_log``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING

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
