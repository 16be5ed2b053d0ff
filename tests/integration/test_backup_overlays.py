"""A backup after a 1 % change stores overlays of its parent's lists (docs/design/0007,
"Overlays"): the snapshot reads back exactly as the one a full write makes, and it adds
the overlays and the changed files, not chunks and nodes (issue 18)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from amlport.bundle import Repository, trees
from amlport.bundle.snapshots import SnapshotStore
from amlport.export import ExportRequest, run_export
from amlport.storage.local import LocalSource

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "designer-history"


def _backup(source: Path, repo: Path) -> str:
    result = run_export(LocalSource(source), repo, ExportRequest())
    return result.snapshot_id  # type: ignore[return-value]


def _comparable(manifest: Any) -> dict[str, Any]:
    skip = ("snapshot_id", "created", "stats")
    return {k: v for k, v in manifest.to_dict().items() if k not in skip}


def _new_meta(repo: Path, before: set[str], sid: str) -> int:
    with Repository.open(repo) as r:
        pieces = r.snapshots.pieces(sid)[1]
        return sum(r.objects.size(d) or 0 for d in pieces - before)


def test_a_one_percent_change_is_stored_as_overlays_that_read_back_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WS, ws)
    repo, full = tmp_path / "r", tmp_path / "full"
    first = _backup(ws, repo)
    shutil.copytree(repo, full)
    with Repository.open(repo) as r:
        before = r.snapshots.pieces(first)[1]
    victims = sorted(p for p in ws.rglob("*") if p.is_file())[::100]  # 1 % of the files
    for path in victims:
        path.write_bytes(path.read_bytes() + b"\nchanged by the test\n")
    second = _backup(ws, repo)
    with monkeypatch.context() as m:  # the same backup, every list written whole
        m.setattr(SnapshotStore, "_lists_of", lambda self, parent: None)
        second_full = _backup(ws, full)
    with Repository.open(repo) as r, Repository.open(full) as f:
        root = r.snapshots.read_root(second)
        assert root["format"] == trees.ROOT_FORMAT_OVERLAYS
        assert trees.is_overlay(root["lists"]["files"])
        assert not any(map(trees.is_overlay, f.snapshots.read_root(second_full)["lists"].values()))
        loaded = r.load_snapshot(second)
        assert _comparable(loaded) == _comparable(f.load_snapshot(second_full))
        assert r.verify().ok
    overlays, whole = _new_meta(repo, before, second), _new_meta(full, before, second_full)
    assert overlays < whole / 2, (overlays, whole)
    assert overlays < 2048 * len(victims)
