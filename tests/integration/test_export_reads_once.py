"""A backup reads each blob from storage at most once: the walk's reads serve the transfer.

Over a real workspace folder (the storage calls are what is counted), whole workspace with
the catch-all, then an unchanged second backup reads no payload again; with the read cache
(``walk/cache.py``) it reads none of the files the walk parses either, and finds the same.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from helpers import azurite as az
from helpers.cliutil import amlport

from amlport.backup.run import BackupRequest, BackupResult, run_backup
from amlport.bundle import Repository
from amlport.export.writer import BundleWriter
from amlport.model import findings as F
from amlport.storage.base import Source, SourceWrapper
from amlport.storage.local import LocalSource
from amlport.storage.reuse import ReusingSource
from amlport.walk import walk

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"


class _Counting:
    """Counts the storage reads of each blob of the source it is mixed into."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.reads: Counter[tuple[str, str]] = Counter()
        self._mutex = threading.Lock()

    def _count(self, container: str, name: str) -> None:
        with self._mutex:
            self.reads[(container, name)] += 1

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        self._count(container, name)
        return super().read_bytes(container, name, max_bytes=max_bytes)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        self._count(container, name)
        return super().open_stream(container, name)


class CountingSource(_Counting, LocalSource):
    """A real local source that counts the storage reads of each blob; it stands in for
    remote storage, where a second read is a request (a plain local copy rereads from the
    page cache, and the export keeps none of its reads: storage/reuse.py)."""

    rereads_cheaply = False


@pytest.mark.parametrize("name", ["designer-autoprice", "v2-lendingclub"])
def test_backup_reads_every_blob_at_most_once(name: str, tmp_path: Path) -> None:
    source = CountingSource(WS / name)
    listed = {b.key: b.size for b in source.list_blobs()}
    result = run_backup(source, tmp_path / "repo", BackupRequest(workers=4))
    assert result.snapshot_id is not None
    manifest = Repository.open(tmp_path / "repo").load_snapshot(result.snapshot_id)
    stored = {(f.original["container"], f.original["path"]) for f in manifest.files if f.original}
    assert stored == set(listed)  # every blob is in the snapshot …
    twice = {key: n for key, n in source.reads.items() if n > 1}
    assert twice == {}  # … and none was fetched twice
    empty = {key for key, size in listed.items() if size == 0}
    assert not empty & set(source.reads)  # empty blobs: the listing says it all

    again = CountingSource(WS / name)
    second = run_backup(again, tmp_path / "repo", BackupRequest(workers=4))
    assert second.export.stats is not None and second.export.stats.read_bytes == 0
    assert second.changes is not None and second.changes.to_dict()["files"]["changed"] == 0


def test_unchanged_backup_lets_the_walk_reads_go_before_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The walk's reads are kept for the transfer; on an unchanged re-backup the index
    says none will be needed, so none is held while the files are checked."""
    held: list[tuple[int, int]] = []  # (kept bytes, files planned) as each transfer starts
    transfer = BundleWriter.transfer

    def spy(self: BundleWriter, *args: Any, **kwargs: Any) -> Any:
        assert isinstance(self.source, ReusingSource)
        held.append((self.source.kept_bytes, len(self.blobs)))
        return transfer(self, *args, **kwargs)

    monkeypatch.setattr(BundleWriter, "transfer", spy)
    for _ in range(2):  # --force: walk and plan again (not decided from the listing)
        request = BackupRequest(force=True)
        run_backup(CountingSource(WS / "designer-autoprice"), tmp_path / "r", request)
    (first_kept, planned), (second_kept, planned_again) = held
    assert first_kept > 0 and planned_again == planned  # the walk read the same files
    assert second_kept == 0


def _cached_backup(source: LocalSource, repo: Path, cache: Path) -> BackupResult:
    # --force: the walk runs (with its cache) even when the listing decides the snapshot
    return run_backup(source, repo, BackupRequest(workers=4, cache_dir=cache, force=True))


def _findings(root: Path) -> list[tuple[str, str, str]]:
    return sorted((f.code, f.path, f.message) for f in walk(LocalSource(root)).findings)


@pytest.mark.parametrize("name", ["designer-autoprice", "v2-lendingclub", "messy"])
def test_an_unchanged_backup_takes_the_parsed_files_from_the_cache(
    name: str, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    first = CountingSource(WS / name)
    one = _cached_backup(first, tmp_path / "repo", cache)
    assert one.export.cached_reads == 0
    flagged = {path for _, path, _ in _findings(WS / name)}
    walk_only = CountingSource(WS / name)
    walk(walk_only)

    again = CountingSource(WS / name)
    two = _cached_backup(again, tmp_path / "repo", cache)
    read_again = {f"{c}/{n}" for c, n in again.reads}
    assert read_again <= flagged  # only files with a finding are read again ...
    assert two.export.cached_reads == len(walk_only.reads) - len(read_again) > 0
    assert two.changes is not None and not two.changes.different  # ... and nothing differs
    repo = Repository.open(tmp_path / "repo")
    a, b = (repo.load_snapshot(r.snapshot_id or "") for r in (one, two))
    assert (a.assets, a.lineage, a.files) == (b.assets, b.lineage, b.files)
    assert a.warnings == b.warnings  # an unchanged file's rewrite warnings are carried over


def test_a_file_with_a_secret_is_never_cached_and_is_read_every_time(
    tmp_path: Path,
) -> None:
    cache = tmp_path / "cache"
    secret_files = {p for code, p, _ in _findings(WS / "messy") if code == F.SECRET_IN_FILE}
    assert secret_files  # the fixture has them
    for _ in range(2):
        source = CountingSource(WS / "messy")
        _cached_backup(source, tmp_path / "repo", cache)
        assert secret_files <= {f"{c}/{n}" for c, n in source.reads}  # the walk sees them
    (db,) = cache.glob("walk-*.sqlite")
    rows = {
        f"{c}/{n}": data
        for c, n, data in sqlite3.connect(db).execute("SELECT container, name, data FROM reads")
    }
    assert rows and not secret_files & set(rows)


def test_a_changed_file_is_read_again_and_its_new_content_counts(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WS / "designer-autoprice", ws)
    cache = tmp_path / "cache"
    _cached_backup(CountingSource(ws), tmp_path / "repo", cache)
    log = next(ws.glob("azureml/ExperimentRun/*/logs/azureml/executionlogs.txt"))
    log.write_text(log.read_text() + "one more line\n")
    again = CountingSource(ws)
    result = _cached_backup(again, tmp_path / "repo", cache)
    key = ("azureml", log.relative_to(ws / "azureml").as_posix())
    assert again.reads[key] == 1  # read once: for the walk, and the transfer reused it
    assert result.changes is not None and result.changes.to_dict()["files"]["changed"] == 1


@pytest.mark.azurite
def test_the_cli_uses_the_cache_over_azure_unless_told_not_to(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace], tmp_path: Path
) -> None:
    ws = azurite_workspaces["designer-autoprice"]
    cache = tmp_path / "cli-cache"
    argv = ["backup", ws.url, "--repo", str(tmp_path / "repo"), "--json"]
    argv += ["--workspace-file", str(ws.descriptor_file), "--cache-dir", str(cache)]
    env = {"AZURE_STORAGE_CONNECTION_STRING": ws.account.connection_string}
    extras = ((), ("--force",), ("--no-cache", "--force"))  # --force: the walk runs
    runs = [amlport(*argv, *extra, env=env) for extra in extras]
    for res in runs:
        assert res.returncode == 0, res.stderr
    first, second, uncached = (json.loads(r.stdout)["cached_reads"] for r in runs)
    assert first == 0 and second > 0 and uncached == 0
    assert [p.name for p in cache.iterdir()] == [next(cache.glob("walk-*.sqlite")).name]
    assert ws.account.key not in (cache / next(cache.iterdir()).name).read_bytes().decode("latin-1")


def test_a_rewriter_warning_is_matched_to_its_file_whatever_the_path_holds() -> None:
    from amlport.export.copy import warned_file as _warned_file
    from amlport.model.manifest import FileEntry

    files = {
        p: FileEntry(path=p, digest="sha256:" + "0" * 64, size=1)
        for p in ("files/ws/UI/a b: c.yaml", "files/ws/UI/a", "files/ws/x.log")
    }
    assert _warned_file("files/ws/UI/a b: c.yaml /inputs/p (and 2 more): m", files) == (
        "files/ws/UI/a b: c.yaml"
    )
    assert _warned_file("files/ws/x.log: invalid JSON; rewritten as plain text", files) == (
        "files/ws/x.log"
    )
    assert _warned_file("not exported: files/ws/x.log: cannot reach", files) is None
    assert _warned_file("skipped model:m: no exporter", files) is None


def _held_at_transfer(monkeypatch: pytest.MonkeyPatch) -> list[tuple[set[Any], int]]:
    """(the blobs kept in memory, the files the read cache serves) as each transfer starts."""
    held: list[tuple[set[Any], int]] = []
    transfer = BundleWriter.transfer

    def spy(self: BundleWriter, *args: Any, **kwargs: Any) -> Any:
        assert isinstance(self.source, ReusingSource)
        cached = sum(len(names) for names in getattr(self.source, "_cached", {}).values())
        held.append((set(self.source._kept), cached))
        return transfer(self, *args, **kwargs)

    monkeypatch.setattr(BundleWriter, "transfer", spy)
    return held


@pytest.mark.parametrize("name", ["messy", "v2-lendingclub"])
def test_the_files_the_read_cache_holds_are_not_kept_in_memory_for_the_transfer(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first backup with a read cache: the walk's clean reads are in the cache, and the
    transfer takes them from there, not from memory and not from storage; only files the
    cache may not hold (a finding came with them) are kept in memory. The snapshot is the
    one made without a cache."""
    held = _held_at_transfer(monkeypatch)
    source = CountingSource(WS / name)
    one = _cached_backup(source, tmp_path / "repo", tmp_path / "cache")
    assert {key: n for key, n in source.reads.items() if n > 1} == {}  # each read once
    ((kept, cached),) = held
    assert not kept & _rows(tmp_path / "cache")  # what the cache holds is not kept too
    assert cached > 0 and cached >= len(kept)
    plain = run_backup(CountingSource(WS / name), tmp_path / "plain", BackupRequest(workers=4))
    a = Repository.open(tmp_path / "repo").load_snapshot(one.snapshot_id or "")
    b = Repository.open(tmp_path / "plain").load_snapshot(plain.snapshot_id or "")
    assert (a.assets, a.lineage, a.files) == (b.assets, b.lineage, b.files)
    assert a.warnings == b.warnings


def _rows(cache: Path) -> set[tuple[str, str]]:
    (db,) = cache.glob("walk-*.sqlite")
    with sqlite3.connect(db) as conn:
        return set(conn.execute("SELECT container, name FROM reads"))


class CountingReads(_Counting, SourceWrapper):
    """Counts the reads that reach the Azure source (the requests)."""

    def read_many(self, blobs: Any, *, max_bytes: int | None = None, workers: int = 8) -> Any:
        return Source.read_many(self, blobs, max_bytes=max_bytes, workers=workers)


AZURITE_HOSTILE = ["x[/]y", "[bold]", "a..b/..c", "L" * 1000]  # see test_azure_listing


@pytest.mark.azurite
def test_over_azure_the_transfer_takes_the_walks_reads_from_the_cache(
    azurite: az.Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over Azurite, with hostile names among the files the walk reads: each blob is read
    once (the walk's), the cached ones come from the cache and not from memory, and the
    snapshot is the one a backup without a cache makes."""
    import uuid

    from amlport.storage.opener import StorageAuth, open_source

    descriptor, store, _ = az.upload_renamed_workspace(
        azurite.source, WS / "designer-autoprice", tmp_path, f"ro{uuid.uuid4().hex[:10]}"
    )
    blobs = azurite.source.service_client().get_container_client(store)
    for i, hostile in enumerate(AZURITE_HOSTILE):
        blobs.upload_blob(f"UI/{hostile}/conf{i}.yaml", f"name: n{i}\nvalue: {i}\n".encode())
    blobs.upload_blob("UI/[s]/settings.py", b'KEY = "AccountKey=' + b"A" * 86 + b'=="\n')
    auth = StorageAuth(connection_string=azurite.source.connection_string)
    held = _held_at_transfer(monkeypatch)

    def backup(repo: Path, cache: Path | None) -> tuple[BackupResult, CountingReads]:
        with open_source(azurite.source.url, workspace_file=descriptor, auth=auth) as src:
            counting = CountingReads(src)
            request = BackupRequest(workers=4, cache_dir=cache, force=True)
            return run_backup(counting, repo, request), counting

    one, counted = backup(tmp_path / "repo", tmp_path / "cache")
    assert {key: n for key, n in counted.reads.items() if n > 1} == {}
    for i, hostile in enumerate(AZURITE_HOSTILE):
        assert counted.reads[(store, f"UI/{hostile}/conf{i}.yaml")] == 1
    ((kept, cached),) = held
    rows = _rows(tmp_path / "cache")
    assert not kept & rows  # what the cache holds is not kept in memory too …
    assert {(store, f"UI/{h}/conf{i}.yaml") for i, h in enumerate(AZURITE_HOSTILE)} <= rows
    assert (store, "UI/[s]/settings.py") in kept  # … a finding: never cached, kept in memory
    assert cached >= len(AZURITE_HOSTILE)
    plain, _ = backup(tmp_path / "plain", None)
    a = Repository.open(tmp_path / "repo").load_snapshot(one.snapshot_id or "")
    b = Repository.open(tmp_path / "plain").load_snapshot(plain.snapshot_id or "")
    assert (a.assets, a.files) == (b.assets, b.files)
