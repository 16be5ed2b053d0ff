"""The incremental index: what each source blob was stored as last time.

``index/<source-key>.json`` maps ``(container, blob name)`` to the listing facts seen when it
was stored (etag, size, content-MD5) and the digest of the object that holds it. When the
listing shows the same facts again, the exporter takes the digest from here instead of reading
the blob: an unchanged source moves no payload bytes.

The index is a cache, not a source of truth: a hit also requires the object to still be in
the repository (prune may have removed it) with the blob's size (a row naming another object,
or an object cut short, is a miss: the blob is read and stored again), a damaged index file
is treated as empty, and two writers of the same source just race to replace the whole file
(the loser's entries are re-learned on the next run).
"""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import zstandard
from zstandard import ZstdError

from amlport.bundle.store import RepoStore
from amlport.errors import IntegrityError, UsageError
from amlport.model import jsonstream
from amlport.model.loadplan import Known  # a row's strings the caller holds
from amlport.model.manifest import DIGEST_RE

INDEX_VERSION = 1
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")


@dataclass(frozen=True, slots=True)
class IndexEntry:
    # The etag; a local copy's ``<mtime ns hex>-<size hex>`` (storage/local.py) of the row's
    # size as the int of its mtime: 32 bytes, not a 64-byte string a row (``etag`` gives
    # the text back; the file holds the text).
    tag: str | int | None
    size: int
    content_md5: str | None
    digest: str

    @property
    def etag(self) -> str | None:
        tag = self.tag
        return f"{tag:x}-{self.size:x}" if isinstance(tag, int) else tag


_LOCAL_MTIME = re.compile(r"[1-9a-f][0-9a-f]{0,31}")


def _compact_etag(etag: str | None, size: int) -> str | int | None:
    """``IndexEntry.tag`` of an etag: a local copy's mtime as an int when the text is
    exactly what ``IndexEntry.etag`` gives back for it, else the etag itself."""
    if etag is None or len(etag) > 48:
        return etag
    head, sep, tail = etag.partition("-")
    if sep and _LOCAL_MTIME.fullmatch(head) and tail == f"{size:x}":
        return int(head, 16)
    return etag


def _same_etag(tag: str | int | None, etag: str, size: int) -> bool:
    return etag == f"{tag:x}-{size:x}" if isinstance(tag, int) else tag == etag


def _norm_md5(md5: str | None) -> str | None:
    if not md5:
        return None
    return md5 if md5.islower() or md5.isdigit() else md5.lower()  # no copy per row


class SourceIndex:
    """Listing facts → digest for one source; thread-safe for concurrent exporters."""

    def __init__(
        self,
        store: RepoStore,
        source_key: str,
        object_size: Callable[[str], int | None],
        warn: Callable[[str], None] | None = None,
        known: Known | None = None,
        strings: dict[str, str] | None = None,
        *,
        compress: bool = False,
        prefix: Callable[[str], str] | None = None,
    ) -> None:
        """``object_size``: a stored object's size (None: missing); ``known``: for a row,
        equal strings already in memory to share (``Known``); ``strings``: other strings to
        share (``{s: s}``), extended as the index is read; ``prefix``: a container's
        prefix of its rows' keys in memory (``LoadPlan.prefix``; none: the blob name)."""
        if not _KEY_RE.match(source_key):
            raise UsageError(f"{source_key!r} is not a valid source key")
        self.store = store
        self.key = f"index/{source_key}.json"
        self.source_key = source_key
        self.compress = compress  # format 2: the file is a zstd frame (read either way)
        self._object_size = object_size
        # container -> key -> row: one dict per container, no key tuple per row (100k+). A
        # row's key is its container's prefix + the blob name: with an export's prefix
        # (``files/<datastore>/``) the key is the file's bundle path, and the index holds the
        # path string of the file's entry instead of a name of its own (memory at 100k).
        self._entries: dict[str, dict[str, IndexEntry]] = {}
        self._prefix_of = prefix
        self._prefixes: dict[str, str] = {}  # container -> prefix: fixed at its first use
        self._mutex = threading.Lock()
        self._load(warn, known, {} if strings is None else strings)

    @property
    def path(self) -> Path:
        """The index file of a local repository (UsageError for a remote one)."""
        return self.store.local_path(self.key)

    def __len__(self) -> int:
        return sum(map(len, self._entries.values()))

    def _prefix(self, container: str) -> str:
        prefix = self._prefixes.get(container)
        if prefix is None:
            prefix = self._prefix_of(container) if self._prefix_of is not None else ""
            prefix = self._prefixes.setdefault(container, prefix)  # workers: the first one
        return prefix

    def _key(self, container: str, name: str) -> str:
        """The key of (container, name) in memory: the prefix + the name."""
        prefix = self._prefix(container)
        return prefix + name if prefix else name

    def _row_key(self, container: str, name: str, key: str | None) -> str:
        """``key`` (a string the caller holds) when it is the row's key, else a new one."""
        if key is not None:
            prefix = self._prefix(container)
            if (
                len(key) == len(prefix) + len(name)
                and key.endswith(name)
                and key.startswith(prefix)
            ):
                return key
        return self._key(container, name)

    def lookup(
        self, container: str, name: str, etag: str | None, size: int, md5: str | None
    ) -> str | None:
        """The stored digest when etag and size (and MD5, when both have one) match and its
        object is stored, of the blob's size when the row is of the blob's own bytes."""
        entry = self._row(container, name, etag, size, md5)
        if entry is None:
            return None
        stored = self._object_size(entry.digest)
        # A namespace's rows (``rewritten/<version>/<container>``: no container name holds a
        # "/") name other bytes than the blob's, of another size.
        own_bytes = "/" not in container
        return entry.digest if stored is not None and (stored == size or not own_bytes) else None

    def knows(
        self, container: str, name: str, etag: str | None, size: int, md5: str | None
    ) -> bool:
        """Does a row match (``lookup`` without checking that its object is stored)?"""
        return self._row(container, name, etag, size, md5) is not None

    def _row(
        self, container: str, name: str, etag: str | None, size: int, md5: str | None
    ) -> IndexEntry | None:
        entry = self._entries.get(container, {}).get(self._key(container, name))
        if entry is None or etag is None or entry.size != size:
            return None
        if not _same_etag(entry.tag, etag, size):
            return None
        if entry.content_md5 and md5 and entry.content_md5 != _norm_md5(md5):
            return None
        return entry

    def record(
        self,
        container: str,
        name: str,
        etag: str | None,
        size: int,
        md5: str | None,
        digest: str,
        *,
        key: str | None = None,
    ) -> None:
        """``key``: the caller's string of prefix + name (an export's bundle path), held
        as the row's key instead of a new one; any other string is not used."""
        if not DIGEST_RE.match(digest):
            raise UsageError(f"{digest!r} is not a digest of the form sha256:<64 hex>")
        row_key = self._row_key(container, name, key)
        with self._mutex:
            row = IndexEntry(_compact_etag(etag, size), size, _norm_md5(md5), digest)
            self._entries.setdefault(container, {})[row_key] = row

    def forget(self, container: str, name: str) -> None:
        with self._mutex:
            self._entries.get(container, {}).pop(self._key(container, name), None)

    def save(self) -> None:
        """Replace the index file atomically (zstd-compressed when ``compress``: rows of
        names, etags and digests shrink about 6x; a 100k-blob index is ~35 MB of JSON)."""
        with self._mutex:
            rows = self._rows()
            self.store.write_chunks(self.key, _zstd_chunks(rows) if self.compress else rows)

    def _rows(self) -> Iterator[bytes]:
        """The index file in pieces, a row at a time: no dict per row, no whole text (a local
        repository streams them to its file; 100k+ rows at workspace scale)."""
        yield b'{"entries": ['
        n = 0
        for container in sorted(self._entries):
            rows = self._entries[container]
            skip = len(self._prefix(container))  # one prefix a container: the names' order
            for key in sorted(rows):
                e = rows[key]
                row: dict[str, Any] = {"container": container, "name": key[skip:]}
                row.update(etag=e.etag, size=e.size, content_md5=e.content_md5, digest=e.digest)
                yield (b"\n" if n == 0 else b",\n") + json.dumps(row, sort_keys=True).encode()
                n += 1
        tail = {"source": self.source_key, "version": INDEX_VERSION}
        yield b"\n], " + json.dumps(tail, sort_keys=True)[1:].encode() + b"\n"

    def _load(
        self, warn: Callable[[str], None] | None, known: Known | None, same: dict[str, str]
    ) -> None:
        try:
            fh = _maybe_decompressing(self.store.open(self.key))
        except FileNotFoundError:
            return
        except IntegrityError as exc:  # not a regular file: a cache, so it is just not used
            if warn is not None:
                warn(f"ignoring index {self.key.rsplit('/', 1)[-1]}: {exc.message}")
            return
        header: dict[str, Any] = {}
        # One string object per equal text (``same``): a blob that is rewritten has two rows
        # (its bytes and its rewritten form) with the same name, etag and MD5, and blobs of
        # equal bytes share a digest (half the rows of a scaled workspace).
        rows = False
        try:
            with fh:  # read row by row: the index of a 100k-blob source is ~30 MB of JSON
                for key, value in jsonstream.members(fh, ("entries",)):
                    if not isinstance(value, jsonstream.Items):
                        header[key] = value
                        continue
                    rows = True
                    for row in value:
                        self._add_row(row, known, same)
            if header.get("version") != INDEX_VERSION:
                raise ValueError(f"version {header.get('version')!r}")
            if not rows or "entries" in header:
                raise ValueError("no list of entries")
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError, ZstdError) as exc:
            self._entries.clear()
            if warn is not None:
                warn(
                    f"ignoring unreadable index {self.key.rsplit('/', 1)[-1]} "
                    f"({type(exc).__name__}); "
                    "the next export reads every blob once"
                )

    def _add_row(self, row: dict[str, Any], known: Known | None, same: dict[str, str]) -> None:
        """One row read from the file, its strings shared: those the caller holds for it
        (``known``), else the index's own (``same``)."""
        name = row["name"]
        if not isinstance(name, str):
            raise TypeError("name")
        container = row["container"]
        if not isinstance(container, str):
            raise TypeError("container")
        held = {s: s for s in known(container, name) if s} if known else {}

        def share(text: str) -> str:
            return held.get(text) or same.setdefault(text, text)

        container = share(container)
        key = self._key(container, name)
        self._entries.setdefault(container, {})[share(key)] = _entry(row, share)


ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd_chunks(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """``chunks`` as one zstd frame, compressed as they come (bounded memory)."""
    compressor = zstandard.ZstdCompressor(level=3).compressobj()
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


def _maybe_decompressing(fh: BinaryIO) -> BinaryIO:
    """The index's JSON bytes, whether the file is a zstd frame (format 2) or plain JSON
    (format 1): the first bytes tell (JSON starts with ``{``)."""
    peek = fh if isinstance(fh, io.BufferedReader) else io.BufferedReader(cast(Any, fh))
    if peek.peek(4)[:4] == ZSTD_MAGIC:
        return cast(BinaryIO, zstandard.ZstdDecompressor().stream_reader(peek, closefd=True))
    return cast(BinaryIO, peek)


def _entry(row: dict[str, Any], share: Callable[[str], str]) -> IndexEntry:
    digest, size = row["digest"], row["size"]
    if not isinstance(digest, str) or not DIGEST_RE.match(digest) or not isinstance(size, int):
        raise ValueError("bad entry")
    etag, md5 = row.get("etag"), _norm_md5(row.get("content_md5"))
    # (an etag that is not text never matched a listing's: kept as none, which does not)
    tag = _compact_etag(etag, size) if isinstance(etag, str) else None
    return IndexEntry(
        share(tag) if isinstance(tag, str) else tag,
        size,
        share(md5) if md5 else md5,
        share(digest),
    )
