"""A source that records its listing and its failed reads (``backup``'s own wrapper)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import BinaryIO

from amlport.errors import AmlportError
from amlport.storage.base import DEFAULT_WORKERS, BlobInfo, ReadResult, Source, SourceWrapper


class RecordingSource(SourceWrapper):
    """A source that remembers every blob its listing yielded (the walk lists once).

    ``list_ahead`` lists before the walk (a backup decides from the listing whether to walk
    at all: ``run.py``); the walk's listing is then the blobs already listed, not a second
    listing. ``read_errors`` counts reads that failed (a snapshot made with one is not a
    base for deciding the next from its listing: a retry might read it)."""

    def __init__(self, inner: Source, *, keep: bool = True) -> None:
        super().__init__(inner)
        self.keep = keep  # False: the listing is let go once the walk has taken it
        self.blobs: list[BlobInfo] = []
        self.read_errors = 0
        self._ahead = False

    def list_ahead(self, on_blob: Callable[[BlobInfo], None]) -> None:
        """List the source now, passing each blob to ``on_blob``; the next ``list_blobs``
        yields these blobs."""
        self.blobs = []
        for blob in self.inner.list_blobs():
            self.blobs.append(blob)
            on_blob(blob)
        self._ahead = True

    def list_blobs(self) -> Iterator[BlobInfo]:
        if self._ahead:
            self._ahead = False
            yield from self.blobs
            if not self.keep:  # no catch-all reads it after the walk
                self.blobs = []
            return
        self.blobs = []
        for blob in self.inner.list_blobs():
            self.blobs.append(blob)
            yield blob

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        try:
            return self.inner.read_bytes(container, name, max_bytes=max_bytes)
        except AmlportError:
            self.read_errors += 1
            raise

    def read_many(
        self,
        blobs: Iterable[BlobInfo],
        *,
        max_bytes: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[ReadResult]:
        for result in self.inner.read_many(blobs, max_bytes=max_bytes, workers=workers):
            if result.error is not None:
                self.read_errors += 1
            yield result

    def open_stream(self, container: str, name: str) -> BinaryIO:
        try:
            return self.inner.open_stream(container, name)
        except AmlportError:
            self.read_errors += 1
            raise
