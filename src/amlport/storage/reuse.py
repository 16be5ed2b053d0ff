"""Read each small blob once per export: the walk's reads serve the transfer again.

The walk reads the small files that carry meaning (pointers, MLmodel, YAML, logs); the
export then stores those same files. ``ReusingSource`` keeps what the walk read whole, up to
a byte budget, and hands each kept blob to the first ``read_bytes``/``open_stream`` of it —
once, after which it is dropped. The transfer still checks every byte it stores against the
listing's content-MD5, as for a fresh read. Whatever does not fit the budget is read again.

Kept blobs are held zlib-compressed (level 1): they are text (logs, JSON, YAML) and are all
held at the export's high-water mark, the end of planning — 30 MB at 100k blobs became a
few MB, for well under a second of CPU.

A source whose reads cost no request (``rereads_cheaply``: a local copy, whose second read
comes from the page cache) keeps nothing: at 100k blobs the kept reads, their keys and
their table were 24.5 MB of the first backup's peak, and compressing and decompressing
them cost about what the second read does (docs/design/0007, "Peak memory at 100k").
"""

from __future__ import annotations

import io
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from amlport.storage.base import DEFAULT_WORKERS, BlobInfo, ReadResult, Source, SourceWrapper

DEFAULT_BUDGET = 32 * 1024 * 1024  # bytes kept at most (compressed)
MAX_KEPT_FILE = 1024 * 1024  # larger files are not kept (they are read as a stream anyway)


def rereads_cheaply(source: Source) -> bool:
    """Does a second read of ``source``'s blobs cost no request (the innermost source of a
    chain of wrappers says so: ``Source.rereads_cheaply``)?"""
    while isinstance(source, SourceWrapper):
        source = source.inner
    return source.rereads_cheaply


class ReusingSource(SourceWrapper):
    """``read_many`` keeps whole small blobs; the next read of each is served from memory.
    Over a source that rereads cheaply (a local copy) it keeps nothing (budget 0)."""

    def __init__(self, inner: Source, *, budget: int = DEFAULT_BUDGET) -> None:
        super().__init__(inner)
        self.budget = 0 if rereads_cheaply(inner) else budget
        self.kept_bytes = 0
        self.served = 0  # reads answered from memory
        self._kept: dict[tuple[str, str], bytes] = {}
        self._mutex = threading.Lock()

    def read_many(
        self,
        blobs: Iterable[BlobInfo],
        *,
        max_bytes: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[ReadResult]:
        for result in self.inner.read_many(blobs, max_bytes=max_bytes, workers=workers):
            if result.data is not None:
                self._keep(result.blob, result.data)
            yield result

    def offer(self, blob: BlobInfo, data: bytes) -> None:
        self._keep(blob, data)

    def _keep(self, blob: BlobInfo, data: bytes) -> None:
        if len(data) != blob.size or blob.size > MAX_KEPT_FILE or not self.budget:
            return  # a part of the blob, or a large one; or nothing is kept
        packed = zlib.compress(data, 1)
        with self._mutex:
            if self.kept_bytes + len(packed) <= self.budget and blob.key not in self._kept:
                self._kept[blob.key] = packed
                self.kept_bytes += len(packed)

    def _take(self, container: str, name: str) -> bytes | None:
        packed = self._pop(container, name, served=True)
        return None if packed is None else zlib.decompress(packed)

    def discard(self, container: str, name: str) -> None:
        """Forget one kept blob: it will not be read again (an unchanged file)."""
        self._pop(container, name, served=False)

    def _pop(self, container: str, name: str, *, served: bool) -> bytes | None:
        """Remove one kept blob (compressed), counting it as served from memory or not."""
        with self._mutex:
            packed = self._kept.pop((container, name), None)
            if packed is not None:
                self.kept_bytes -= len(packed)
                self.served += served
                if not self._kept:  # an emptied dict keeps its table (3 MB at 100k blobs)
                    self._kept = {}
            return packed

    def drop(self) -> None:
        """Forget what is still kept (blobs the transfer did not need to read)."""
        with self._mutex:
            self._kept.clear()
            self.kept_bytes = 0

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        data = self._take(container, name)
        if data is None:
            return self.inner.read_bytes(container, name, max_bytes=max_bytes)
        return data if max_bytes is None else data[:max_bytes]

    def open_stream(self, container: str, name: str) -> BinaryIO:
        data = self._take(container, name)
        return io.BytesIO(data) if data is not None else self.inner.open_stream(container, name)
