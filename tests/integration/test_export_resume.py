"""An interrupted export leaves no snapshot; the re-run reuses what was stored and completes."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import BinaryIO

import pytest

from amlport.bundle import Repository
from amlport.errors import SourceError
from amlport.export import ExportRequest, run_export
from amlport.storage.local import LocalSource

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"


class FlakySource(LocalSource):
    """A real local source whose reads start failing after ``budget`` of them (an outage)."""

    def __init__(self, root: Path, budget: int, exc: BaseException) -> None:
        super().__init__(root)
        self.budget = budget
        self.exc = exc
        self._lock = threading.Lock()

    def _spend(self) -> None:
        with self._lock:
            self.budget -= 1
            if self.budget < 0:
                raise self.exc

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        if max_bytes is None:  # the walk reads with a bound; the export reads whole files
            self._spend()
        return super().read_bytes(container, name, max_bytes=max_bytes)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        self._spend()
        return super().open_stream(container, name)


def test_interrupted_export_leaves_no_snapshot_and_resumes(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    flaky = FlakySource(WS / "v2-lendingclub", budget=40, exc=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_export(flaky, repo, ExportRequest(workers=1))
    store = Repository.open(repo)
    assert store.list_snapshots() == []
    # objects by name (a killed writer's temp files are not objects: prune sweeps them)
    before = set(store.objects.iter_digests())
    assert before
    again = run_export(LocalSource(WS / "v2-lendingclub"), repo, ExportRequest())
    fresh = run_export(LocalSource(WS / "v2-lendingclub"), tmp_path / "fresh", ExportRequest())
    assert again.snapshot_id is not None and again.stats is not None and fresh.stats is not None
    assert not again.stats.failures
    # What the interrupted run stored is not stored again: of the objects the finished
    # snapshot names, only those the interrupted run had not stored are new (+1 of slack, as
    # before). Counted against the snapshot's own files, since the
    # interrupted run may also have stored pieces the snapshot does not name as files.
    with Repository.open(repo) as done:
        named = {f.digest for f in done.load_snapshot(str(again.snapshot_id)).files}
    assert again.stats.new_objects <= fresh.stats.new_objects - len(named & before) + 1
    assert Repository.open(repo).verify().ok


def test_storage_errors_make_a_partial_snapshot_exit_3(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    flaky = FlakySource(WS / "sdk-bikeshare", budget=10, exc=SourceError("storage went away"))
    result = run_export(flaky, repo, ExportRequest(workers=2))
    assert int(result.exit_code) == 3 and result.stats is not None and result.stats.failures
    manifest = Repository.open(repo).load_snapshot(str(result.snapshot_id))
    assert manifest.stats["complete"] is False
    done = run_export(LocalSource(WS / "sdk-bikeshare"), repo, ExportRequest())
    assert int(done.exit_code) in (0, 1) and done.stats is not None and not done.stats.failures
