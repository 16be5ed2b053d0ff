"""The incremental index: hits only on matching listing facts and a present object."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from helpers.bundle import SOURCE, index_text, new_repo, plain_only, sha
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import source_key

KEY = source_key(SOURCE)
MD5 = "0123456789abcdef0123456789abcdef"


def indexed(tmp_path: Path) -> tuple[Repository, str]:
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"blob bytes")
    index = repo.source_index(KEY)
    index.record("azureml", "ExperimentRun/dcid.r1/logs/x.txt", '"0x8DB1"', 10, MD5, digest)
    index.save()
    return repo, digest


def test_unchanged_blob_hits_after_a_reload(tmp_path: Path) -> None:
    repo, digest = indexed(tmp_path)
    index = repo.source_index(KEY)  # a new run reads the saved file
    assert len(index) == 1
    name = "ExperimentRun/dcid.r1/logs/x.txt"
    assert index.lookup("azureml", name, '"0x8DB1"', 10, MD5) == digest
    assert index.lookup("azureml", name, '"0x8DB1"', 10, MD5.upper()) == digest
    assert index.lookup("azureml", name, '"0x8DB1"', 10, None) == digest  # md5 only if both


@pytest.mark.parametrize(
    ("container", "etag", "size", "md5"),
    [
        ("azureml-blobstore-x", '"0x8DB1"', 10, MD5),  # another container
        ("azureml", '"0x8DB2"', 10, MD5),  # etag changed
        ("azureml", '"0x8DB1"', 11, MD5),  # size changed
        ("azureml", '"0x8DB1"', 10, "f" * 32),  # md5 disagrees
        ("azureml", None, 10, MD5),  # no etag: cannot prove it is unchanged
    ],
)
def test_any_difference_is_a_miss(
    tmp_path: Path, container: str, etag: str | None, size: int, md5: str
) -> None:
    repo, _ = indexed(tmp_path)
    index = repo.source_index(KEY)
    assert index.lookup(container, "ExperimentRun/dcid.r1/logs/x.txt", etag, size, md5) is None


def test_rows_share_the_strings_the_caller_holds(tmp_path: Path) -> None:
    """``known`` offers strings already in memory (the plan's listing facts): a loaded row
    holds those objects, not copies; strings it does not offer are the index's own."""
    repo, digest = indexed(tmp_path)
    name = "".join(["ExperimentRun/dcid.r1/", "logs/x.txt"])  # a new object, equal text
    etag = "".join(['"0x8', 'DB1"'])
    asked: list[tuple[str, str]] = []

    def known(container: str, row_name: str) -> tuple[str | None, ...]:
        asked.append((container, row_name))
        return (name, etag, None)

    index = repo.source_index(KEY, LoadPlan(known=known))
    assert asked == [("azureml", name)]
    rows = index._entries["azureml"]
    assert next(iter(rows)) is name
    assert rows[name].etag is etag
    assert rows[name].digest == digest and rows[name].content_md5 == MD5
    assert index.lookup("azureml", name, etag, 10, MD5) == digest


def test_pruned_object_is_a_miss(tmp_path: Path) -> None:
    repo, digest = indexed(tmp_path)
    repo.prune()  # no snapshot references it
    assert not repo.has_object(digest)
    index = repo.source_index(KEY)
    assert index.lookup("azureml", "ExperimentRun/dcid.r1/logs/x.txt", '"0x8DB1"', 10, MD5) is None


@plain_only
@pytest.mark.parametrize(
    "text",
    [
        '{"version": 1, "entries": [{"x": 1}]}',
        '{"version": 1, "entries": {}}',
        '{"version": 1}',
        '{"version": 2, "entries": []}',
        '{"version": 1, "entries": [',
        '[{"version": 1}]',
        "",
    ],
)
def test_damaged_index_is_ignored_with_a_warning(tmp_path: Path, text: str) -> None:
    warnings: list[str] = []
    repo = new_repo(tmp_path, on_warning=warnings.append)
    (repo.path / "index" / f"{KEY}.json").write_text(text)
    assert len(repo.source_index(KEY)) == 0
    assert "ignoring unreadable index" in warnings[0]


@plain_only
def test_index_rows_survive_a_save_and_load(tmp_path: Path) -> None:
    repo, digest = indexed(tmp_path)
    index = repo.source_index(KEY)
    for n in range(300):
        index.record("azureml", f"runs/{n:03}/x.txt", f'"e{n}"', n, None, digest)
    index.save()
    again = repo.source_index(KEY)
    assert len(again) == len(index) == 301
    # (rows only: a hit also needs an object of the row's size, test_repo_trust.py)
    assert again.knows("azureml", "runs/299/x.txt", '"e299"', 299, None)
    text = index_text(again.path)
    assert again.path.read_bytes()[:4] == b"\x28\xb5\x2f\xfd"  # format 2: compressed
    assert text.count("\n") == 303 and json.loads(text)["version"] == 1  # a row a line


@plain_only
def test_index_file_is_per_source_and_keys_are_safe(tmp_path: Path) -> None:
    repo, _ = indexed(tmp_path)
    assert json.loads(index_text(repo.path / "index" / f"{KEY}.json"))["source"] == KEY
    assert len(repo.source_index(source_key({**SOURCE, "account": "other"}))) == 0
    for bad in ("../escape", "a/b", "", ".hidden"):
        with pytest.raises(UsageError):
            repo.source_index(bad)
    with pytest.raises(UsageError):
        repo.source_index(KEY).record("c", "n", "e", 1, None, "md5:x")


def test_concurrent_records_are_all_saved(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"x")
    index = repo.source_index(KEY)

    def fill(worker: int) -> None:
        for i in range(200):
            index.record("c", f"{worker}/{i}", f"e{i}", 1, None, digest)

    threads = [threading.Thread(target=fill, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    index.save()
    assert len(repo.source_index(KEY)) == 800


_names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(
    rows=st.dictionaries(
        st.tuples(st.sampled_from(["azureml", "azureml-blobstore-1"]), _names),
        st.tuples(st.text(max_size=12), st.integers(0, 2**40), st.none() | st.just(MD5)),
        max_size=10,
    )
)
def test_saved_index_round_trips_any_blob_name(
    tmp_path_factory: pytest.TempPathFactory,
    rows: dict[tuple[str, str], tuple[str, int, str | None]],
) -> None:
    repo = Repository.init(tmp_path_factory.mktemp("idx") / "repo")
    digest = repo.put_bytes(b"same")
    index = repo.source_index(KEY)
    for (container, name), (etag, size, md5) in rows.items():
        index.record(container, name, etag, size, md5, digest)
    index.save()
    again = repo.source_index(KEY)
    for (container, name), (etag, size, md5) in rows.items():
        assert again.knows(container, name, etag, size, md5)  # the row, whatever its size
        assert not again.knows(container, name, etag + "x", size, md5)
    assert digest == sha(b"same")
