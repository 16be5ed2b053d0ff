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

A file the walk's read cache (``walk/cache.py``) holds is not kept in memory either: the walk
says so (``cached``) as it writes the file there, and once the walk is over the transfer
takes it from the cache on disk (``read_cached_from``), checked against the listing as the
cache checks every read — the same packed bytes, not a second copy in memory, and still no
second request (docs/design/0007, "Peak memory of the Azure backup and scan (C, session 9)").
Only what the cache may not hold (a file with a finding, a cache that cannot be used) is kept
in memory.
"""

from __future__ import annotations

import io
import threading
import zlib
from collections.abc import Iterable, Iterator
from typing import BinaryIO, Protocol

from amlport.storage.base import DEFAULT_WORKERS, BlobInfo, ReadResult, Source, SourceWrapper

DEFAULT_BUDGET = 32 * 1024 * 1024  # bytes kept at most (compressed)
MAX_KEPT_FILE = 1024 * 1024  # larger files are not kept (they are read as a stream anyway)


class KeptReads(Protocol):
    """Where the files ``cached`` names can be read back (the walk's read cache, finished):
    the bytes of ``blob`` when what is held still matches its listing, else None. Called
    from the transfer's threads."""

    def get(self, blob: BlobInfo) -> bytes | None: ...

    def close(self) -> None: ...


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
        self.served = 0  # reads answered from memory or from the read cache
        self._kept: dict[tuple[str, str], bytes] = {}
        # Files the read cache holds, by container then name (no key tuple per file): the
        # listing's ``BlobInfo``, which the plan holds anyway, to check the cached bytes by.
        self._cached: dict[str, dict[str, BlobInfo]] = {}
        self._reader: KeptReads | None = None
        self._mutex = threading.Lock()

    def read_many(
        self,
        blobs: Iterable[BlobInfo],
        *,
        max_bytes: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[ReadResult]:
        for result in self.inner.read_many(blobs, max_bytes=max_bytes, workers=workers):
            yield result
            # Kept once the caller is done with it: a file it put in the read cache meanwhile
            # (``cached``) is not kept here too.
            if result.data is not None:
                self._keep(result.blob, result.data)

    def offer(self, blob: BlobInfo, data: bytes) -> None:
        self._keep(blob, data)

    def cached(self, blob: BlobInfo) -> None:
        """The walk's read cache holds ``blob`` whole now: let a copy kept here go, and take
        it from the cache once the walk is over (``read_cached_from``)."""
        if not self.budget or blob.size > MAX_KEPT_FILE:
            return  # nothing is kept (a local copy), or it would not have been
        with self._mutex:
            packed = self._kept.pop(blob.key, None)
            if packed is not None:
                self.kept_bytes -= len(packed)
            self._cached.setdefault(blob.container, {})[blob.name] = blob

    def read_cached_from(self, reader: KeptReads | None) -> None:
        """The walk is over: files it ``cached`` are read from ``reader`` (closed by
        ``drop``); None, the cache could not be opened: they are read from storage."""
        with self._mutex:
            self._reader = reader
            if reader is None:
                self._cached = {}

    def _keep(self, blob: BlobInfo, data: bytes) -> None:
        if len(data) != blob.size or blob.size > MAX_KEPT_FILE or not self.budget:
            return  # a part of the blob, or a large one; or nothing is kept
        if blob.name in self._cached.get(blob.container, ()):
            return  # the read cache holds it
        packed = zlib.compress(data, 1)
        with self._mutex:
            if self.kept_bytes + len(packed) <= self.budget and blob.key not in self._kept:
                self._kept[blob.key] = packed
                self.kept_bytes += len(packed)

    def _take(self, container: str, name: str) -> bytes | None:
        packed = self._pop(container, name, served=True)
        if packed is not None:
            return zlib.decompress(packed)
        with self._mutex:
            blob, reader = self._uncache(container, name), self._reader
        if blob is None or reader is None:
            return None  # not held, or the walk is not over: read from storage
        data = reader.get(blob)  # checked against the listing: else None, read it again
        if data is not None:
            with self._mutex:
                self.served += 1
        return data

    def _uncache(self, container: str, name: str) -> BlobInfo | None:
        """Forget that the cache holds one file (the caller holds the mutex)."""
        names = self._cached.get(container)
        blob = names.pop(name, None) if names is not None else None
        if names is not None and not names:
            del self._cached[container]
        return blob

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
            elif not served:  # an unchanged file the cache holds: not read from it either
                self._uncache(container, name)
            return packed

    def drop(self) -> None:
        """Forget what is still kept (blobs the transfer did not need to read), and close
        the read cache's reader."""
        with self._mutex:
            self._kept.clear()
            self._cached = {}
            self.kept_bytes = 0
            reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        data = self._take(container, name)
        if data is None:
            return self.inner.read_bytes(container, name, max_bytes=max_bytes)
        return data if max_bytes is None else data[:max_bytes]

    def open_stream(self, container: str, name: str) -> BinaryIO:
        data = self._take(container, name)
        return io.BytesIO(data) if data is not None else self.inner.open_stream(container, name)
