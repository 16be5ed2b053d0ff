"""Put exported files into the repository: rewritten where they bind to the workspace, copied
otherwise, each at most once, in parallel, and not at all when the listing says the object is
already stored (the incremental index: etag + size + MD5 decide, the MD5 is checked on read).

Exporters only *plan* files (``add_blob``/``add_folder``/``add_generated`` do no I/O);
``transfer`` does all the reading and writing afterwards, so ``--dry-run`` is exact and cheap.

Memory is bounded: text files above ``STREAM_ABOVE`` (YAML and MLmodel above
``MAX_REWRITE_BYTES``) are rewritten as a stream (``LogStream``), never held whole. After
``OUTAGE_AFTER`` consecutive source failures (unreachable, throttled past its retries, access
lost) the transfer stops: the files not attempted fail with that reason, instead of each
spending a retry cycle. Ctrl-C cancels the files not yet started and abandons the ones in
flight at their next read (nothing half-copied is stored).
"""

from __future__ import annotations

import hashlib
import io
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from amlport import __version__
from amlport.bundle import Repository
from amlport.bundle.index import SourceIndex
from amlport.errors import AmlportError, IntegrityError
from amlport.model.manifest import FileEntry, Manifest, RedactionRecord, RewriteRecord
from amlport.progress import TransferProgress as ProgressFn
from amlport.rewriters.files import format_of, needs_rewrite, rewrite_file
from amlport.rewriters.rules import RewriteResult, RewriteRules
from amlport.rewriters.text_log import BinaryContent, LogStream
from amlport.secrets import (
    ByteScanner,
    describe,
    find_secrets,
    find_secrets_in_bytes,
    has_secret,
    may_hold_secret,
    unredacted,
)
from amlport.storage import outage
from amlport.storage.base import BlobInfo, InFlight, Source
from amlport.storage.reuse import ReusingSource
from amlport.streams import Tee
from amlport.walk.handlers import SPECS_CONTAINER
from amlport.walk.listing import Listing

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

STREAM_ABOVE = 8 * 1024 * 1024  # larger text files are rewritten as a stream
# Binary files up to this size are read whole and stored in one write; larger ones are
# streamed (bounded memory). For a small file, a stream's reader, 1 MiB buffer and staging
# file cost more CPU than the copy itself (docs/design/0003-scale.md, session 7).
READ_WHOLE = 1024 * 1024
MAX_REWRITE_BYTES = 64 * 1024 * 1024  # YAML and MLmodel up to this size are parsed whole
QUEUE_PER_WORKER = 4  # files queued per worker (bounded: memory does not grow with the count)
# The outage policy is storage/outage.py's (promote uses the same); names kept for callers.
OUTAGE_AFTER = outage.OUTAGE_AFTER
NOT_ATTEMPTED = outage.NOT_ATTEMPTED


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
    failures: list[str] = field(default_factory=list)


class BundleWriter:
    def __init__(
        self, source: Source, listing: Listing, rules: RewriteRules, *, specs: Path | None = None
    ) -> None:
        self.source = source
        self.listing = listing
        self.specs = specs  # --specs DIR: files of the pseudo-container "specs"
        if specs is not None:
            for path in sorted(p for p in specs.rglob("*") if p.is_file() and not p.is_symlink()):
                rel = path.relative_to(specs).as_posix()
                listing.add(BlobInfo(SPECS_CONTAINER, rel, path.stat().st_size))
            listing.freeze()
        self.rules = rules
        self.blobs: dict[str, BlobInfo] = {}
        self.generated: dict[str, bytes] = {}
        self.entries: dict[str, FileEntry] = {}
        self.rewrites: list[RewriteRecord] = []
        self.redactions: list[RedactionRecord] = []
        self.warnings: list[str] = []
        # Files not stored because they hold a secret that could not be redacted: the export
        # engine leaves them out of the assets, as it does failed files.
        self.withheld: set[str] = set()
        self.stats = TransferStats()
        self._lock = threading.Lock()
        self._breaker = outage.OutageBreaker()  # consecutive source failures
        self._cancelled = False
        self._abandon = threading.Event()  # set when the transfer is interrupted
        # One string per digest for the entries and index rows the transfer makes: equal
        # bytes recur (half the blobs of a scaled workspace share a digest with another).
        self._digests: dict[str, str] = {}
        # Objects this run stored (or found stored): ``new_objects``/``new_bytes`` count each
        # once, so they equal what the repository gained (two equal blobs are one object).
        self._stored: set[str] = set()

    # -- planning (no I/O) -------------------------------------------------------------
    def bundle_path(self, container: str, name: str) -> str:
        if container == SPECS_CONTAINER:
            return f"specs/{name}"
        datastore = self.source.descriptor.datastore_of(container) or container
        return f"files/{datastore}/{name}"

    def add_blob(self, container: str, name: str) -> str:
        """Plan one blob; its bundle path. A name a manifest cannot carry is refused
        (``UnstorableName``): one holding a credential (``SecretInName``: the name would carry
        it into the manifest), or a local file's name that is not Unicode."""
        self._refuse_unstorable_name(container, name)
        path = self.bundle_path(container, name)
        if self._planned(path, container, name) is None:
            blob = self.listing.get(container, name)
            if blob is None:
                raise AmlportError(f"{container}/{name} is not in the source listing")
            self.blobs[path] = blob
        return path

    def is_planned(self, container: str, name: str) -> bool:
        return self._planned(self.bundle_path(container, name), container, name) is not None

    def _planned(self, path: str, container: str, name: str) -> BlobInfo | None:
        """This blob, if it is planned at ``path``. (No (container, name) → path map: the
        path is a function of the two, and a map of 100k+ key tuples cost 10 MB while
        planning.)"""
        planned = self.blobs.get(path)
        if planned is None or planned.name != name or planned.container != container:
            return None
        return planned

    def add_folder(self, container: str, prefix: str) -> list[str]:
        """Plan every blob under ``prefix``, except those whose name holds a credential (each
        is a warning: the rest of the folder is exported)."""
        blobs = self.listing.under(container, prefix)
        found = (self.add_blob_or_warn(container, b.name) for b in blobs)
        return [path for path in found if path is not None]

    def add_blob_or_warn(self, container: str, name: str) -> str | None:
        """``add_blob``, but a name a manifest cannot carry is a warning (None)."""
        try:
            return self.add_blob(container, name)
        except UnstorableName as exc:
            self.warnings.append(f"not exported: {exc.message}")
            return None

    @staticmethod
    def _refuse_unstorable_name(container: str, name: str) -> None:
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            # A local file named with bytes that are not UTF-8 (decoded by the file system
            # layer with surrogate escapes): no blob can have it, no manifest can hold it.
            shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            raise UnstorableName(
                f"{container}/{shown}: the file's name is not valid UTF-8, so it cannot be a "
                "blob name nor be recorded in a snapshot",
                hint="rename the file (blob names are Unicode text)",
            ) from None
        if may_hold_secret(name) and (found := find_secrets(name)):
            raise SecretInName(  # the message is redacted by AmlportError
                f"{container}/{name}: the blob's name holds what looks like a secret "
                f"({describe(found)})",
                hint="rotate the credential and rename the blob",
            )

    def add_generated(self, bundle_path: str, data: bytes) -> str:
        if has_secret(data.decode("utf-8", "replace")):  # generated from names and paths only
            raise AmlportError(f"refusing to write {bundle_path}: it would contain a secret")
        self.generated[bundle_path] = data
        return bundle_path

    def release_listing(self) -> None:
        """Planning is over: drop the walk's listing (the planned blobs keep their facts)."""
        self.listing = Listing()

    def drop_unchanged_reads(self, index: SourceIndex) -> None:
        """The walk's reads of blobs the index already holds will not be read again: let
        them go before the transfer (an unchanged re-backup would otherwise keep every
        read until it ends). A row whose object is gone only costs a fresh read."""
        if not isinstance(self.source, ReusingSource):
            return
        for blob in self.blobs.values():
            space = _rewrite_space(blob.container) if _rewrites(blob) else blob.container
            if index.knows(space, blob.name, blob.etag, blob.size, blob.content_md5):
                self.source.discard(blob.container, blob.name)

    def listed(self, container: str, name: str) -> tuple[str | None, ...]:
        """The planned blob's name, etag and MD5 for an index row of (container, name), or
        of its rewritten form: the index shares these strings instead of holding copies."""
        if container.startswith(_REWRITE_SPACE):
            container = container.rsplit("/", 1)[-1]
        blob = self._planned(self.bundle_path(container, name), container, name)
        return () if blob is None else (blob.name, blob.etag, blob.content_md5)

    def planned_paths(self) -> dict[str, str]:
        """Every planned bundle path, as ``{path: path}`` (to share equal strings)."""
        return {p: p for p in (*self.blobs, *self.generated)}

    @property
    def planned_bytes(self) -> int:
        return sum(b.size for b in self.blobs.values()) + sum(map(len, self.generated.values()))

    # -- transfer ------------------------------------------------------------------------
    def transfer(
        self,
        repo: Repository,
        index: SourceIndex,
        previous: Manifest | None,
        *,
        workers: int = 8,
        progress: ProgressFn | None = None,
    ) -> TransferStats:
        """Store every planned file; the plan is consumed as it goes (each file's listing
        facts and generated bytes are let go once it is handed out: memory at 100k blobs)."""
        carried = _carry_over(previous)
        for path in sorted(self.generated):
            self._store_generated(repo, path, self.generated.pop(path))
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

        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amlport-export") as pool:
            try:
                for path in sorted(self.blobs):
                    blob = self.blobs.pop(path)
                    if self.stats.stopped is not None:  # the source is down: start no other
                        self.stats.failures.append(f"{path}: {NOT_ATTEMPTED}")
                        continue
                    if self._reuse(index, carried, path, blob):  # unchanged: no worker
                        self._breaker.succeeded()
                        done += 1
                        if progress:
                            progress(done, self.stats.bytes)
                        continue
                    window.add(pool.submit(self._attempt, repo, index, carried, path, blob), path)
                    while len(window) >= limit:
                        settle_some()
                while window:
                    settle_some()
            except BaseException:  # Ctrl-C: start no other file, abandon the ones in flight
                self._abandon.set()
                window.cancel_all()
                raise
        self.blobs = {}  # emptied, but a dict keeps its table (4 MB at 100k blobs)
        self._digests = {}
        self._stored = set()
        return self.stats

    def _settle(self, fut: Future[None], path: str, window: InFlight[None, str]) -> None:
        """Record one finished file; once the source is down, start no other."""
        if fut.cancelled():
            self.stats.failures.append(f"{path}: {NOT_ATTEMPTED}")
            return
        try:
            fut.result()
        except AmlportError as exc:
            self.stats.failures.append(f"{path}: {exc.message}")
            if isinstance(exc, IntegrityError):
                self.stats.integrity_failures += 1
        if self.stats.stopped is not None and not self._cancelled:
            self._cancelled = True  # once: the rest are still queued, none is started
            window.cancel_all()

    def _attempt(
        self, repo: Repository, index: SourceIndex, carried: _Carried, path: str, blob: BlobInfo
    ) -> None:
        """Copy one file (a worker): counts consecutive source failures, and after
        ``OUTAGE_AFTER`` of them declares the source down, so no other file is tried."""
        self._breaker.check()
        try:
            self._copy(repo, index, carried, path, blob)
        except AmlportError as exc:
            self._breaker.failed(exc)
            self.stats.stopped = self._breaker.stopped
            raise
        self._breaker.succeeded()

    def _store_generated(self, repo: Repository, path: str, data: bytes) -> None:
        digest = self._put(repo, data)
        self.entries[path] = FileEntry(path=path, digest=digest, size=len(data))

    def _one(self, digest: str) -> str:
        """The digest's one string object (``setdefault`` is atomic: workers share it)."""
        return self._digests.setdefault(digest, digest)

    def _put(self, repo: Repository, data: bytes) -> str:
        digest, new = repo.add_bytes(data)  # one check and one hash per file
        digest = self._one(digest)
        with self._lock:
            self.stats.files += 1
            self.stats.bytes += len(data)
            self._count_stored(digest, len(data), new)
        return digest

    def _count_stored(self, digest: str, size: int, new: bool | None) -> None:
        """Count an object the repository gained (call under ``_lock``). ``new``: whether the
        store says this call wrote it; None for a stream, whose store does not say: it counts
        unless this run already stored the same bytes (a blob stored by an earlier run under
        another name is then counted again: only a stream of it, never a small file)."""
        if digest in self._stored:
            return
        self._stored.add(digest)
        if new is not False:
            self.stats.new_objects += 1
            self.stats.new_bytes += size

    def _reuse(self, index: SourceIndex, carried: _Carried, path: str, blob: BlobInfo) -> bool:
        """Record ``path`` from the index and the previous snapshot when its blob did not
        change (etag and size: a local file's mtime and size, so it is not read), on the
        calling thread: an unchanged re-backup hands no file to a worker."""
        if _rewrites(blob):
            return self._reuse_rewritten(index, carried, path, blob)
        return self._reuse_raw(index, carried, path, blob, _original(path, blob))

    def _reuse_raw(
        self,
        index: SourceIndex,
        carried: _Carried,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
    ) -> bool:
        hit = index.lookup(blob.container, blob.name, blob.etag, blob.size, blob.content_md5)
        if hit is None:
            return False
        with self._lock:
            self.stats.reused += 1
            self.stats.files += 1
            self.stats.bytes += blob.size
            self.warnings += carried.warnings.get(path, [])  # a secret found last time
        entry = FileEntry(path=path, digest=hit, size=blob.size, original=original)
        # The previous snapshot's equal entry, so that both manifests share it (memory).
        self.entries[path] = carried.same(entry)
        return True

    def _reuse_rewritten(
        self, index: SourceIndex, carried: _Carried, path: str, blob: BlobInfo
    ) -> bool:
        space = _rewrite_space(blob.container)
        hit = index.lookup(space, blob.name, blob.etag, blob.size, blob.content_md5)
        previous = carried.entries.get(path)
        if hit is None or previous is None or previous.digest != hit:
            return False
        with self._lock:
            self.stats.reused += 1
            self.stats.files += 1
            self.stats.bytes += previous.size
            self.entries[path] = previous
            self.rewrites += carried.rewrites.get(path, [])
            self.redactions += carried.redactions.get(path, [])
            self.warnings += carried.warnings.get(path, [])
        return True

    def _copy(
        self, repo: Repository, index: SourceIndex, carried: _Carried, path: str, blob: BlobInfo
    ) -> None:
        original = _original(path, blob)
        try:
            if _rewrites(blob):
                self._rewrite(repo, index, carried, path, blob, original)
            else:
                self._raw(repo, index, carried, path, blob, original)
        except _Withheld as exc:
            with self._lock:
                self.withheld.add(path)
                self.warnings.append(
                    f"not exported: {path}: {unredacted(exc.found)}; rotate the credential, "
                    "then remove it from the file"
                )

    def _raw(
        self,
        repo: Repository,
        index: SourceIndex,
        carried: _Carried,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
    ) -> None:
        if self._reuse_raw(index, carried, path, blob, original):
            return
        new: bool | None = None  # a stream's store does not say whether it was new
        if blob.size <= READ_WHOLE:  # one read and one write: no stream, no staging file
            data = self._read(blob)
            _withhold_if_secret(find_secrets_in_bytes(data))
            (digest, new), size = repo.add_bytes(data), len(data)
            del data
        else:
            scanner = ByteScanner()
            with self._open(blob) as stream:
                digest, size = repo.put_stream(  # raises _Withheld at the end: nothing stored
                    cast(BinaryIO, Tee(stream, _scanning(scanner))),
                    expected_md5=_hex_md5(blob.content_md5),
                )
        digest = self._one(digest)
        index.record(blob.container, blob.name, blob.etag, blob.size, blob.content_md5, digest)
        with self._lock:  # an index miss: the bytes were read and stored (dedupe aside)
            self.stats.files += 1
            self.stats.bytes += size
            self.stats.read_bytes += size
            self._count_stored(digest, size, new)
        self.entries[path] = FileEntry(path=path, digest=digest, size=size, original=original)

    @contextmanager
    def _open(self, blob: BlobInfo) -> Iterator[BinaryIO]:
        """A stream of the blob that stops at its next read once the transfer is abandoned."""
        with self.source.open_stream(blob.container, blob.name) as raw:
            yield cast(BinaryIO, _Abandonable(raw, self._abandon))

    def _read(self, blob: BlobInfo) -> bytes:
        """The whole blob, checked against the listing's content-MD5."""
        if blob.container == SPECS_CONTAINER and self.specs is not None:
            data = (self.specs / blob.name).read_bytes()
        else:
            data = self.source.read_bytes(blob.container, blob.name)
        _check_md5(blob, data)
        return data

    def _rewrite(
        self,
        repo: Repository,
        index: SourceIndex,
        carried: _Carried,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
    ) -> None:
        if self._reuse_rewritten(index, carried, path, blob):
            return
        space = _rewrite_space(blob.container)
        if blob.container != SPECS_CONTAINER and not _in_memory(blob.name, blob.size):
            try:
                done = self._rewrite_stream(repo, path, blob)
            except BinaryContent:  # a NUL byte: binary content is never altered
                self._raw(repo, index, carried, path, blob, original)
                return
        else:
            data = self._read(blob)
            result = rewrite_file(blob.name, data, self.rules, bundle_path=path)
            _withhold_if_secret(find_secrets_in_bytes(result.data))  # what redaction could not
            done = _Rewritten(self._put(repo, result.data), len(result.data), result)
            done.source_digest, done.read = self._one(_digest(data)), len(data)
        index.record(space, blob.name, blob.etag, blob.size, blob.content_md5, done.digest)
        result = done.result
        changed = bool(result.changes or result.redactions)
        with self._lock:
            self.stats.read_bytes += done.read
            self.stats.rewritten += 1 if changed else 0
            self.entries[path] = FileEntry(
                path=path,
                digest=done.digest,
                size=done.size,
                original=original,
                rewritten=changed,
                original_digest=done.source_digest if changed else None,
            )
            self.rewrites += [
                RewriteRecord(
                    file=path, location=c.location, before=c.before, after=c.after, rule=c.rule
                )
                for c in result.changes
            ]
            self.redactions += [
                RedactionRecord(file=path, kind=k, count=n)
                for k, n in sorted(result.redactions.items())
            ]
            self.warnings += result.warnings

    def _rewrite_stream(self, repo: Repository, path: str, blob: BlobInfo) -> _Rewritten:
        """Rewrite a large text file chunk by chunk: memory stays at a few MiB."""
        fmt = format_of(blob.name, b"")
        rewriter = LogStream(
            path, self.rules, uris=fmt != "other", binary_check=fmt in ("other", "pointer")
        )
        scanner = ByteScanner()
        with self._open(blob) as raw:  # raises _Withheld at the end: nothing stored
            digest, size = repo.put_stream(
                cast(BinaryIO, Tee(rewriter.reader(raw), _scanning(scanner)))
            )
        if blob.content_md5 and rewriter.md5.hexdigest() != blob.content_md5.lower():
            raise IntegrityError(
                f"{blob.container}/{blob.name}: content MD5 does not match the listing",
                hint="the blob changed or was corrupted in transit; run the export again",
            )
        result = rewriter.result()
        if fmt in ("yaml", "mlmodel"):
            result.warnings.append(
                f"{path}: {blob.size:,} bytes is too large to parse as {fmt}; "
                "its URIs and secrets were rewritten as text"
            )
        with self._lock:
            self.stats.files += 1
            self.stats.bytes += size
            self._count_stored(self._one(digest), size, None)
            self.stats.streamed += 1
        source_digest = self._one("sha256:" + rewriter.sha256.hexdigest())
        return _Rewritten(self._one(digest), size, result, source_digest, rewriter.read)


class UnstorableName(AmlportError):
    """A blob's name cannot be carried into a manifest: the blob is not exported."""


class SecretInName(UnstorableName):
    """A blob's name holds a credential: the blob is not exported."""


class _Withheld(Exception):
    """A file holds a secret that could not be redacted: it is not stored."""

    def __init__(self, found: Counter[str]) -> None:
        super().__init__(describe(found))
        self.found = found


def _withhold_if_secret(found: Counter[str]) -> None:
    if found:
        raise _Withheld(found)


def _scanning(scanner: ByteScanner) -> Callable[[bytes], None]:
    """A ``Tee`` sink: every byte read goes to the scanner; at the end (an empty read) it
    raises ``_Withheld`` if the bytes hold a secret, before the object is committed."""

    def sink(data: bytes) -> None:
        if data:
            scanner.feed(data)
        else:
            _withhold_if_secret(scanner.close())

    return sink


class _Abandoned(Exception):
    """The transfer was interrupted while this file was being copied (nobody settles it)."""


class _Abandonable(io.RawIOBase):
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
        out = memoryview(buffer).cast("B")
        data = self.read(len(out))
        out[: len(data)] = data
        return len(data)


@dataclass
class _Rewritten:
    """One rewritten file: the object stored, and what the rewrite did."""

    digest: str
    size: int
    result: RewriteResult
    source_digest: str = ""
    read: int = 0


def _original(path: str, blob: BlobInfo) -> dict[str, str]:
    """Where a file came from, as its manifest entry records it."""
    if blob.container == SPECS_CONTAINER:
        return {"specs": blob.name}
    return {
        "datastore": sys.intern(path.split("/")[1]),
        "container": blob.container,
        "path": blob.name,
    }


def _rewrites(blob: BlobInfo) -> bool:
    """Is this blob stored rewritten (it may bind to storage, or is a spec file)?"""
    return blob.container == SPECS_CONTAINER or needs_rewrite(blob.name, blob.size)


_REWRITE_SPACE = "rewritten/"


def _rewrite_space(container: str) -> str:
    """The index's namespace for a container's rewritten forms (per amlport version: a
    new version may rewrite differently)."""
    return f"{_REWRITE_SPACE}{__version__}/{container}"


def _in_memory(name: str, size: int) -> bool:
    """Rewrite this file from bytes in memory (True) or as a stream (False)?"""
    structured = format_of(name, b"") in ("yaml", "mlmodel")
    return size <= (MAX_REWRITE_BYTES if structured else STREAM_ABOVE)


@dataclass
class _Carried:
    entries: dict[str, FileEntry]
    rewrites: dict[str, list[RewriteRecord]]
    redactions: dict[str, list[RedactionRecord]]
    warnings: dict[str, list[str]]  # the rewriter's warnings, by the file they name

    def same(self, entry: FileEntry) -> FileEntry:
        """The previous snapshot's entry for this path when it is equal, else ``entry``."""
        previous = self.entries.get(entry.path)
        return previous if previous == entry else entry


def _carry_over(previous: Manifest | None) -> _Carried:
    """What the previous snapshot recorded per file, reused when a file did not change."""
    carried = _Carried({}, {}, {}, {})
    if previous is None:
        return carried
    for entry in previous.files:
        carried.entries[entry.path] = entry
    for rw in previous.rewrites:
        carried.rewrites.setdefault(rw.file, []).append(rw)
    for rd in previous.redactions:
        carried.redactions.setdefault(rd.file, []).append(rd)
    for warning in previous.warnings:
        path = _warned_file(warning, carried.entries)
        if path is not None:
            carried.warnings.setdefault(path, []).append(warning)
    return carried


def _warned_file(warning: str, files: dict[str, FileEntry]) -> str | None:
    """The snapshot file a rewriter warning names (``<path>[ <where>][ (and n more)]: …``),
    or None for other warnings (``not exported: …``, ``skipped …``). A path may hold
    spaces and colons, so each cut before a space or colon is tried, longest first (of
    ``a`` and ``a b.yaml``, a warning about the second names the second)."""
    for cut in range(len(warning) - 1, 0, -1):
        if warning[cut] in " :" and warning[:cut] in files:
            return warning[:cut]
    return None


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _hex_md5(md5: str | None) -> str | None:
    return md5.lower() if md5 else None


def _check_md5(blob: BlobInfo, data: bytes) -> None:
    if not blob.md5_matches(data):
        raise IntegrityError(
            f"{blob.container}/{blob.name}: content MD5 does not match the listing",
            hint="the blob changed or was corrupted in transit; run the export again",
        )
