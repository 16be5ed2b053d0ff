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


HOSTILE_NAMES = [
    "runs/[x]/../y.txt",
    "a]b[c/..",
    "ctl\x01\x1b[31m\x7f/z",
    "n" * 1024,
    "sp ace/ü/名前",
]


def _prefix(container: str) -> str:
    """An export's prefix of a container's rows (``BundlePlan.path_prefix``)."""
    return f"files/{container.rsplit('/', 1)[-1]}-store/"


def _saved_rows(repo: Repository) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = json.loads(index_text(repo.source_index(KEY).path))["entries"]
    return rows


@plain_only
def test_rows_keyed_by_the_callers_paths_are_saved_as_blob_names(tmp_path: Path) -> None:
    """With a prefix (an export: ``files/<datastore>/``) a row's key in memory is its file's
    bundle path, the caller's own string object when it offers it (``record(key=)``, and
    ``known`` on a load); the file still holds the blob names, byte for byte what an index
    without a prefix writes, and any name survives, hostile ones too."""
    plain_repo, with_repo = new_repo(tmp_path / "plain"), new_repo(tmp_path / "with")
    digests = [repo.put_bytes(b"bytes") for repo in (plain_repo, with_repo)]
    plain = plain_repo.source_index(KEY)
    keyed = with_repo.source_index(KEY, LoadPlan(prefix=_prefix))
    paths: dict[tuple[str, str], str] = {}
    for container in ("azureml", "rewritten/1.0/azureml"):
        for n, name in enumerate(HOSTILE_NAMES):
            path = paths[container, name] = "".join([_prefix(container), name])
            plain.record(container, name, f'"e{n}"', n, None, digests[0])
            keyed.record(container, name, f'"e{n}"', n, None, digests[1], key=path)
    for container, rows in keyed._entries.items():
        assert all(key is paths[container, key[len(_prefix(container)) :]] for key in rows)
    assert keyed.knows("azureml", HOSTILE_NAMES[3], '"e3"', 3, None)
    assert not keyed.knows("azureml", HOSTILE_NAMES[3], '"e3"', 4, None)
    plain.save()
    keyed.save()
    assert plain.path.read_bytes() == keyed.path.read_bytes()
    names = {(r["container"], r["name"]) for r in _saved_rows(with_repo)}
    assert names == set(paths)

    def known(container: str, name: str) -> tuple[str | None, ...]:
        return (paths.get((container, name)),)

    again = with_repo.source_index(KEY, LoadPlan(known=known, prefix=_prefix))
    assert len(again) == len(paths)
    for (container, name), path in paths.items():
        rows = again._entries[container]
        key = next(k for k in rows if k == path)
        assert key is path  # the caller's object, not a copy
        n = HOSTILE_NAMES.index(name)
        assert again.knows(container, name, f'"e{n}"', n, None)
    for name in HOSTILE_NAMES:  # removable by name
        again.forget("azureml", name)
    assert len(again) == len(HOSTILE_NAMES)


def test_a_key_that_is_not_the_prefix_and_name_is_not_used(tmp_path: Path) -> None:
    """``record(key=)`` keeps the caller's string only when it is the prefix + the name:
    a wrong one (a caller's mistake) cannot file a row under another blob's name."""
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"x")
    index = repo.source_index(KEY, LoadPlan(prefix=_prefix))
    for wrong in ("files/azureml-store/other", "files/other-store/a", "a", ""):
        index.record("azureml", "a", "e", 1, None, digest, key=wrong)
    assert list(index._entries["azureml"]) == ["files/azureml-store/a"]
    assert index.knows("azureml", "a", "e", 1, None)
    assert not index.knows("azureml", "other", "e", 1, None)


@plain_only
def test_a_local_etag_is_held_as_its_mtime_and_matches_only_its_own_text(
    tmp_path: Path,
) -> None:
    """A local copy's etag ``<mtime ns hex>-<size hex>`` is held as an int (a row's etag
    text cost more than the row); any other text, even one that parses to the same numbers,
    is held as it is: a row matches exactly the etag it was recorded with, saved or not."""
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"x")
    index = repo.source_index(KEY)
    local = f"{1_765_000_000_123_456_789:x}-{1000:x}"
    others = [
        local.upper(),  # other digits
        "0" + local,  # a leading zero
        local.replace("-", "-0"),
        f"6_e5-{1000:x}",  # int() would take it
        "+" + local,
        local + " ",
        f"{1:x}-{999:x}",  # another size than the row's
        '"0x8DB1"',
        "-3e8",
        "",
    ]
    rows = [(f"f{n}", etag) for n, etag in enumerate([local, *others])]
    for name, etag in rows:
        index.record("c", name, etag, 1000, None, digest)
    entries = index._entries["c"]
    assert isinstance(entries["f0"].tag, int)
    assert all(isinstance(entries[name].tag, str) for name, _ in rows[1:])
    index.save()
    again = repo.source_index(KEY)
    for held in (index, again):
        for name, etag in rows:
            assert held._entries["c"][name].etag == etag
            assert held.knows("c", name, etag, 1000, None)
            for _, other in rows:
                if other != etag:
                    assert not held.knows("c", name, other, 1000, None)
    assert isinstance(again._entries["c"]["f0"].tag, int)
    saved = {r["name"]: r["etag"] for r in _saved_rows(repo)}
    assert saved == dict(rows)
