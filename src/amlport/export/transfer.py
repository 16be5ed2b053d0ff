"""The transfer's scheduling: a bounded window of files in flight on a thread pool, the outage
breaker, cancellation, and what the transfer counts (``TransferStats``) and what failed
(``Failure`` records).

After ``OUTAGE_AFTER`` consecutive source failures (unreachable, throttled past its retries,
access lost) the transfer stops: the files not attempted fail with that reason, instead of each
spending a retry cycle. Ctrl-C cancels the files not yet started and abandons the ones in
flight at their next read (nothing half-copied is stored). The per-file copy is
``export/copy.py``'s; this module only decides when a file is handed to a worker.
"""

from __future__ import annotations

import ctypes
import functools
import io
import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, BinaryIO

from amlport.errors import AmlportError, IntegrityError
from amlport.progress import TransferProgress
from amlport.storage import outage
from amlport.storage.base import BlobInfo, InFlight, executor
from amlport.streams import read_into

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

QUEUE_PER_WORKER = 4  # files queued per worker (bounded: memory does not grow with the count)
# The outage policy is storage/outage.py's (promote uses the same); names kept for callers.
OUTAGE_AFTER = outage.OUTAGE_AFTER
NOT_ATTEMPTED = outage.NOT_ATTEMPTED

FAILED = "failed"  # the copy raised (the source, the repository)
INTEGRITY = "integrity"  # the bytes did not match the listing's content-MD5
SKIPPED = "not attempted"  # the source went down before the file was started


@dataclass(frozen=True)
class Failure:
    """A file the transfer did not store: its bundle path, why, and which kind of failure
    (``FAILED``, ``INTEGRITY``, ``SKIPPED``). Shown as ``"<path>: <message>"``."""

    path: str
    message: str
    kind: str = FAILED

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def __contains__(self, text: str) -> bool:
        """Substring of the shown form (``"model.pkl" in failure``), as for the strings
        failures were before they were records."""
        return text in str(self)


@dataclass
class TransferStats:
    files: int = 0
    bytes: int = 0
    new_objects: int = 0
    new_bytes: int = 0
    read_bytes: int = 0
    reused: int = 0
    rewritten: int = 0
    streamed: int = 0  # files rewritten as a stream (larger than STREAM_ABOVE)
    integrity_failures: int = 0  # of the failures, how many failed their MD5 check
    stopped: str | None = None  # why the transfer stopped early (the source went down)
    failures: list[Failure] = field(default_factory=list)
    # Workers record under this lock; ``_stored``: the objects this run stored (or found
    # stored), so ``new_objects``/``new_bytes`` count each once and equal what the
    # repository gained (two equal blobs are one object).
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    _stored: set[str] = field(default_factory=set, repr=False, compare=False)
    _counted: set[str] = field(default_factory=set, repr=False, compare=False)  # as new

    def record(
        self,
        *,
        files: int = 0,
        size: int = 0,
        read: int = 0,
        reused: int = 0,
        rewritten: int = 0,
        streamed: int = 0,
        stored: str | None = None,
        new: bool | None = None,
    ) -> None:
        """Count what one file did (any thread). ``stored``: the digest of an object the
        repository holds now, of ``size`` bytes; ``new``: whether the store says this call
        wrote it; None for a stream, whose store does not say: it counts unless this run
        already stored the same bytes (a blob stored by an earlier run under another name is
        then counted again: only a stream of it, never a small file)."""
        with self._lock:
            self.files += files
            self.bytes += size
            self.read_bytes += read
            self.reused += reused
            self.rewritten += rewritten
            self.streamed += streamed
            if stored is None or stored in self._counted:
                return
            # Two files of the same bytes race: the one that wrote the object (True) may
            # record after the one that found it (False); it still counts, once.
            first = stored not in self._stored
            self._stored.add(stored)
            if new is True or (new is None and first):
                self._counted.add(stored)
                self.new_objects += 1
                self.new_bytes += size

    def fail(self, path: str, message: str, kind: str = FAILED) -> None:
        """Record a file not stored (the scheduling thread only)."""
        self.failures.append(Failure(path, message, kind))
        if kind == INTEGRITY:
            self.integrity_failures += 1

    def forget_stored(self) -> None:
        """The transfer is over: let the set of stored digests go (memory at 100k blobs)."""
        self._stored = set()
        self._counted = set()

    def to_dict(self) -> dict[str, Any]:
        """The counts, and the failures as ``"<path>: <message>"`` (JSON, snapshot stats)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if not f.name.startswith("_")}
        out["failures"] = [str(f) for f in self.failures]
        return out


class Transfer:
    """One transfer's scheduling state: the outage breaker, the abandon flag, the stats."""

    def __init__(self, stats: TransferStats) -> None:
        self.stats = stats
        self.breaker = outage.OutageBreaker()  # consecutive source failures
        self.abandon = threading.Event()  # set when the transfer is interrupted
        self._cancelled = False

    def run(
        self,
        blobs: dict[str, BlobInfo],
        reuse: Callable[[str, BlobInfo], bool],
        attempt: Callable[[str, BlobInfo], None],
        *,
        workers: int,
        progress: TransferProgress | None,
    ) -> None:
        """Hand every blob (in path order; each is popped from ``blobs`` as it goes) to
        ``reuse`` on this thread, and those it does not reuse to ``attempt`` on a worker
        (``workers`` of them; with one, ``attempt`` runs on this thread: the caller passes
        the source's ``reads_in_flight``)."""
        reuse_freed_buffers()
        # A bounded window of files in flight: queued futures cost memory per file, and a
        # workspace has 100k+ of them.
        window: InFlight[None, str] = InFlight()
        limit = max(1, workers) * QUEUE_PER_WORKER
        done = 0

        def settle_some() -> None:
            nonlocal done
            for fut, path in window.take():
                self._settle(fut, path, window)
                done += 1
                if progress:
                    progress(done, self.stats.bytes)

        with executor(workers, "amlport-export") as pool:
            try:
                for path in sorted(blobs):
                    blob = blobs.pop(path)
                    if self.stats.stopped is not None:  # the source is down: start no other
                        self.stats.fail(path, NOT_ATTEMPTED, SKIPPED)
                        continue
                    if reuse(path, blob):  # unchanged: no worker
                        self.breaker.succeeded()
                        done += 1
                        if progress:
                            progress(done, self.stats.bytes)
                        continue
                    window.add(pool.submit(attempt, path, blob), path)
                    while len(window) >= limit:
                        settle_some()
                while window:
                    settle_some()
            except BaseException:  # Ctrl-C: start no other file, abandon the ones in flight
                self.abandon.set()
                window.cancel_all()
                raise

    def _settle(self, fut: Future[None], path: str, window: InFlight[None, str]) -> None:
        """Record one finished file; once the source is down, start no other."""
        if fut.cancelled():
            self.stats.fail(path, NOT_ATTEMPTED, SKIPPED)
            return
        try:
            fut.result()
        except AmlportError as exc:
            kind = INTEGRITY if isinstance(exc, IntegrityError) else FAILED
            self.stats.fail(path, exc.message, kind)
        if self.stats.stopped is not None and not self._cancelled:
            self._cancelled = True  # once: the rest are still queued, none is started
            window.cancel_all()

    def attempt(self, copy: Callable[[], None]) -> None:
        """Copy one file (a worker): counts consecutive source failures, and after
        ``OUTAGE_AFTER`` of them declares the source down, so no other file is tried."""
        self.breaker.check()
        try:
            copy()
        except AmlportError as exc:
            self.breaker.failed(exc)
            self.stats.stopped = self.breaker.stopped
            raise
        self.breaker.succeeded()


# glibc's malloc serves a request of its mmap threshold or more (128 KiB at first, then the
# size of the last such buffer freed) with fresh pages from the kernel, and gives memory freed
# above its trim threshold back at once. A large blob passes through buffers of 1-4 MiB
# (obstore's pieces, the secret scan's), so each one was mapped, zeroed page by page and
# unmapped again: about a third of a large-model backup's CPU (docs/design/0005, "Large
# blobs"). With these limits the freed buffers are kept and reused.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's largest (64-bit): a buffer below it comes from the heap
TRIM_THRESHOLD = 128 << 20  # freed memory kept for reuse before any is given back


@functools.cache
def reuse_freed_buffers() -> bool:
    """Tune glibc's malloc for large buffers (once per process); False elsewhere (macOS,
    Windows, musl), where nothing changes."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, ValueError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )


class _Abandoned(Exception):
    """The transfer was interrupted while this file was being copied (nobody settles it)."""


class Abandonable(io.RawIOBase):
    """A source stream that fails its next read once the transfer is abandoned (Ctrl-C): a
    multi-GB model in flight stops at its next chunk instead of holding the exit until it is
    stored. What it had staged is removed, as for any failed copy."""

    def __init__(self, raw: BinaryIO, abandon: threading.Event) -> None:
        super().__init__()
        self._raw = raw
        self._abandon = abandon

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._abandon.is_set():
            raise _Abandoned("the transfer was interrupted")
        return self._raw.read(size)

    def readinto(self, buffer: WriteableBuffer) -> int:
        if self._abandon.is_set():
            raise _Abandoned("the transfer was interrupted")
        return read_into(self._raw, memoryview(buffer).cast("B"))
