"""``amlport diff`` of two snapshots walks each for its audit facts holding no other
snapshot's files: a side lets go of its files once compared and reads them again for its
own walk (docs/design/0007, "Peak memory of restore, ls and diff at 100k (C, session 7)");
the report is the one a diff holding both sides whole gives."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.backup import WS

import amlport.backup.sides as sides
from amlport.backup import BackupRequest, run_backup
from amlport.backup.diff import diff_sides
from amlport.backup.sides import SnapshotSide
from amlport.bundle import Repository
from amlport.storage.local import LocalSource


def test_each_walk_holds_only_its_own_snapshots_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo_path = tmp_path / "src", tmp_path / "repo"
    shutil.copytree(WS / "designer-autoprice", src)
    first = run_backup(LocalSource(src), repo_path, BackupRequest()).snapshot_id
    victim = next(p for p in sorted(src.rglob("*.json")) if p.is_file())
    victim.write_text('{"changed": "[..]\\u001b"}', encoding="utf-8")
    second = run_backup(LocalSource(src), repo_path, BackupRequest()).snapshot_id
    repo = Repository.open(repo_path)

    def pair() -> tuple[SnapshotSide, SnapshotSide]:
        load = repo.snapshots.load_exact
        return SnapshotSide(repo, load(str(first))), SnapshotSide(repo, load(str(second)))

    with repo:
        whole = diff_sides(*pair())
        a, b = pair()
        held: list[tuple[int, int]] = []  # (a's files, b's files) as each walk starts
        facts = sides.snapshot_facts

        def spy(repository: Repository, manifest):  # type: ignore[no-untyped-def]
            held.append((len(a.manifest.files), len(b.manifest.files)))
            assert manifest.files and not manifest.lineage  # read again: files and records
            return facts(repository, manifest)

        monkeypatch.setattr(sides, "snapshot_facts", spy)
        consumed = diff_sides(a, b, consume=True)
    assert consumed.to_dict() == whole.to_dict() and consumed.files["changed"] == 1
    assert held == [(0, 0), (0, 0)]  # neither side's list is held through a walk
