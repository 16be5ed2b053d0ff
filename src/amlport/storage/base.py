"""The source interface every storage backend implements.

Contract:
- ``list_blobs`` yields every blob of the workspace containers exactly once, in one pass
  (one listing per container; no per-blob calls), with size, etag, content-MD5 (lowercase hex,
  or None when the store has none) and last-modified time.
- ``read_bytes`` returns a blob's content, at most ``max_bytes`` of it when given.
- ``read_many`` reads many small blobs with bounded parallelism and bounded memory, yielding
  each result as it completes; a failed read yields the error instead of raising, so one
  unreadable blob never stops a walk.
- ``reads_in_flight(workers)`` says how many reads in flight pay off for this source when
  the caller allows ``workers``: a remote store hides its latency behind all of them; a
  local disk has none to hide (``read_parallelism = 1``), so its reads, and the transfer's
  copies, run on the calling thread: no hand-over between threads per small file.
- A ``Source`` never writes. Writable stores implement ``Target`` (import/restore).
"""

from __future__ import annotations

import abc
import hashlib
import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO, Generic, ParamSpec, TypeVar

from amlport.errors import AmlportError
from amlport.model.workspace import WorkspaceDescriptor

DEFAULT_WORKERS = 8
T = TypeVar("T")
K = TypeVar("K")
P = ParamSpec("P")


@dataclass(frozen=True, order=True, slots=True)
class BlobInfo:
    container: str
    name: str
    size: int
    etag: str | None = None
    content_md5: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.container, self.name)

    def md5_matches(self, data: bytes) -> bool:
        """Are ``data`` the bytes the listing's content-MD5 names (True when it names none)?"""
        if not self.content_md5:
            return True
        return hashlib.md5(data, usedforsecurity=False).hexdigest() == self.content_md5.lower()


@dataclass(frozen=True)
class ReadResult:
    blob: BlobInfo
    data: bytes | None
    error: AmlportError | None = None


class Source(abc.ABC):
    """A read-only view of one workspace's storage."""

    descriptor: WorkspaceDescriptor
    # How many reads in flight pay off at most; None: as many as the caller allows (a remote
    # store: each read waits for the network). A local source says 1 (docs/design/0007,
    # "First backup CPU").
    read_parallelism: int | None = None
    # A second read of a blob costs no request (a local copy: the page cache): the export
    # does not keep the walk's reads for the transfer (``storage/reuse.py``).
    rereads_cheaply: bool = False

    def reads_in_flight(self, workers: int) -> int:
        """How many reads (or copies) to keep in flight when the caller allows ``workers``:
        1 means on the calling thread, one after the other."""
        limit = self.read_parallelism
        return max(1, workers if limit is None else min(workers, limit))

    @abc.abstractmethod
    def list_blobs(self) -> Iterator[BlobInfo]: ...

    @abc.abstractmethod
    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes: ...

    @abc.abstractmethod
    def open_stream(self, container: str, name: str) -> BinaryIO:
        """A file-like object for streaming a (possibly large) blob."""

    @abc.abstractmethod
    def describe(self) -> str:
        """A human-readable location with no credential in it."""

    @property
    def retry_count(self) -> int:
        """Transient storage errors retried so far (0 for sources that never retry)."""
        return 0

    def start_listing(self) -> None:  # noqa: B027 - optional hook
        """The next ``list_blobs`` will be needed: a source that lists over the network may
        start now, while the caller does other work (``AzureSource``)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients and pools."""

    def offer(self, blob: BlobInfo, data: bytes) -> None:  # noqa: B027 - optional hook
        """The whole content of ``blob``, obtained without reading it (the walk's cache): a
        source that keeps reads for a later step may keep this too."""

    def cached(self, blob: BlobInfo) -> None:  # noqa: B027 - optional hook
        """The walk's read cache holds the whole content of ``blob`` now: a source that
        keeps reads for a later step need not keep it (``storage/reuse.py``)."""

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_many(
        self,
        blobs: Iterable[BlobInfo],
        *,
        max_bytes: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[ReadResult]:
        """Read blobs in parallel, at most ``workers`` in flight (fewer when the source says
        fewer pay off: ``reads_in_flight``), yielding as they finish."""
        workers = self.reads_in_flight(workers)
        with executor(workers, "amlport-read") as pool:
            window: InFlight[bytes, BlobInfo] = InFlight()
            try:
                for blob in blobs:
                    window.add(pool.submit(self._read_one, blob, max_bytes), blob)
                    if len(window) >= workers * 2:
                        yield from self._drain(window)
                while window:
                    yield from self._drain(window)
            finally:  # the caller stopped early (or Ctrl-C): start none of the queued reads
                window.cancel_all()

    def _read_one(self, blob: BlobInfo, max_bytes: int | None) -> bytes:
        if blob.size == 0:  # the listing says empty: no request needed
            return b""
        return self.read_bytes(blob.container, blob.name, max_bytes=max_bytes)

    @staticmethod
    def _drain(window: InFlight[bytes, BlobInfo]) -> Iterator[ReadResult]:
        """Yield the reads that have finished, waiting for at least one."""
        for fut, blob in window.take():
            exc = fut.exception()
            if exc is None:
                yield ReadResult(blob, fut.result())
            elif isinstance(exc, AmlportError):
                yield ReadResult(blob, None, exc)
            else:
                raise exc


class OnThisThread(Executor):
    """An executor that runs each task on the calling thread as it is submitted: for work
    that gains nothing from threads (a local disk's reads and copies), the same futures and
    window as a pool, without a thread hand-over per task. An ``Exception`` is kept in the
    future, as a pool keeps it; a ``BaseException`` (Ctrl-C, SIGTERM) goes up at once."""

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        fut: Future[T] = Future()
        fut.set_running_or_notify_cancel()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            fut.set_exception(exc)
        else:
            fut.set_result(result)
        return fut


def executor(workers: int, name: str) -> Executor:
    """A pool of ``workers`` threads, or the calling thread for one worker."""
    if workers <= 1:
        return OnThisThread()
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)


class InFlight(Generic[T, K]):
    """A bounded window of parallel work (reads, the export's transfer): futures with a key
    each, handed back as they finish.

    Finished futures arrive through a queue their done-callback feeds, not through
    ``concurrent.futures.wait``. ``wait`` takes the lock of every pending future, one by one,
    on each call; a Ctrl-C that lands while it waits for one of them leaves the ones already
    taken locked for ever, so the worker that finishes such a future blocks, and so does the
    pool's shutdown: an interrupted export hung instead of exiting 130. A queue holds no lock
    the main thread could strand, and costs one put and one get per task rather than a lock
    per pending task per wait.
    """

    def __init__(self) -> None:
        self._keys: dict[Future[T], K] = {}
        self._finished: queue.SimpleQueue[Future[T]] = queue.SimpleQueue()

    def add(self, fut: Future[T], key: K) -> None:
        self._keys[fut] = key
        fut.add_done_callback(self._finished.put)

    def __len__(self) -> int:
        return len(self._keys)

    def take(self) -> Iterator[tuple[Future[T], K]]:
        """Wait for at least one future to finish (or be cancelled); remove and yield each
        finished one with its key."""
        fut = self._finished.get()
        while True:
            yield fut, self._keys.pop(fut)
            try:
                fut = self._finished.get_nowait()
            except queue.Empty:
                return

    def cancel_all(self) -> None:
        """Cancel every future not yet started (``take`` still hands each back)."""
        for fut in list(self._keys):
            fut.cancel()


class SourceWrapper(Source):
    """A source that hands every call to ``inner``; subclasses change what they need."""

    def __init__(self, inner: Source) -> None:
        self.inner = inner
        self.descriptor = inner.descriptor

    def list_blobs(self) -> Iterator[BlobInfo]:
        return self.inner.list_blobs()

    def start_listing(self) -> None:
        self.inner.start_listing()

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        return self.inner.read_bytes(container, name, max_bytes=max_bytes)

    def read_many(
        self,
        blobs: Iterable[BlobInfo],
        *,
        max_bytes: int | None = None,
        workers: int = DEFAULT_WORKERS,
    ) -> Iterator[ReadResult]:
        return self.inner.read_many(blobs, max_bytes=max_bytes, workers=workers)

    def reads_in_flight(self, workers: int) -> int:
        return self.inner.reads_in_flight(workers)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        return self.inner.open_stream(container, name)

    def offer(self, blob: BlobInfo, data: bytes) -> None:
        self.inner.offer(blob, data)

    def cached(self, blob: BlobInfo) -> None:
        self.inner.cached(blob)

    def describe(self) -> str:
        return self.inner.describe()

    @property
    def retry_count(self) -> int:
        return self.inner.retry_count
