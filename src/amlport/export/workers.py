"""The per-file work of an export from a local copy, done ahead in worker processes.

A first backup of a local copy spends most of its transfer in Python per small file: the
read, the rewrite of what may bind to the workspace, the search of the bytes to store for
secrets, a digest. restic uses every core for that; one Python process uses one. So, for a
local source with enough files to pay the start-up, worker processes (``ProcessPoolExecutor``
over a forkserver: a fresh interpreter that imports this module once, never a fork of the
running export with its threads, memory and repository lock) run ``copy.prepare`` on chunks
of files ahead of the transfer, and hand back each file's finished bytes and rewrite record
(``copy.Prepared``). The main process alone stores them — through the repository, its pack
writer and its write guard — and records them, in path order, one file at a time as the
serial transfer does:

- at a file's turn, the same checks come first: the source is down (the file is not
  attempted), the index says it is stored (reused); only then is the worker's result taken;
- a file a worker could not prepare (a read failed, the bytes did not match the listing's
  MD5, a rewrite refused a location) is done again on this process at its turn, so its
  failure is found, counted and worded by the same code as today; a worker that died (the
  pool is broken) leaves every file not yet stored to this process the same way;
- a secret redaction could not remove is found in the worker by the one detector
  (``secrets.py``), and the main process withholds the file as it would have;
- Ctrl-C and SIGTERM are the main process's: workers ignore SIGINT; on an interruption no
  other chunk is started, the file being stored stops where it is, and the chunks in flight
  (at most a few dozen small files each) finish and are dropped.

What goes to a worker: files of the source (not ``--specs``) of at most ``READ_WHOLE``
bytes that the index does not hold. Larger files are streamed on this process as before.
The design and its measurements: docs/design/0007, "First-backup time (D, session 6)".
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import fields
from typing import Any

from amlport.errors import AmlportError, IntegrityError
from amlport.export.copy import READ_WHOLE, Prepared, prepare, read_whole
from amlport.export.plan import rewrites
from amlport.export.transfer import FAILED, INTEGRITY, NOT_ATTEMPTED, SKIPPED, Transfer
from amlport.processes import pid_alive
from amlport.progress import TransferProgress
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.secrets import find_secrets_in_bytes
from amlport.storage.base import BlobInfo, Source, SourceWrapper
from amlport.storage.local import LocalSource
from amlport.walk import cache, early
from amlport.walk.handlers import SPECS_CONTAINER
from amlport.walk.walker import ReadAhead

MIN_FILES = 1000  # files to prepare below which start-up costs more than the processes save
CHUNK_FILES = 32  # files per task: a task's hand-over costs as much as a small file's work
CHUNK_BYTES = 1 << 20  # or fewer, when they are large
CHUNKS_PER_WORKER = 3  # tasks queued per worker: the next is ready when one finishes
MAX_AHEAD = 4096  # files looked at ahead of the one being stored (reused ones included)
START_METHOD = "forkserver"

# Wrappers that read what the source they wrap reads: a chain of only these over a local
# copy may be read by the workers directly. (Named, not imported: backup imports export.)
_PASS_THROUGH = frozenset(
    {"amlport.storage.reuse.ReusingSource", "amlport.backup.recording.RecordingSource"}
)


def local_copy(source: Source) -> LocalSource | None:
    """The local copy ``source`` reads, when every wrapper on the way only passes reads on;
    None otherwise (a wrapper that changes reads — fault injection, a stand-in for remote
    storage that counts them — keeps every read on this process)."""
    while isinstance(source, SourceWrapper):
        kind = type(source)
        if f"{kind.__module__}.{kind.__qualname__}" not in _PASS_THROUGH:
            return None
        source = source.inner
    return source if type(source) is LocalSource else None


def portable_rules(rules: RewriteRules) -> dict[str, Any] | None:
    """``rules`` as plain values a worker rebuilds them from; None for rules that hold more
    than an export's identity (an import's maps, a job-output resolver)."""
    if (
        rules.target is not None
        or rules.datastore_map
        or rules.asset_renames
        or rules.job_output is not None
    ):
        return None
    identity = {
        f.name: dict(value) if isinstance(value, Mapping) else value
        for f in fields(rules.source)
        for value in (getattr(rules.source, f.name),)
    }
    return {"direction": rules.direction, "strict": rules.strict, "source": identity}


def _rules(portable: dict[str, Any]) -> RewriteRules:
    return RewriteRules(
        direction=portable["direction"],
        source=Identity(**portable["source"]),
        strict=portable["strict"],
    )


def eligible(blob: BlobInfo) -> bool:
    """Could a worker prepare this file (a small file of the source)?"""
    return blob.size <= READ_WHOLE and blob.container != SPECS_CONTAINER


def cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def processes_for(
    source: Source,
    rules: RewriteRules,
    workers: int,
    blobs: Mapping[str, BlobInfo],
    reusable: Callable[[str, BlobInfo], bool],
) -> int:
    """How many worker processes this transfer uses: none unless the source is a local
    copy, two or more CPUs (and ``--workers``) allow them, and at least ``MIN_FILES`` small
    files need storing (not the few of a re-backup)."""
    if local_copy(source) is None or portable_rules(rules) is None:
        return 0
    if START_METHOD not in multiprocessing.get_all_start_methods():
        return 0
    count = min(workers, cpus())
    if count < 2:
        return 0
    needed = 0
    for path, blob in blobs.items():
        if eligible(blob) and not reusable(path, blob):
            needed += 1
            if needed >= MIN_FILES:
                return count
    return 0


def warm_up(source: Source, files: int) -> None:
    """Start the fork server (a fresh interpreter importing this module) while the export
    plans, when the transfer will likely use workers: its imports then cost no wait."""
    if files < MIN_FILES or local_copy(source) is None or cpus() < 2:
        return
    if START_METHOD not in multiprocessing.get_all_start_methods():
        return
    context()  # the fork server imports this module as it starts
    from multiprocessing import forkserver

    forkserver.ensure_running()


def context() -> Any:
    """The workers' start method: a fork server that preloads this module (also the
    deep check's loader children, ``export/deep.py``)."""
    ctx = multiprocessing.get_context(START_METHOD)
    ctx.set_forkserver_preload([__name__])
    return ctx


@contextmanager
def pool(
    source: Source, rules: RewriteRules | None, processes: int
) -> Iterator[ProcessPoolExecutor]:
    """``processes`` workers that read ``source``'s local copy and rewrite with ``rules``
    (None: the walk's workers, which only read and scan)."""
    local = local_copy(source)
    portable = None if rules is None else portable_rules(rules)
    assert local is not None and (rules is None or portable is not None)
    copy = LocalSource(local.root, local.descriptor)  # without the folders it has seen
    executor = ProcessPoolExecutor(
        processes,
        mp_context=context(),
        initializer=_start,
        initargs=(copy, portable, os.getpid()),
    )
    try:
        yield executor
    except BaseException:
        executor.shutdown(wait=False, cancel_futures=True)
        raise
    executor.shutdown(wait=True)


# --- in a worker -----------------------------------------------------------------------------

_state: tuple[LocalSource, RewriteRules | None] | None = None


def _start(source: LocalSource, portable: dict[str, Any] | None, main: int) -> None:
    """A worker's start: Ctrl-C is the main process's to handle (it abandons the transfer),
    and the worker ends when the main process is gone (killed: it could not tell it to)."""
    global _state
    _state = (source, None if portable is None else _rules(portable))
    become_child(main)


def become_child(main: int) -> None:
    """In a child process of ``main`` (an export worker, a deep check's loader): Ctrl-C is
    the main process's to handle, and the child ends once ``main`` is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch, args=(main,), name="amlport-watch", daemon=True).start()


WATCH_EVERY = 1.0  # seconds between a worker's checks that the main process lives


def _watch(main: int) -> None:
    """End this worker once ``main`` has ended. A worker waits for its next task on a pipe
    it holds both ends of, so a main process killed outright (SIGKILL, the OOM killer)
    would otherwise leave it, and the fork server, waiting for ever."""
    while pid_alive(main):
        time.sleep(WATCH_EVERY)
    _release_semaphores()
    os._exit(0)


def _release_semaphores() -> None:
    """The main process was killed: unlink the named semaphores of the pool's queues, which
    it made and would have unlinked at its end, and tell the resource tracker. Each name is
    unlinked by one worker only (the first; the others' unlink fails), so the tracker hears
    of it once; it used to unlink them itself at its end, printing a leaked-semaphore
    warning on the user's terminal after the kill (F, session 7)."""
    import _multiprocessing
    import gc
    from multiprocessing import resource_tracker, synchronize

    if getattr(resource_tracker._resource_tracker, "_fd", None) is None:
        return  # no tracker known here: asking would start one
    for obj in gc.get_objects():
        name = getattr(getattr(obj, "_semlock", None), "name", None)
        if not isinstance(obj, synchronize.SemLock) or not name:
            continue
        try:
            _multiprocessing.sem_unlink(name)
        except OSError:
            continue  # another worker did
        resource_tracker.unregister(name, "semaphore")


def prepare_chunk(jobs: list[tuple[str, BlobInfo]]) -> list[Prepared | None]:
    """Read and prepare each file of a chunk; None for a file that failed (the main process
    does it again and reports what it finds)."""
    assert _state is not None, "not a worker started by pool()"
    source, rules = _state
    assert rules is not None, "a walk's worker has no rules"
    out: list[Prepared | None] = []
    for path, blob in jobs:
        try:
            data = read_whole(source, None, blob)
            out.append(prepare(data, rules, path, blob, rewrite=rewrites(blob)))
        except Exception:
            out.append(None)
    return out


# A file of the walk as sent to a worker, and what comes back: plain tuples, which cost a
# tenth of a dataclass's pickling (twice per file, on the main process's threads).
WalkJob = tuple[str, str, int, "str | None"]  # container, name, size, etag
# data, found, packed, parsed (``walk/early.py``)
WalkDone = tuple[bytes, "dict[str, int] | None", "bytes | None", "early.Early | None"]


def read_chunk(jobs: list[WalkJob], max_bytes: int, pack: bool) -> list[WalkDone | None]:
    """The walk's reads of a chunk of files: each file's bytes (at most ``max_bytes``), the
    byte scan of them when they are whole, the read cache's packed bytes when ``pack``, and
    the record parsed of them (``walk/early.py``); None for a file that failed (the main
    process reads it again and reports what it finds)."""
    assert _state is not None, "not a worker started by pool()"
    source = _state[0]
    out: list[WalkDone | None] = []
    for container, name, size, etag in jobs:
        try:
            data = source.read_bytes(container, name, max_bytes=max_bytes)
            whole = len(data) < max_bytes  # above the parse limit: clipped and streamed
            found = dict(find_secrets_in_bytes(data)) if whole else None
            parsed = early.parse(container, name, data) if whole else None
            blob = BlobInfo(container=container, name=name, size=size, etag=etag)
            out.append((data, found, cache.packed(blob, data) if pack else None, parsed))
        except Exception:
            out.append(None)
    return out


# --- in the main process ---------------------------------------------------------------------


class _Chunk:
    """Files handed to one worker task, and what it gave back (taken one by one)."""

    __slots__ = ("future", "jobs", "left", "results", "size")

    def __init__(self) -> None:
        self.jobs: list[tuple[str, BlobInfo]] = []
        self.size = 0
        self.future: Future[list[Prepared | None]] | None = None
        self.results: list[Prepared | None] | None = None
        self.left = 0  # files not yet taken or passed over

    def add(self, path: str, blob: BlobInfo) -> int:
        self.jobs.append((path, blob))
        self.size += blob.size
        self.left += 1
        return len(self.jobs) - 1

    @property
    def full(self) -> bool:
        return len(self.jobs) >= CHUNK_FILES or self.size >= CHUNK_BYTES


class Ahead:
    """The transfer of ``Transfer.run`` with the files' preparation done ahead in
    ``executor``'s processes: the same per-file decisions, in the same order."""

    # What a worker runs on a chunk (a module-level function: it is sent by name).
    task: Callable[[list[tuple[str, BlobInfo]]], list[Prepared | None]] = staticmethod(
        prepare_chunk
    )

    def __init__(self, transfer: Transfer, executor: ProcessPoolExecutor, processes: int) -> None:
        self.transfer = transfer
        self.executor = executor
        self.limit = processes * CHUNKS_PER_WORKER
        self.broken = False  # a worker died: no other chunk is handed out
        self.in_flight = 0  # chunks handed out and not yet used up
        self._open: _Chunk | None = None
        self._submitted: list[_Chunk] = []

    def run(
        self,
        blobs: dict[str, BlobInfo],
        reuse: Callable[[str, BlobInfo], bool],
        reusable: Callable[[str, BlobInfo], bool],
        copy: Callable[[str, BlobInfo], None],
        commit: Callable[[str, BlobInfo, Prepared], None],
        *,
        progress: TransferProgress | None,
    ) -> None:
        """As ``Transfer.run``: each blob (in path order, popped from ``blobs``) reused, or
        stored from what a worker prepared (``commit``), or copied here (``copy``), each
        under the transfer's outage breaker (``Transfer.attempt``)."""
        stats = self.transfer.stats
        paths = sorted(blobs)
        pending: deque[tuple[str, BlobInfo, _Chunk | None, int]] = deque()
        ahead = 0
        done = 0

        def fill() -> None:
            nonlocal ahead
            while ahead < len(paths) and self.in_flight < self.limit and len(pending) < MAX_AHEAD:
                path = paths[ahead]
                ahead += 1
                blob = blobs.pop(path)
                chunk, i = None, 0
                if (
                    not self.broken
                    and stats.stopped is None
                    and eligible(blob)
                    and not reusable(path, blob)
                ):
                    chunk = self._open = self._open or _Chunk()
                    i = chunk.add(path, blob)
                    if chunk.full:
                        self._submit(chunk)
                pending.append((path, blob, chunk, i))
            if ahead == len(paths) and self._open is not None:
                self._submit(self._open)

        try:
            fill()
            while pending:
                path, blob, chunk, i = pending.popleft()
                if chunk is not None and chunk.future is None and chunk.results is None:
                    self._submit(chunk)  # its files' turn came before it filled
                prepared = self._take(chunk, i) if chunk is not None else None
                fill()
                if stats.stopped is not None:  # the source is down: start no other
                    stats.fail(path, NOT_ATTEMPTED, SKIPPED)
                elif reuse(path, blob):  # unchanged: as Transfer.run
                    self.transfer.breaker.succeeded()
                elif prepared is not None:
                    self._settle(path, functools.partial(commit, path, blob, prepared))
                else:
                    self._settle(path, functools.partial(copy, path, blob))
                done += 1
                if progress:
                    progress(done, stats.bytes)
        except BaseException:  # Ctrl-C: start no other file, drop the chunks in flight
            self.transfer.abandon.set()
            for chunk in self._submitted:
                if chunk.future is not None:
                    chunk.future.cancel()
            raise

    def _settle(self, path: str, copy: Callable[[], None]) -> None:
        """Copy or store one file under the outage breaker; a failure is recorded."""
        try:
            self.transfer.attempt(copy)
        except AmlportError as exc:
            kind = INTEGRITY if isinstance(exc, IntegrityError) else FAILED
            self.transfer.stats.fail(path, exc.message, kind)

    def _submit(self, chunk: _Chunk) -> None:
        if self._open is chunk:
            self._open = None
        self.in_flight += 1
        if self.broken:
            chunk.results = [None] * len(chunk.jobs)
            return
        try:
            chunk.future = self.executor.submit(self.task, chunk.jobs)
        except BrokenProcessPool:
            self.broken = True
            chunk.results = [None] * len(chunk.jobs)
            return
        self._submitted.append(chunk)

    def _take(self, chunk: _Chunk, i: int) -> Prepared | None:
        """The worker's result for the chunk's ``i``-th file (None: do it here)."""
        if chunk.results is None:
            assert chunk.future is not None
            try:
                chunk.results = chunk.future.result()
            except BrokenProcessPool:  # a worker died: the rest is done here
                self.broken = True
                chunk.results = [None] * len(chunk.jobs)
            except Exception:  # the task itself failed (it catches each file's failure)
                chunk.results = [None] * len(chunk.jobs)
            self._submitted.remove(chunk)
            chunk.jobs = []  # the listing facts stay with the pending entries
        prepared = chunk.results[i]
        chunk.results[i] = None  # its bytes go once stored
        chunk.left -= 1
        if chunk.left == 0:
            self.in_flight -= 1
        return prepared


class WalkReads:
    """The walk's reads of a local copy (``walker.ReadsAhead``), done by worker processes
    when there are enough of them: each file read, scanned for secrets and packed for the
    read cache in a worker, handed back in order. Files the workers do not read — empty or
    larger than ``READ_WHOLE``, failed, or all after a worker died — are the walk's own."""

    # What a worker runs on a chunk (a module-level function: it is sent by name).
    task: Callable[[list[WalkJob], int, bool], list[WalkDone | None]] = staticmethod(read_chunk)

    def __init__(self, source: Source, workers: int) -> None:
        self.source = source
        self.processes = min(workers, cpus())

    @classmethod
    def of(cls, source: Source, workers: int, *, scan_secrets: bool) -> WalkReads | None:
        """Worker processes for the walk of ``source``: a plain local copy (``local_copy``),
        the secret scan on (it is the work worth moving), two or more CPUs and workers."""
        if not scan_secrets or local_copy(source) is None or min(workers, cpus()) < 2:
            return None
        if START_METHOD not in multiprocessing.get_all_start_methods():
            return None
        return cls(source, workers)

    def warm_up(self, listed: int) -> None:
        """Start the fork server while the walk classifies the listing (its imports then
        cost no wait), when the listing is large enough for workers to be likely."""
        if listed >= MIN_FILES:
            context()
            from multiprocessing import forkserver

            forkserver.ensure_running()

    def __call__(
        self, blobs: list[BlobInfo], max_bytes: int, pack: bool
    ) -> Generator[tuple[BlobInfo, ReadAhead | None], None, None] | None:
        if sum(1 for b in blobs if _reads_ahead(b)) < MIN_FILES:
            return None
        return self._reads(blobs, max_bytes, pack)

    def _reads(
        self, blobs: list[BlobInfo], max_bytes: int, pack: bool
    ) -> Generator[tuple[BlobInfo, ReadAhead | None], None, None]:
        limit = self.processes * CHUNKS_PER_WORKER
        chunks: deque[tuple[list[BlobInfo], Future[list[WalkDone | None]] | None]] = deque()
        planned = _chunked(blobs)
        broken = False

        with pool(self.source, None, self.processes) as executor:

            def fill() -> None:
                nonlocal broken
                while len(chunks) < limit:
                    jobs, ahead = next(planned, ([], False))
                    if not jobs:
                        return
                    future = None
                    if ahead and not broken:
                        sent = [(b.container, b.name, b.size, b.etag) for b in jobs]
                        try:
                            future = executor.submit(self.task, sent, max_bytes, pack)
                        except BrokenProcessPool:
                            broken = True
                    chunks.append((jobs, future))

            fill()
            while chunks:
                jobs, future = chunks.popleft()
                results: list[WalkDone | None] = [None] * len(jobs)
                if future is not None:
                    try:
                        results = future.result()
                    except BrokenProcessPool:  # a worker died: the rest is read here
                        broken = True
                    except Exception:  # the task itself failed (it catches each file's)
                        pass
                if len(results) != len(jobs):
                    results = [None] * len(jobs)
                fill()
                for blob, done in zip(jobs, results, strict=True):
                    if done is None:
                        yield blob, None
                        continue
                    data, found, packed, parsed = done
                    counted = None if found is None else Counter(found)
                    yield blob, ReadAhead(data, counted, packed, parsed)


def _reads_ahead(blob: BlobInfo) -> bool:
    """Does a worker read this file for the walk (a small one, not empty)?"""
    return 0 < blob.size <= READ_WHOLE


def _chunked(blobs: list[BlobInfo]) -> Iterator[tuple[list[BlobInfo], bool]]:
    """``blobs`` in order, in chunks, each with whether the workers read it (a run of files
    they do not read is a chunk of its own)."""
    jobs: list[BlobInfo] = []
    size = 0
    ahead = True
    for blob in blobs:
        this = _reads_ahead(blob)
        if jobs and (this != ahead or len(jobs) >= CHUNK_FILES or size >= CHUNK_BYTES):
            yield jobs, ahead
            jobs, size = [], 0
        jobs.append(blob)
        size += blob.size
        ahead = this
    if jobs:
        yield jobs, ahead
