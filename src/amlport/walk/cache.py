"""The walk's read cache: the small files a walk parses, kept between runs, keyed by etag.

A scheduled backup of a quiet workspace lists every blob (it must, to see what changed) and
then reads again every log, pointer, MLmodel and YAML file the walk parses, one request
each, though none of them changed. On the models benchmark those reads were a third of an
unchanged re-backup. The cache keeps, per source, the bytes of each file the walk read whole,
with the etag, size and content-MD5 the listing gave for it; the next walk takes a file from
the cache when the listing shows the same etag and size, and checks the bytes against the
listing's content-MD5 when there is one. Anything else is read from the source as before.

What is kept, and what is not:
- only files read whole, up to ``MAX_CACHED_FILE``, with the secret scan on, in which the
  walk found nothing to report: a file with a secret, malformed content or non-UTF-8 text is
  never written here, and is read again on every run (so its finding is reported again);
- only files whose listing gave an etag (every store amlport reads gives one), and not
  empty ones (the walk never reads those: the listing says it all).

The cache is a local SQLite file per source, ``walk-<source key>.sqlite`` in the cache
folder (``--cache-dir``, ``$AMLPORT_CACHE_DIR``, ``$XDG_CACHE_HOME/amlport`` or
``~/.cache/amlport``), never in a repository. A cache that cannot be opened or written is
reported once and the run goes on without it: it only ever saves reads. Rows of files the
walk no longer saw are removed at the end of each complete walk.

Once a backup's walk is over, its transfer takes the files it stores from here too
(``CachedReads``, for ``storage/reuse.py``): what the walk wrote or found here is not also
kept in memory until the transfer reads it.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from amlport.storage.base import BlobInfo

MAX_CACHED_FILE = 1024 * 1024
ENV_DIR = "AMLPORT_CACHE_DIR"
_BATCH = 500  # rows written per transaction: short ones, so a concurrent run is not held up
_SCHEMA = """
CREATE TABLE IF NOT EXISTS reads (
    container TEXT NOT NULL,
    name TEXT NOT NULL,
    etag TEXT NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    seen INTEGER NOT NULL,
    PRIMARY KEY (container, name)
) WITHOUT ROWID
"""


def default_cache_dir() -> Path:
    """``$AMLPORT_CACHE_DIR``, else ``$XDG_CACHE_HOME/amlport``, else ``~/.cache/amlport``."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "amlport"


class ReadCache:
    """One source's cached reads. Used from one thread (the walk's)."""

    def __init__(
        self,
        path: Path,
        conn: sqlite3.Connection,
        on_warning: Callable[[str], None],
        *,
        read_only: bool = False,
    ):
        self.path = path
        self.read_only = read_only  # a dry run's: reads what is kept, writes nothing
        self._conn: sqlite3.Connection | None = conn
        self._warn = on_warning
        self._stamp = time.time_ns()
        self._pending: list[tuple[str, str, str, int, bytes, int]] = []
        self._seen: list[tuple[int, str, str]] = []
        self._failed = False
        self.hits = 0

    @classmethod
    def open(
        cls,
        folder: Path,
        source_key: str,
        *,
        on_warning: Callable[[str], None],
        read_only: bool = False,
    ) -> ReadCache | None:
        """The cache of one source in ``folder`` (created, private to the user), or None when
        it cannot be used (reported through ``on_warning``). ``read_only`` (a dry run): the
        cache as it is, if there is one; nothing is created, written or deleted, not even
        SQLite's own side files (the database is opened immutable: a backup writing it at
        the same time can only make a read miss, as a damaged row does)."""
        path = folder / f"walk-{source_key}.sqlite"
        if read_only:
            if not path.is_file():
                return None
            try:
                uri = f"{path.resolve().as_uri()}?mode=ro&immutable=1"
                conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None)
            except (OSError, sqlite3.Error) as exc:
                on_warning(f"read cache {path} not used ({_why(exc)})")
                return None
            return cls(path, conn, on_warning, read_only=True)
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            conn = sqlite3.connect(path, timeout=5.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(_SCHEMA)
            os.chmod(path, 0o600)
        except (OSError, sqlite3.Error) as exc:
            on_warning(f"read cache {path} not used ({_why(exc)}); delete it if it is damaged")
            return None
        return cls(path, conn, on_warning)

    def get(self, blob: BlobInfo) -> bytes | None:
        """The cached bytes of ``blob`` when its listing still matches them, else None."""
        conn = self._conn
        if conn is None or _etag(blob) is None:
            return None
        try:
            row = conn.execute(
                "SELECT etag, size, data FROM reads WHERE container = ? AND name = ?",
                blob.key,
            ).fetchone()
        except sqlite3.Error as exc:
            self._fail(exc)
            return None
        data = _matching(row, blob)
        if data is not None:
            self.hits += 1
        return data

    def touch(self, blob: BlobInfo) -> bool:
        """Keep a cached file past this run (the walk found nothing in it again); whether
        it is kept (as ``put``)."""
        if self._conn is None or self.read_only:
            return False
        self._seen.append((self._stamp, blob.container, blob.name))
        if len(self._seen) >= _BATCH:
            self._flush()
        return self._conn is not None

    def reader(self) -> CachedReads | None:
        """After ``finish``: the files this walk kept, for the transfer's threads; None when
        the cache was not written (a dry run's, or one that failed)."""
        if self.read_only or self._failed:
            return None
        return CachedReads.open(self.path)

    def put(self, blob: BlobInfo, data: bytes, *, packed: bytes | None = None) -> bool:
        """Keep a file the walk read whole and found nothing to report in. ``packed``:
        ``packed(blob, data)``, made ahead by a worker process (None: made here). Whether
        it is kept (written when the walk finishes, unless the cache fails first)."""
        etag = _etag(blob)
        if self._conn is None or self.read_only or etag is None or len(data) != blob.size:
            return False
        if packed is None:
            packed = pack(data)
        self._pending.append((blob.container, blob.name, etag, blob.size, packed, self._stamp))
        if len(self._pending) >= _BATCH:
            self._flush()
        return self._conn is not None

    def finish(self) -> None:
        """After a complete walk: write what is pending, drop the rows of files it did not
        see (deleted, changed and not read whole, or now with a finding), and close."""
        self._flush()
        if self._conn is None or self.read_only:
            self.close()
            return
        try:
            self._conn.execute("DELETE FROM reads WHERE seen != ?", (self._stamp,))
        except sqlite3.Error as exc:
            self._fail(exc)
        self.close()

    def close(self) -> None:
        """Close without writing what is pending (a walk that did not finish keeps what the
        cache held before it)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _flush(self) -> None:
        if self._conn is None or not (self._pending or self._seen):
            return
        try:
            with self._conn:  # one transaction
                self._conn.execute("BEGIN")
                self._conn.executemany(
                    "INSERT OR REPLACE INTO reads VALUES (?, ?, ?, ?, ?, ?)", self._pending
                )
                self._conn.executemany(
                    "UPDATE reads SET seen = ? WHERE container = ? AND name = ?", self._seen
                )
        except sqlite3.Error as exc:
            self._fail(exc)
        self._pending, self._seen = [], []

    def _fail(self, exc: sqlite3.Error) -> None:
        """Stop using the cache for this run (it only saves reads), and say so once."""
        self._warn(f"read cache {self.path} not used further ({_why(exc)})")
        self._failed = True
        self.close()


class CachedReads:
    """A finished walk's cache, read by several threads (a backup's transfer: the files the
    walk kept here are not also held in memory, ``storage/reuse.py``). Each read is checked
    against the listing as ``ReadCache.get`` checks it; anything else is a miss (None), and
    the caller reads the file from the source."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.Lock()

    @classmethod
    def open(cls, path: Path) -> CachedReads | None:
        """The cache at ``path``, or None when it cannot be opened (nothing is created)."""
        try:
            uri = f"{path.resolve().as_uri()}?mode=rw"  # the walk's: it exists, WAL and all
            conn = sqlite3.connect(
                uri, uri=True, timeout=5.0, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error):
            return None
        return cls(conn)

    def get(self, blob: BlobInfo) -> bytes | None:
        if _etag(blob) is None:
            return None
        with self._lock:
            if self._conn is None:
                return None
            try:
                row = self._conn.execute(
                    "SELECT etag, size, data FROM reads WHERE container = ? AND name = ?",
                    blob.key,
                ).fetchone()
            except sqlite3.Error:
                return None  # read from the source instead
        return _matching(row, blob)

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _matching(row: tuple[str, int, bytes] | None, blob: BlobInfo) -> bytes | None:
    """The bytes of a cache row when it holds ``blob`` as listed (etag, size, content-MD5),
    else None (a damaged row too: the file is read again)."""
    if row is None or row[0] != blob.etag or row[1] != blob.size:
        return None
    try:
        data = zlib.decompress(row[2])
    except zlib.error:
        return None
    if len(data) != blob.size or not blob.md5_matches(data):
        return None
    return data


def pack(data: bytes) -> bytes:
    """What the cache stores of a file's bytes (zlib, level 1)."""
    return zlib.compress(data, 1)


def packed(blob: BlobInfo, data: bytes) -> bytes | None:
    """What ``ReadCache.put`` would store of ``blob``'s bytes ``data``; None when it keeps
    none of them (a worker process packs ahead only what may be kept)."""
    if _etag(blob) is None or len(data) != blob.size:
        return None
    return pack(data)


def _etag(blob: BlobInfo) -> str | None:
    """The etag the cache keys ``blob`` by; None for a file it never holds: one without an
    etag, an empty one (the walk never reads those: the listing says it all), or one above
    ``MAX_CACHED_FILE``."""
    return blob.etag if 0 < blob.size <= MAX_CACHED_FILE else None


def _why(exc: BaseException) -> str:
    return exc.strerror or str(exc) if isinstance(exc, OSError) else str(exc)
