"""An unchanged re-backup costs the listing: unchanged files are recognised from the index
(etag: a local file's mtime and size) without a worker or a read, and the comparison with
the previous snapshot reads none of its lists that are the same pieces (issue 18)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from amlport.bundle import Repository
from amlport.export import ExportRequest, complete_previous, run_export
from amlport.export.writer import BundleWriter
from amlport.storage.local import LocalSource

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"


def _export(source: Path, repo: Path) -> object:
    return run_export(LocalSource(source), repo, ExportRequest())


def test_unchanged_files_are_reused_without_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "r"
    first = _export(WS / "sdk-bikeshare", repo)
    attempted: list[str] = []
    attempt = BundleWriter._attempt

    def counting(self: BundleWriter, repo: object, index: object, carried: object,
                 path: str, blob: object) -> None:  # fmt: skip
        attempted.append(path)
        attempt(self, repo, index, carried, path, blob)  # type: ignore[arg-type]

    monkeypatch.setattr(BundleWriter, "_attempt", counting)
    second = _export(WS / "sdk-bikeshare", repo)
    stats = second.stats  # type: ignore[attr-defined]
    assert attempted == []  # every file was recognised on the planning thread
    assert stats.read_bytes == 0 and stats.new_objects == 0 and not stats.failures
    assert stats.files == first.stats.files and stats.reused > 0  # type: ignore[attr-defined]
    # the same snapshot content as the first (rewrites and warnings carried over)
    before = Repository.open(repo).load_snapshot(first.snapshot_id)  # type: ignore[attr-defined]
    after = Repository.open(repo).load_snapshot(second.snapshot_id)  # type: ignore[attr-defined]
    assert after.files == before.files and after.rewrites == before.rewrites
    assert after.redactions == before.redactions and after.warnings == before.warnings


def test_unchanged_comparison_reads_no_list_of_the_previous_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "r"
    _export(WS / "sdk-bikeshare", repo)
    second = _export(WS / "sdk-bikeshare", repo)
    previous = second.previous  # type: ignore[attr-defined]
    whole = Repository.open(repo).load_snapshot(previous.snapshot_id)
    with Repository.open(repo) as store:

        def refuse(*_a: object, **_k: object) -> None:
            raise AssertionError("the previous snapshot was read again")

        monkeypatch.setattr(store.snapshots, "load_exact", refuse)
        done = complete_previous(store, previous, second.manifest)  # type: ignore[attr-defined]
    assert done.files is previous.files
    assert done.to_json_bytes() == whole.to_json_bytes()


def test_changed_comparison_still_reads_the_previous_snapshot(tmp_path: Path) -> None:
    source = tmp_path / "ws"
    shutil.copytree(WS / "sdk-bikeshare", source)
    repo = tmp_path / "r"
    _export(source, repo)
    # a new file makes a new asset (the catch-all is backup's; an export plans the closure)
    [mlmodel, *_] = sorted(source.rglob("MLmodel"))
    mlmodel.write_text(mlmodel.read_text() + "\n# changed\n")
    second = _export(source, repo)
    previous = second.previous  # type: ignore[attr-defined]
    whole = Repository.open(repo).load_snapshot(previous.snapshot_id)
    with Repository.open(repo) as store:
        done = complete_previous(store, previous, second.manifest)  # type: ignore[attr-defined]
    assert done.to_json_bytes() == whole.to_json_bytes()
