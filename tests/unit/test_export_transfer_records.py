"""The transfer's records (issue 23 item 2): one ``TransferStats.record`` counts what a file
did, failures are typed ``Failure`` records, and a read's memory tactics are one
``LoadPlan``. Pure logic: no repository, no source."""

from __future__ import annotations

import io
import json
import threading

from amlport.export.transfer import FAILED, INTEGRITY, SKIPPED, Failure, TransferStats
from amlport.model.loadplan import SUMMARY, WHOLE, LoadPlan
from amlport.model.manifest import KEEPABLE, FileEntry, Manifest

DIGEST = "sha256:" + "a" * 64


def test_an_object_stored_twice_counts_once_and_a_known_one_not_at_all() -> None:
    stats = TransferStats()
    stats.record(files=1, size=10, read=10, stored=DIGEST, new=True)
    stats.record(files=1, size=10, read=10, stored=DIGEST, new=None)  # equal bytes again
    stats.record(files=1, size=7, stored="sha256:" + "b" * 64, new=False)  # already stored
    stats.record(files=1, size=5, reused=1)
    assert (stats.files, stats.bytes, stats.read_bytes, stats.reused) == (4, 32, 20, 1)
    assert (stats.new_objects, stats.new_bytes) == (1, 10)


def test_the_writer_of_an_object_counts_even_when_it_records_after_a_twin_found_it() -> None:
    """Two blobs of the same bytes race: the worker that found the object (new=False) may
    record before the one that wrote it (new=True). The object is new: counted once, whatever
    the order (was 0 when the finder recorded first: `backup --json` said 154 new objects for
    the 155 `verify` checked)."""
    for order in ((False, True), (True, False), (True, True), (False, True, True)):
        stats = TransferStats()
        for new in order:
            stats.record(files=1, size=10, stored=DIGEST, new=new)
        assert (stats.new_objects, stats.new_bytes) == (1, 10), order
    only_found = TransferStats()
    only_found.record(files=1, size=10, stored=DIGEST, new=False)
    only_found.record(files=1, size=10, stored=DIGEST, new=False)
    assert only_found.new_objects == 0


def test_records_from_many_threads_are_all_counted() -> None:
    stats = TransferStats()

    def work(n: int) -> None:
        for i in range(200):
            stats.record(files=1, size=1, stored=f"sha256:{n}-{i}", new=True)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stats.files == stats.new_objects == 800


def test_failures_are_records_shown_as_path_and_message() -> None:
    stats = TransferStats()
    stats.fail("files/ds/a: b.txt", "content MD5 does not match", INTEGRITY)
    stats.fail("files/ds/c", "not attempted: the source is unreachable", SKIPPED)
    stats.fail("files/ds/d", "denied")
    first = stats.failures[0]
    assert first == Failure("files/ds/a: b.txt", "content MD5 does not match", INTEGRITY)
    assert first.path == "files/ds/a: b.txt"  # a path holding ": " is not cut apart
    assert str(first) == "files/ds/a: b.txt: content MD5 does not match"
    assert "b.txt" in first and stats.failures[2].kind == FAILED
    assert stats.integrity_failures == 1


def test_the_stats_as_json_are_the_counts_and_the_failures_as_text() -> None:
    stats = TransferStats()
    stats.record(files=1, size=3, stored=DIGEST, new=True)
    stats.fail("files/ds/x", "gone")
    out = stats.to_dict()
    assert out["failures"] == ["files/ds/x: gone"] and out["new_objects"] == 1
    assert not any(key.startswith("_") for key in out)
    json.dumps(out)  # serialisable: no lock, no digest set


def test_a_load_plan_keeps_what_it_names_and_shares_its_tables() -> None:
    assert WHOLE.keep == frozenset(KEEPABLE) and WHOLE.hollow == ()
    assert SUMMARY.keep == frozenset() and SUMMARY.hollow == ("lineage",)
    paths: dict[str, str] = {}
    digests: dict[str, str] = {}
    plan = LoadPlan.only("files", strings=paths, digests=digests)
    manifest = Manifest(
        source={"account": "a"},
        created="2026-01-01T00:00:00.000000Z",
        files=[FileEntry(path="p/x", digest=DIGEST, size=1)],
        lineage={"nodes": [{"id": "n"}]},
    )
    read = Manifest.read(io.BytesIO(manifest.to_json_bytes()), plan=plan)
    assert [f.path for f in read.files] == ["p/x"] and read.lineage == {}
    assert read.files[0].path is paths["p/x"] and read.files[0].digest is digests[DIGEST]
