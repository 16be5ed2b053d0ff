"""A backup reads each blob from storage at most once: the walk's reads serve the transfer.

Over a real workspace folder (the storage calls are what is counted), whole workspace with
the catch-all, then an unchanged second backup reads no payload again.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from amlport.backup.run import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.export.writer import BundleWriter
from amlport.storage.local import LocalSource
from amlport.storage.reuse import ReusingSource

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"


class CountingSource(LocalSource):
    """A real local source that counts the storage reads of each blob."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
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
    for _ in range(2):
        run_backup(CountingSource(WS / "designer-autoprice"), tmp_path / "r", BackupRequest())
    (first_kept, planned), (second_kept, planned_again) = held
    assert first_kept > 0 and planned_again == planned  # the walk read the same files
    assert second_kept == 0
