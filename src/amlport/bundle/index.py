"""The incremental index: what each source blob was stored as last time.

``index/<source-key>.json`` maps ``(container, blob name)`` to the listing facts seen when it
was stored (etag, size, content-MD5) and the digest of the object that holds it. When the
listing shows the same facts again, the exporter takes the digest from here instead of reading
the blob: an unchanged source moves no payload bytes.

The index is a cache, not a source of truth: a hit also requires the object to still be in
the repository (prune may have removed it), a damaged index file is treated as empty, and two
writers of the same source just race to replace the whole file (the loser's entries are
re-learned on the next run).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlport.bundle.store import RepoStore
from amlport.errors import UsageError
from amlport.model.manifest import DIGEST_RE

INDEX_VERSION = 1
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    etag: str | None
    size: int
    content_md5: str | None
    digest: str


def _norm_md5(md5: str | None) -> str | None:
    return md5.lower() if md5 else None


class SourceIndex:
    """Listing facts → digest for one source; thread-safe for concurrent exporters."""

    def __init__(
        self,
        store: RepoStore,
        source_key: str,
        has_object: Callable[[str], bool],
        warn: Callable[[str], None] | None = None,
    ) -> None:
        if not _KEY_RE.match(source_key):
            raise UsageError(f"{source_key!r} is not a valid source key")
        self.store = store
        self.key = f"index/{source_key}.json"
        self.source_key = source_key
        self._has_object = has_object
        self._entries: dict[tuple[str, str], IndexEntry] = {}
        self._mutex = threading.Lock()
        self._load(warn)

    @property
    def path(self) -> Path:
        """The index file of a local repository (UsageError for a remote one)."""
        return self.store.local_path(self.key)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(
        self, container: str, name: str, etag: str | None, size: int, md5: str | None
    ) -> str | None:
        """The stored digest when etag and size (and MD5, when both have one) match."""
        entry = self._entries.get((container, name))
        if entry is None or etag is None or entry.etag != etag or entry.size != size:
            return None
        if entry.content_md5 and md5 and entry.content_md5 != _norm_md5(md5):
            return None
        return entry.digest if self._has_object(entry.digest) else None

    def record(
        self,
        container: str,
        name: str,
        etag: str | None,
        size: int,
        md5: str | None,
        digest: str,
    ) -> None:
        if not DIGEST_RE.match(digest):
            raise UsageError(f"{digest!r} is not a digest of the form sha256:<64 hex>")
        with self._mutex:
            self._entries[(container, name)] = IndexEntry(etag, size, _norm_md5(md5), digest)

    def forget(self, container: str, name: str) -> None:
        with self._mutex:
            self._entries.pop((container, name), None)

    def save(self) -> None:
        """Replace the index file atomically."""
        with self._mutex:
            entries = sorted(self._entries.items())
        # One JSON document, encoded a row at a time: no dict per row, no whole-text string
        # (100k+ rows at workspace scale).
        out = io.BytesIO()
        out.write(b'{"entries": [')
        for n, ((container, name), e) in enumerate(entries):
            row = {"container": container, "name": name, "etag": e.etag, "size": e.size}
            row.update(content_md5=e.content_md5, digest=e.digest)
            out.write(b"\n" if n == 0 else b",\n")
            out.write(json.dumps(row, sort_keys=True).encode())
        tail = {"source": self.source_key, "version": INDEX_VERSION}
        out.write(b"\n], " + json.dumps(tail, sort_keys=True)[1:].encode() + b"\n")
        self.store.write(self.key, out.getvalue())

    def _load(self, warn: Callable[[str], None] | None) -> None:
        try:
            raw = self.store.read(self.key)
        except FileNotFoundError:
            return
        try:
            data = json.loads(raw)
            if data.get("version") != INDEX_VERSION:
                raise ValueError(f"version {data.get('version')!r}")
            for row in data["entries"]:
                self._entries[(row["container"], row["name"])] = _entry(row)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self._entries.clear()
            if warn is not None:
                warn(
                    f"ignoring unreadable index {self.key.rsplit('/', 1)[-1]} "
                    f"({type(exc).__name__}); "
                    "the next export reads every blob once"
                )


def _entry(row: dict[str, Any]) -> IndexEntry:
    digest, size = row["digest"], row["size"]
    if not isinstance(digest, str) or not DIGEST_RE.match(digest) or not isinstance(size, int):
        raise ValueError("bad entry")
    return IndexEntry(row.get("etag"), size, _norm_md5(row.get("content_md5")), digest)
