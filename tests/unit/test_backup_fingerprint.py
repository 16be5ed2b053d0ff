"""The listing fingerprint of a backup (``backup/fingerprint.py``): every input it covers
changes it, and nothing else does (how the blobs are batched while hashing)."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from amlport.backup import fingerprint as fp
from amlport.backup.fingerprint import Fingerprint, context, recorded
from amlport.export.transfer import TransferStats
from amlport.storage.base import BlobInfo

SOURCE = {"account": "acct", "containers": ["azureml-blobstore-x", "azureml"]}
OPTIONS = {"select": [], "include": ["data", "models"], "extension": "backup-catch-all"}
BLOBS = [
    BlobInfo("azureml", "ExperimentRun/dcid.r1/outputs/model.pkl", 10, '"0x8D1"', "ab" * 16),
    BlobInfo("azureml-blobstore-x", "LocalUpload/a/train.py", 20, "17a-14", None),
]
HOSTILE = [
    "[x]/..",
    "../../etc/passwd",
    "a\nb\rc\x00d\x1b[31m",
    "\u202e.txt",
    "n" * 1024,
    "lone\udc80surrogate",
    "q'uo\"te\\",
]


def digest_of(blobs: Iterable[BlobInfo], ctx: dict[str, object] | None = None) -> str:
    f = Fingerprint(ctx if ctx is not None else context(SOURCE, OPTIONS))
    for blob in blobs:
        f.add(blob)
    return f.digest()


def test_the_same_inputs_give_the_same_fingerprint() -> None:
    assert digest_of(BLOBS) == digest_of(list(BLOBS))
    assert digest_of(BLOBS).startswith("sha256:") and len(digest_of(BLOBS)) == 71


def test_batching_does_not_change_it() -> None:
    many = [BlobInfo("c", f"f{i:06}", i, f"e{i}") for i in range(3 * fp._BATCH + 7)]
    whole = digest_of(many)
    f = Fingerprint(context(SOURCE, OPTIONS))
    for i, blob in enumerate(many):
        f.add(blob)
        if i % 1000 == 0:
            f.digest()  # a digest part-way does not disturb the stream
    assert f.digest() == whole and f.blobs == len(many)


@pytest.mark.parametrize(
    "change",
    [
        lambda b: BlobInfo(b.container, b.name, b.size + 1, b.etag, b.content_md5),
        lambda b: BlobInfo(b.container, b.name, b.size, (b.etag or "") + "1", b.content_md5),
        lambda b: BlobInfo(b.container, b.name, b.size, b.etag, "cd" * 16),
        lambda b: BlobInfo(b.container, b.name + "x", b.size, b.etag, b.content_md5),
        lambda b: BlobInfo("azureml-other", b.name, b.size, b.etag, b.content_md5),
    ],
    ids=["size", "etag-or-mtime", "md5", "name", "container"],
)
def test_any_change_of_one_blob_changes_it(change: object) -> None:
    changed = [change(BLOBS[0]), BLOBS[1]]  # type: ignore[operator]
    assert digest_of(changed) != digest_of(BLOBS)


def test_a_blob_added_removed_or_moved_changes_it() -> None:
    base = digest_of(BLOBS)
    assert digest_of([*BLOBS, BlobInfo("azureml", "new", 0, "e")]) != base
    assert digest_of(BLOBS[:1]) != base
    assert digest_of(list(reversed(BLOBS))) != base  # listing order is part of it


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_names_are_hashed_unambiguously(name: str) -> None:
    blob = BlobInfo("azureml", name, 1, "e")
    assert digest_of([*BLOBS, blob]) != digest_of(BLOBS)
    # the name cannot be mistaken for a neighbour's fields, however it is cut
    left = BlobInfo("azureml", name + "\n", 1, "e")
    right = BlobInfo("azureml", name, 1, "e\n")
    assert digest_of([left]) != digest_of([right]) != digest_of([blob])


def test_names_that_concatenate_alike_differ() -> None:
    a = [BlobInfo("c", "a\n", 1, "e"), BlobInfo("c", "b", 1, "e")]
    b = [BlobInfo("c", "a", 1, "e"), BlobInfo("c", "\nb", 1, "e")]
    assert digest_of(a) != digest_of(b)


@pytest.mark.parametrize(
    "ctx",
    [
        {"source": {**SOURCE, "account": "other"}},
        {"options": {**OPTIONS, "include": ["models"]}},
        {"options": {**OPTIONS, "select": ["model:m:1"]}},
        {"options": {**OPTIONS, "extension": None}},
        {"amlport": "99.0.0"},
        {"rules": "0" * 64},
        {"plugins": [["amlport.exporters.v1", "x", "pkg:X", "pkg 1.0"]]},
    ],
    ids=["source", "include", "select", "catch-all", "version", "rules", "plugins"],
)
def test_every_part_of_the_context_changes_it(ctx: dict[str, object]) -> None:
    assert digest_of(BLOBS, {**context(SOURCE, OPTIONS), **ctx}) != digest_of(BLOBS)


def test_the_version_comes_from_amlport(monkeypatch: pytest.MonkeyPatch) -> None:
    before = digest_of(BLOBS)
    monkeypatch.setattr(fp, "__version__", "0.0.0-other")
    assert digest_of(BLOBS) != before


def test_a_snapshot_records_it_and_other_schemes_never_match() -> None:
    f = Fingerprint(context(SOURCE, OPTIONS))
    for blob in BLOBS:
        f.add(blob)
    record = f.record()
    assert recorded({fp.FIELD: record}) == f.digest() and record["blobs"] == 2
    assert recorded({fp.FIELD: {**record, "scheme": "amlport.listing/0"}}) is None
    assert recorded({}) is None and recorded({fp.FIELD: "sha256:x"}) is None


def test_a_run_with_a_failure_records_no_fingerprint() -> None:
    from amlport.backup.catchall import RecordingSource
    from amlport.backup.run import _recorder

    class Empty(RecordingSource):
        def __init__(self) -> None:
            self.read_errors = 0

    src = Empty()
    record = _recorder(src, Fingerprint(context(SOURCE, OPTIONS)))
    assert fp.FIELD in record(TransferStats())
    failed = TransferStats()
    failed.fail("files/x", "boom")
    assert record(failed) == {}
    src.read_errors = 1
    assert record(TransferStats()) == {}
