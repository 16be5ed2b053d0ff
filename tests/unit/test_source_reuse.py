"""ReusingSource and Source.read_many: each small blob is read from storage once per export.

The inner source here is a dict of bytes (pure logic: what is served from where); the same
behaviour over a real workspace folder is checked in tests/integration/test_export_reads_once.py.
"""

from __future__ import annotations

import io
import random
import zlib
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

import pytest

from amlport.errors import SourceNotFound
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import BlobInfo, Source
from amlport.storage.reuse import MAX_KEPT_FILE, ReusingSource


class DictSource(Source):
    def __init__(self, blobs: dict[str, bytes]) -> None:
        self.blobs = blobs
        self.descriptor = WorkspaceDescriptor.from_dict(
            {"account": "acct", "containers": {"blobstore": "azureml-blobstore-x"}}
        )
        self.requests: Counter[str] = Counter()

    def info(self, name: str) -> BlobInfo:
        return BlobInfo("c", name, len(self.blobs[name]))

    def list_blobs(self) -> Iterator[BlobInfo]:
        return (self.info(n) for n in sorted(self.blobs))

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        self.requests[name] += 1
        if name not in self.blobs:
            raise SourceNotFound(f"{container}/{name} not found")
        data = self.blobs[name]
        return data if max_bytes is None else data[:max_bytes]

    def open_stream(self, container: str, name: str) -> BinaryIO:
        return io.BytesIO(self.read_bytes(container, name))

    def describe(self) -> str:
        return "dict"


def test_a_blob_read_by_the_walk_is_served_once_from_memory() -> None:
    inner = DictSource({"a.yaml": b"a: 1\n", "b.txt": b"bee"})
    src = ReusingSource(inner)
    got = {r.blob.name: r.data for r in src.read_many([inner.info("a.yaml"), inner.info("b.txt")])}
    assert got == {"a.yaml": b"a: 1\n", "b.txt": b"bee"}
    assert src.read_bytes("c", "a.yaml") == b"a: 1\n"
    assert src.open_stream("c", "b.txt").read() == b"bee"
    assert inner.requests == Counter({"a.yaml": 1, "b.txt": 1})  # the walk's reads only
    assert src.served == 2 and src.kept_bytes == 0
    assert src.read_bytes("c", "a.yaml") == b"a: 1\n"  # served once: now from storage again
    assert inner.requests["a.yaml"] == 2


def test_partial_reads_large_files_and_the_budget_are_not_kept() -> None:
    big = b"x" * (MAX_KEPT_FILE + 1)
    noise = random.Random(7)  # incompressible: each kept copy is a little over 60 bytes
    c1, c2 = noise.randbytes(60), noise.randbytes(60)
    inner = DictSource({"clipped": b"0123456789", "big": big, "c1": c1, "c2": c2})
    src = ReusingSource(inner, budget=100)
    list(src.read_many([inner.info("clipped")], max_bytes=4))  # the walk's parse limit
    list(src.read_many([inner.info("big")]))
    list(src.read_many([inner.info("c1"), inner.info("c2")], workers=1))
    # one of c1/c2: the second does not fit in 100 bytes
    assert src.kept_bytes == len(zlib.compress(c1, 1)) > 60
    assert src.read_bytes("c", "clipped") == b"0123456789"
    assert src.open_stream("c", "big").read() == big
    before = sum(inner.requests.values())
    src.read_bytes("c", "c1"), src.read_bytes("c", "c2")
    assert sum(inner.requests.values()) == before + 1
    src.drop()
    assert src.kept_bytes == 0


def test_read_many_asks_nothing_for_an_empty_blob_and_still_fails_per_blob() -> None:
    inner = DictSource({"empty": b"", "full": b"data"})
    results = {
        r.blob.name: r
        for r in inner.read_many(
            [inner.info("empty"), inner.info("full"), BlobInfo("c", "gone", 3)]
        )
    }
    assert results["empty"].data == b"" and results["full"].data == b"data"
    assert isinstance(results["gone"].error, SourceNotFound)
    assert "empty" not in inner.requests  # the listing said size 0: no GET


@pytest.mark.parametrize("budget", [0, 10])
def test_a_kept_blob_is_whole_or_absent(budget: int) -> None:
    inner = DictSource({"a": b"abcdefghijkl"})
    src = ReusingSource(inner, budget=budget)
    list(src.read_many([inner.info("a")]))
    assert src.kept_bytes == 0  # 12 bytes never fit: nothing half-kept
    assert src.read_bytes("c", "a", max_bytes=5) == b"abcde"


def test_text_is_kept_compressed_and_served_byte_for_byte() -> None:
    """The budget counts what is held: 20 kB of log text fits in 4 kB, and comes back whole."""
    log = b"".join(b"2024-03-01 02:00:%02d step %d: ok\n" % (i % 60, i) for i in range(700))
    inner = DictSource({"70_driver_log.txt": log})
    src = ReusingSource(inner, budget=4096)
    list(src.read_many([inner.info("70_driver_log.txt")]))
    assert len(log) > 20_000 and 0 < src.kept_bytes < 4096
    assert src.read_bytes("c", "70_driver_log.txt") == log
    assert inner.requests["70_driver_log.txt"] == 1


class CheapSource(DictSource):
    """Stands in for a local copy: a second read costs no request."""

    rereads_cheaply = True


def test_nothing_is_kept_over_a_source_that_rereads_cheaply() -> None:
    """A local copy's reads are not kept (they cost the peak memory of a large export, and
    a second read comes from the page cache); the transfer reads each file again, whole."""
    from amlport.backup.recording import RecordingSource

    inner = CheapSource({"a.yaml": b"a: 1\n", "b.txt": b"bee"})
    for src in (ReusingSource(inner), ReusingSource(RecordingSource(inner))):  # through wrappers
        inner.requests.clear()
        assert [r.data for r in src.read_many([inner.info("a.yaml"), inner.info("b.txt")])] == [
            b"a: 1\n",
            b"bee",
        ]
        assert src.kept_bytes == 0 and src.budget == 0
        src.offer(inner.info("a.yaml"), b"a: 1\n")  # offered bytes are not kept either
        assert src.read_bytes("c", "a.yaml") == b"a: 1\n"
        assert src.open_stream("c", "b.txt").read() == b"bee"
        assert src.served == 0 and inner.requests == Counter({"a.yaml": 2, "b.txt": 2})


def test_a_local_copy_rereads_cheaply_and_remote_storage_does_not() -> None:
    from amlport.storage.base import SourceWrapper
    from amlport.storage.local import LocalSource
    from amlport.storage.reuse import rereads_cheaply

    assert LocalSource.rereads_cheaply and not Source.rereads_cheaply
    assert not rereads_cheaply(DictSource({})) and rereads_cheaply(CheapSource({}))
    assert rereads_cheaply(SourceWrapper(SourceWrapper(CheapSource({}))))


HOSTILE = ["x[/]y.yaml", "[bold]", "a..b/../c", "tab\there", "cr\rlf\n", "del\x7f\x85", "L" * 1024]


class Held:
    """Stands in for the walk's finished read cache (``walk/cache.CachedReads``): bytes by
    name, served while the etag is the one listed; what was asked of it, and whether closed."""

    def __init__(self, blobs: dict[str, bytes], etag: str = "e1") -> None:
        self.blobs, self.etag = blobs, etag
        self.asked: list[str] = []
        self.closed = False

    def get(self, blob: BlobInfo) -> bytes | None:
        self.asked.append(blob.name)
        return self.blobs.get(blob.name) if blob.etag == self.etag else None

    def close(self) -> None:
        self.closed = True


def test_a_blob_the_read_cache_holds_is_not_kept_and_is_served_from_the_cache() -> None:
    """The walk puts a clean file in its read cache and says so (``cached``): it is not kept
    in memory too; once the walk is over the transfer's read takes it from the cache, once,
    checked against the listing (a stale etag: read from storage). A file with a finding is
    not cached: it is kept in memory as before."""
    blobs = {n: f"{n}: 1\n".encode() * 9 for n in [*HOSTILE, "secret.env"]}
    inner = DictSource(blobs)
    infos = [BlobInfo("c", n, len(d), "e1") for n, d in blobs.items()]
    src = ReusingSource(inner)
    for result in src.read_many(infos):  # the walk: each clean file goes to its cache
        if result.blob.name != "secret.env":
            src.cached(result.blob)
    assert src.kept_bytes == len(zlib.compress(blobs["secret.env"], 1))  # that one only
    held = Held({n: d for n, d in blobs.items() if n != "secret.env"})
    src.read_cached_from(held)  # the walk is over
    for name in HOSTILE:
        assert src.read_bytes("c", name) == blobs[name]
    assert src.open_stream("c", "secret.env").read() == blobs["secret.env"]
    assert inner.requests == Counter(dict.fromkeys(blobs, 1))  # the walk's reads only
    assert held.asked == HOSTILE and src.served == len(blobs)
    assert src.read_bytes("c", HOSTILE[0]) == blobs[HOSTILE[0]]  # served once: storage again
    assert inner.requests[HOSTILE[0]] == 2 and held.asked == HOSTILE
    src.drop()
    assert held.closed


def test_a_cached_blob_the_cache_no_longer_matches_is_read_from_storage() -> None:
    inner = DictSource({"a.yaml": b"a: 1\n", "b.yaml": b"b: 2\n"})
    src = ReusingSource(inner)
    src.cached(BlobInfo("c", "a.yaml", 5, "e1"))
    src.cached(BlobInfo("c", "b.yaml", 5, "e2"))  # the cache holds another version of it
    assert src.read_bytes("c", "a.yaml") == b"a: 1\n"  # the walk is not over: from storage
    src.read_cached_from(Held({"b.yaml": b"b: 0\n"}))
    assert src.read_bytes("c", "b.yaml") == b"b: 2\n"
    assert inner.requests == Counter({"a.yaml": 1, "b.yaml": 1}) and src.served == 0


def test_an_unchanged_or_unusable_cache_costs_no_read_of_it() -> None:
    """``discard`` (an unchanged file) forgets a cached blob as it forgets a kept one; a
    cache that could not be opened after the walk (None): every file is read again."""
    inner = DictSource({"a": b"aaaa", "b": b"bbbb"})
    src = ReusingSource(inner)
    for name in ("a", "b"):
        src.cached(BlobInfo("c", name, 4, "e1"))
    held = Held({"a": b"aaaa", "b": b"bbbb"})
    src.read_cached_from(held)
    src.discard("c", "a")
    assert src.read_bytes("c", "a") == b"aaaa" and held.asked == []
    other = ReusingSource(inner)
    other.cached(BlobInfo("c", "b", 4, "e1"))
    other.read_cached_from(None)
    assert other.read_bytes("c", "b") == b"bbbb" and inner.requests["b"] == 1


def test_a_source_that_rereads_cheaply_records_nothing_cached() -> None:
    inner = CheapSource({"a": b"aaaa"})
    src = ReusingSource(inner)
    src.cached(BlobInfo("c", "a", 4, "e1"))
    held = Held({"a": b"aaaa"})
    src.read_cached_from(held)
    assert src.read_bytes("c", "a") == b"aaaa" and held.asked == [] and src.served == 0
