"""The per-file copy of an export: each planned file rewritten where it binds to the
workspace, copied otherwise, and not at all when the incremental index says the object is
already stored (etag + size + MD5 decide, the MD5 is checked on read).

Memory is bounded: text files above ``STREAM_ABOVE`` (YAML and MLmodel above
``MAX_REWRITE_BYTES``) are rewritten as a stream (``LogStream``), never held whole. A file
that holds a secret redaction could not remove is not stored (``withheld``).

A small file's work between its read and its store is ``prepare`` (no I/O): the transfer
calls it here, or worker processes call it ahead of time (``export/workers.py``) and
``FileCopier.commit`` stores what they made; either way ``FileCopier._store`` stores and
records it.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from amlport.bundle import Repository
from amlport.bundle.index import SourceIndex
from amlport.errors import IntegrityError
from amlport.export.plan import rewrite_space, rewrites
from amlport.export.transfer import Abandonable, TransferStats
from amlport.model.manifest import FileEntry, Manifest, RedactionRecord, RewriteRecord
from amlport.rewriters.files import format_of, rewrite_file
from amlport.rewriters.rules import RewriteResult, RewriteRules
from amlport.rewriters.text_log import BinaryContent, LogStream
from amlport.secrets import ByteScanner, describe, find_secrets_in_bytes, unredacted
from amlport.storage.base import BlobInfo, Source
from amlport.streams import Tee
from amlport.walk.handlers import SPECS_CONTAINER

STREAM_ABOVE = 8 * 1024 * 1024  # larger text files are rewritten as a stream
# Binary files up to this size are read whole and stored in one write; larger ones are
# streamed (bounded memory). For a small file, a stream's reader, 1 MiB buffer and staging
# file cost more CPU than the copy itself (docs/design/0003-scale.md, session 7).
READ_WHOLE = 1024 * 1024
MAX_REWRITE_BYTES = 64 * 1024 * 1024  # YAML and MLmodel up to this size are parsed whole


class FileCopier:
    """Stores files and collects what the snapshot records of them: ``entries``,
    ``rewrites``, ``redactions``, ``warnings`` and the ``withheld`` paths. Its methods run on
    the transfer's workers (``copy``) or its scheduling thread (``reuse``)."""

    def __init__(
        self,
        source: Source,
        rules: RewriteRules,
        stats: TransferStats,
        warnings: list[str],
        *,
        specs: Path | None = None,
    ) -> None:
        self.source = source
        self.rules = rules
        self.stats = stats
        self.specs = specs
        self.entries: dict[str, FileEntry] = {}
        self.rewrites: list[RewriteRecord] = []
        self.redactions: list[RedactionRecord] = []
        self.warnings = warnings  # the plan's: one list of warnings for the snapshot
        # Files not stored because they hold a secret that could not be redacted: the export
        # engine leaves them out of the assets, as it does failed files.
        self.withheld: set[str] = set()
        self.abandon = threading.Event()  # the transfer's: set when it is interrupted
        self._lock = threading.Lock()  # for the records above (the stats have their own)
        # One string per digest for the entries and index rows the transfer makes: equal
        # bytes recur (half the blobs of a scaled workspace share a digest with another).
        self._digests: dict[str, str] = {}
        # ``rewrites(blob)`` of the files ``reusable`` was asked about ahead of their turn,
        # taken by ``reuse`` at it (the same blob: the same answer; asked twice of each
        # file, it was ~2 % of a first backup's main process at 100k blobs).
        self._rewrites: dict[str, bool] = {}

    def forget_digests(self) -> None:
        self._digests = {}
        self._rewrites = {}

    def store_generated(self, repo: Repository, path: str, data: bytes) -> None:
        digest = self._put(repo, data)
        self.entries[path] = FileEntry(path=path, digest=digest, size=len(data))

    def _one(self, digest: str) -> str:
        """The digest's one string object (``setdefault`` is atomic: workers share it)."""
        return self._digests.setdefault(digest, digest)

    def _put(self, repo: Repository, data: bytes) -> str:
        digest, new = repo.add_bytes(data)  # one check and one hash per file
        digest = self._one(digest)
        self.stats.record(files=1, size=len(data), stored=digest, new=new)
        return digest

    def reuse(self, index: SourceIndex, carried: Carried, path: str, blob: BlobInfo) -> bool:
        """Record ``path`` from the index and the previous snapshot when its blob did not
        change (etag and size: a local file's mtime and size, so it is not read), on the
        calling thread: an unchanged re-backup hands no file to a worker."""
        rewritten = self._rewrites.pop(path, None)
        if rewritten is None:
            rewritten = rewrites(blob)
        if rewritten:
            return self._reuse_rewritten(index, carried, path, blob)
        return self._reuse_raw(index, carried, path, blob, _original(path, blob))

    def _reuse_raw(
        self,
        index: SourceIndex,
        carried: Carried,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
    ) -> bool:
        hit = index.lookup(blob.container, blob.name, blob.etag, blob.size, blob.content_md5)
        if hit is None:
            return False
        self.stats.record(reused=1, files=1, size=blob.size)
        with self._lock:
            self.warnings += carried.warnings.get(path, [])  # a secret found last time
        entry = FileEntry(path=path, digest=hit, size=blob.size, original=original)
        # The previous snapshot's equal entry, so that both manifests share it (memory).
        self.entries[path] = carried.same(entry)
        return True

    def _reuse_rewritten(
        self, index: SourceIndex, carried: Carried, path: str, blob: BlobInfo
    ) -> bool:
        space = rewrite_space(blob.container)
        hit = index.lookup(space, blob.name, blob.etag, blob.size, blob.content_md5)
        previous = carried.entries.get(path)
        if hit is None or previous is None or previous.digest != hit:
            return False
        self.stats.record(reused=1, files=1, size=previous.size)
        with self._lock:
            self.entries[path] = previous
            self.rewrites += carried.rewrites.get(path, [])
            self.redactions += carried.redactions.get(path, [])
            self.warnings += carried.warnings.get(path, [])
        return True

    def reusable(
        self,
        index: SourceIndex,
        carried: Carried,
        path: str,
        blob: BlobInfo,
        *,
        remember: bool = False,
    ) -> bool:
        """Would ``reuse`` take this file (it records nothing)? Asked ahead of the file's
        turn, to leave it out of the work handed to other processes; ``reuse`` still
        decides at its turn (an object stored meanwhile may make a row usable).
        ``remember``: ``reuse`` of this path comes next, it takes the ``rewrites`` answer."""
        rewritten = rewrites(blob)
        if remember:
            self._rewrites[path] = rewritten
        if rewritten:
            hit = index.lookup(
                rewrite_space(blob.container), blob.name, blob.etag, blob.size, blob.content_md5
            )
            previous = carried.entries.get(path)
            return hit is not None and previous is not None and previous.digest == hit
        hit = index.lookup(blob.container, blob.name, blob.etag, blob.size, blob.content_md5)
        return hit is not None

    def copy(
        self, repo: Repository, index: SourceIndex, carried: Carried, path: str, blob: BlobInfo
    ) -> None:
        original = _original(path, blob)
        try:
            if rewrites(blob):
                self._rewrite(repo, index, carried, path, blob, original)
            else:
                self._raw(repo, index, carried, path, blob, original)
        except _Withheld as exc:
            self._withhold(path, exc)

    def commit(
        self, repo: Repository, index: SourceIndex, path: str, blob: BlobInfo, done: Prepared
    ) -> None:
        """Store a file another process prepared (``prepare``, export/workers.py) and record
        it, as ``copy`` would have after its own read and rewrite of the file."""
        try:
            self._store(repo, index, path, blob, _original(path, blob), done)
        except _Withheld as exc:
            self._withhold(path, exc)

    def _withhold(self, path: str, exc: _Withheld) -> None:
        with self._lock:
            self.withheld.add(path)
            self.warnings.append(
                f"not exported: {path}: {unredacted(exc.found)}; rotate the credential, "
                "then remove it from the file"
            )

    def _store(
        self,
        repo: Repository,
        index: SourceIndex,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
        done: Prepared,
    ) -> None:
        """Store a prepared small file and record it (``_Withheld``: a secret redaction
        could not remove; nothing is stored)."""
        _withhold_if_secret(done.found)
        if done.result is None:
            digest, new = repo.add_bytes(done.data)
            self._record_raw(index, path, blob, original, digest, len(done.data), new)
            return
        rewritten = _Rewritten(self._put(repo, done.data), len(done.data), done.result)
        rewritten.read = done.read
        if done.source_digest:  # changed: the entry records the source's digest
            rewritten.source_digest = self._one(done.source_digest)
        self._record_rewritten(index, path, blob, original, rewritten)

    def _raw(
        self,
        repo: Repository,
        index: SourceIndex,
        carried: Carried,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
    ) -> None:
        if self._reuse_raw(index, carried, path, blob, original):
            return
        if blob.size <= READ_WHOLE:  # one read and one write: no stream, no staging file
            done = prepare(self._read(blob), self.rules, path, blob, rewrite=False)
            self._store(repo, index, path, blob, original, done)
            return
        scanner = ByteScanner()
        with self._open(blob) as stream:
            digest, size = repo.put_stream(  # raises _Withheld at the end: nothing stored
                stream,
                expected_md5=_hex_md5(blob.content_md5),
                judge=_scanning(scanner),
                again=lambda: self._open(blob),  # copies of one model: judged, stored once
            )
        # a stream's store does not say whether it was new
        self._record_raw(index, path, blob, original, digest, size, None)

    def _record_raw(
        self,
        index: SourceIndex,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
        digest: str,
        size: int,
        new: bool | None,
    ) -> None:
        digest = self._one(digest)
        md5 = blob.content_md5
        index.record(blob.container, blob.name, blob.etag, blob.size, md5, digest, key=path)
        # an index miss: the bytes were read and stored (dedupe aside)
        self.stats.record(files=1, size=size, read=size, stored=digest, new=new)
        self.entries[path] = FileEntry(path=path, digest=digest, size=size, original=original)

    @contextmanager
    def _open(self, blob: BlobInfo) -> Iterator[BinaryIO]:
        """A stream of the blob that stops at its next read once the transfer is abandoned."""
        with self.source.open_stream(blob.container, blob.name) as raw:
            yield cast(BinaryIO, Abandonable(raw, self.abandon))

    def _read(self, blob: BlobInfo) -> bytes:
        return read_whole(self.source, self.specs, blob)

    def _rewrite(
        self,
        repo: Repository,
        index: SourceIndex,
        carried: Carried,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
    ) -> None:
        if self._reuse_rewritten(index, carried, path, blob):
            return
        if blob.container == SPECS_CONTAINER or _in_memory(blob.name, blob.size):
            prepared = prepare(self._read(blob), self.rules, path, blob, rewrite=True)
            self._store(repo, index, path, blob, original, prepared)
            return
        try:
            done = self._rewrite_stream(repo, path, blob)
        except BinaryContent:  # a NUL byte: binary content is never altered
            self._raw(repo, index, carried, path, blob, original)
            return
        self._record_rewritten(index, path, blob, original, done)

    def _record_rewritten(
        self,
        index: SourceIndex,
        path: str,
        blob: BlobInfo,
        original: dict[str, str],
        done: _Rewritten,
    ) -> None:
        space = rewrite_space(blob.container)
        md5 = blob.content_md5
        index.record(space, blob.name, blob.etag, blob.size, md5, done.digest, key=path)
        result = done.result
        changed = bool(result.changes or result.redactions)
        self.stats.record(read=done.read, rewritten=1 if changed else 0)
        with self._lock:
            self.entries[path] = FileEntry(
                path=path,
                digest=done.digest,
                size=done.size,
                original=original,
                rewritten=changed,
                original_digest=done.source_digest if changed else None,
            )
            # One string per equal text, as per digest: a scaled workspace's 39k records hold
            # 7 locations, 2 rules and 25k URIs (~10 MB of copies at 100k blobs otherwise).
            one = self._one
            self.rewrites += [
                RewriteRecord(path, one(c.location), one(c.before), one(c.after), one(c.rule))
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
        self.stats.record(files=1, size=size, streamed=1, stored=self._one(digest), new=None)
        source_digest = self._one("sha256:" + rewriter.sha256.hexdigest())
        return _Rewritten(self._one(digest), size, result, source_digest, rewriter.read)


@dataclass
class Prepared:
    """A small file read, searched for secrets and, when it may bind to the workspace,
    rewritten: the bytes to store and what the rewrite did. Made by ``prepare`` on the
    transfer's thread or in a worker process (export/workers.py); ``FileCopier`` stores
    it. Picklable."""

    data: bytes  # the bytes to store
    read: int  # bytes read from the source
    result: RewriteResult | None = None  # None: stored as read
    source_digest: str = ""  # rewritten and changed: the digest of the bytes read
    found: Counter[str] | None = None  # secrets in ``data`` (redaction could not remove them)


def prepare(
    data: bytes, rules: RewriteRules, path: str, blob: BlobInfo, *, rewrite: bool
) -> Prepared:
    """The per-file work of a small file between its read and its store (no I/O): the
    rewrite when ``rewrite``, the search of the bytes to store for secrets (the one
    detector, ``secrets.py``), the digest of the bytes read when the rewrite changed them."""
    if not rewrite:
        return Prepared(data, len(data), found=find_secrets_in_bytes(data) or None)
    result = rewrite_file(blob.name, data, rules, bundle_path=path)
    found = find_secrets_in_bytes(result.data) or None  # what redaction could not remove
    done = Prepared(result.data, len(data), result, found=found)
    if result.changes or result.redactions:  # the entry records the source's digest
        done.source_digest = _digest(data)
    return done


def read_whole(source: Source, specs: Path | None, blob: BlobInfo) -> bytes:
    """The whole blob (a file of ``specs`` for the specs pseudo-container), checked against
    the listing's content-MD5."""
    if blob.container == SPECS_CONTAINER and specs is not None:
        data = (specs / blob.name).read_bytes()
    else:
        data = source.read_bytes(blob.container, blob.name)
    _check_md5(blob, data)
    return data


class _Withheld(Exception):
    """A file holds a secret that could not be redacted: it is not stored."""

    def __init__(self, found: Counter[str]) -> None:
        super().__init__(describe(found))
        self.found = found


def _withhold_if_secret(found: Counter[str] | None) -> None:
    if found:
        raise _Withheld(found)


def _scanning(scanner: ByteScanner) -> Callable[[bytes | memoryview], None]:
    """A ``Tee`` sink: every byte read goes to the scanner (a view of the reader's buffer,
    which the scanner copies); at the end (an empty read) it raises ``_Withheld`` if the
    bytes hold a secret, before the object is committed."""

    def sink(data: bytes | memoryview) -> None:
        if data:
            scanner.feed(data)
        else:
            _withhold_if_secret(scanner.close())

    return sink


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


def _in_memory(name: str, size: int) -> bool:
    """Rewrite this file from bytes in memory (True) or as a stream (False)?"""
    structured = format_of(name, b"") in ("yaml", "mlmodel")
    return size <= (MAX_REWRITE_BYTES if structured else STREAM_ABOVE)


@dataclass
class Carried:
    """What the previous snapshot recorded per file, reused when a file did not change."""

    entries: dict[str, FileEntry]
    rewrites: dict[str, list[RewriteRecord]]
    redactions: dict[str, list[RedactionRecord]]
    warnings: dict[str, list[str]]  # the rewriter's warnings, by the file they name

    def same(self, entry: FileEntry) -> FileEntry:
        """The previous snapshot's entry for this path when it is equal, else ``entry``."""
        previous = self.entries.get(entry.path)
        return previous if previous == entry else entry


def carry_over(previous: Manifest | None) -> Carried:
    """What the previous snapshot recorded per file, reused when a file did not change."""
    carried = Carried({}, {}, {}, {})
    if previous is None:
        return carried
    for entry in previous.files:
        carried.entries[entry.path] = entry
    for rw in previous.rewrites:
        carried.rewrites.setdefault(rw.file, []).append(rw)
    for rd in previous.redactions:
        carried.redactions.setdefault(rd.file, []).append(rd)
    for warning in previous.warnings:
        path = warned_file(warning, carried.entries)
        if path is not None:
            carried.warnings.setdefault(path, []).append(warning)
    return carried


def warned_file(warning: str, files: dict[str, FileEntry]) -> str | None:
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
