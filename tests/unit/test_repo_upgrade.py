"""``repo upgrade``: a format-1 repository made by amlport 0.1.0 (tests/format1/repo) becomes
format 2 in place, crash-safely, and restores and diffs exactly as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.bundle import new_repo, snapshot
from helpers.data import tree_bytes

from amlport.bundle import Repository
from amlport.bundle.upgrade import upgrade
from amlport.errors import IntegrityError

FORMAT1 = Path(__file__).resolve().parents[1] / "format1" / "repo"


def copy_format1(tmp_path: Path) -> Path:
    dest = tmp_path / "repo"
    shutil.copytree(FORMAT1, dest)
    (dest / "locks").mkdir(exist_ok=True)  # git keeps no empty folder
    return dest


def summary(repo: Repository) -> list[tuple[str, str | None, tuple[str, ...], int, int]]:
    return [(i.created.isoformat(), i.workspace, i.tags, i.assets, i.files)
            for i in repo.list_snapshots()]  # fmt: skip


def contents(repo: Repository, sid: str) -> dict[str, bytes]:
    m = repo.load_snapshot(sid)
    return {f.path: repo.get_bytes(f.digest) for f in m.files}


def test_the_format1_repository_of_0_1_0_still_reads(tmp_path: Path) -> None:
    repo = Repository.open(copy_format1(tmp_path))
    assert repo.config.version == 1
    assert len(repo.list_snapshots()) == 2 and repo.verify().ok


def test_upgrade_converts_in_place_and_keeps_every_snapshot(tmp_path: Path) -> None:
    path = copy_format1(tmp_path)
    old = Repository.open(path)
    before = summary(old)
    old_ids = [i.id for i in old.list_snapshots()]
    before_files = [contents(old, sid) for sid in old_ids]
    before_manifests = [old.load_snapshot(sid).to_dict() for sid in old_ids]
    old.close()

    repo = Repository.open(path)
    report = upgrade(repo)
    assert sorted(report.converted) == sorted(old_ids) and report.from_version == 1
    reopened = Repository.open(path)
    assert json.loads((path / "config.json").read_text())["version"] == 2
    assert reopened.config.version == 2 and reopened.id == repo.id
    assert summary(reopened) == before
    assert not list((path / "snapshots").glob("*.json"))
    new_ids = [report.converted[sid] for sid in old_ids]
    assert [contents(reopened, sid) for sid in new_ids] == before_files
    after_manifests = [reopened.load_snapshot(sid).to_dict() for sid in new_ids]
    # the same manifests, the parent mapped to the parent's new id
    for old_m, new_m in zip(before_manifests, after_manifests, strict=True):
        if old_m["parent"] is not None:
            assert new_m["parent"] == report.converted[old_m["parent"]]
            old_m["parent"] = new_m["parent"]
        old_m.pop("snapshot_id")
        assert new_m.pop("snapshot_id") != None  # noqa: E711
        assert old_m == new_m
    assert reopened.verify().ok
    assert upgrade(reopened).converted == {}  # nothing left to do


def test_upgrade_dry_run_changes_nothing(tmp_path: Path) -> None:
    path = copy_format1(tmp_path)
    before = tree_bytes(path)
    report = upgrade(Repository.open(path), dry_run=True)
    assert report.dry_run and len(report.converted) == 2
    assert tree_bytes(path) == before


def test_an_interrupted_upgrade_leaves_a_readable_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = copy_format1(tmp_path)
    expected = summary(Repository.open(path))
    from amlport.bundle.snapshots import SnapshotStore

    real = SnapshotStore.delete_format1
    calls = {"n": 0}

    def crash_after_first(self: SnapshotStore, sid: str) -> None:
        calls["n"] += 1
        if calls["n"] == 1:  # killed between the first root and the removal of its file
            raise KeyboardInterrupt
        real(self, sid)

    monkeypatch.setattr(SnapshotStore, "delete_format1", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        upgrade(Repository.open(path))
    monkeypatch.setattr(SnapshotStore, "delete_format1", real)

    half = Repository.open(path)
    assert half.config.version == 2
    assert len(list((path / "snapshots").glob("*.json"))) == 2  # both files still there
    assert summary(half) == expected  # the converted one is listed once
    assert half.verify().ok
    report = upgrade(half)  # the second run finishes
    assert len(report.converted) == 2 and report.already == 1
    done = Repository.open(path)
    assert summary(done) == expected and done.verify().ok
    assert not list((path / "snapshots").glob("*.json"))


def test_a_damaged_format1_snapshot_stops_the_upgrade_naming_it(tmp_path: Path) -> None:
    path = copy_format1(tmp_path)
    victim = sorted((path / "snapshots").glob("*.json"))[0]
    victim.write_bytes(victim.read_bytes()[:-50])
    with pytest.raises(IntegrityError, match=victim.stem[:16]):
        upgrade(Repository.open(path))
    assert Repository.open(path).config.version == 2  # config first: still readable
    assert len(list((path / "snapshots").glob("*.json"))) >= 1


def test_a_format1_repository_gets_format1_snapshots_and_a_hint(tmp_path: Path) -> None:
    warnings: list[str] = []
    repo = new_repo(tmp_path, version=1, on_warning=warnings.append)
    sid = snapshot(repo, {"files/a": b"a"})
    assert (repo.path / "snapshots" / f"{sid}.json").is_file()
    assert any("amlport repo upgrade" in w for w in warnings)
    fresh = new_repo(tmp_path, "fresh")
    snapshot(fresh, {"files/a": b"a"})
    assert fresh.config.version == 2
