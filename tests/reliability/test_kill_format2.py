"""SIGKILL in the middle of a format-2 backup, prune and ``repo upgrade``: what is left is a
repository ``verify`` accepts, and the same command run again finishes the job."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

from helpers.rel_workspace import Workspace, finish, new_workspace, start
from helpers.rel_workspace import run_measured as amlport

from amlport.bundle import Repository
from amlport.model.manifest import FileEntry, Manifest, format_time

FILES = 2500


def _workspace(root: Path, version: str = "v1") -> Workspace:
    ws = new_workspace(root)
    for i in range(FILES):
        ws.put(f"{ws.blobstore.name}/data/part{i // 100:03d}/f{i:05d}.csv",
               f"{version},{i},{'x' * (i % 97)}\n")  # fmt: skip
    return ws


def _objects(repo: Path) -> int:
    base = repo / "objects" / "sha256"
    return sum(1 for _ in base.rglob("*")) if base.is_dir() else 0


def _kill_when(args: tuple[str, ...], ready: Callable[[], bool]) -> None:
    proc = start(*args)
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.popen.poll() is None, f"amlport {args[0]} ended before it could be killed"
        assert time.monotonic() < deadline, "the command made no progress"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert finish(proc, args).returncode == -signal.SIGKILL


def _verified(repo: Path) -> dict[str, object]:
    ran = amlport("verify", str(repo), "--json")
    assert ran.returncode == 0, ran.explain()
    doc: dict[str, object] = json.loads(ran.stdout)
    return doc


def test_a_backup_killed_half_way_leaves_a_repository_that_verifies(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    repo = tmp_path / "repo"
    first = amlport("backup", str(ws.root), "--repo", str(repo), "--json")
    assert first.returncode == 0, first.explain()
    ws2 = _workspace(tmp_path / "ws", "v2")  # every file changes: a long second backup
    before = _objects(repo)
    args = ("backup", str(ws2.root), "--repo", str(repo))
    _kill_when(args, lambda: _objects(repo) > before + FILES // 5)
    doc = _verified(repo)
    assert len(doc["snapshots"]) == 1  # type: ignore[arg-type]  # the killed one never appeared
    again = amlport(*args, "--json")
    assert again.returncode == 0, again.explain()
    assert len(_verified(repo)["snapshots"]) == 2  # type: ignore[arg-type]


def test_a_prune_killed_half_way_leaves_a_repository_that_verifies(tmp_path: Path) -> None:
    ws = _workspace(tmp_path / "ws")
    repo = tmp_path / "repo"
    assert amlport("backup", str(ws.root), "--repo", str(repo)).returncode == 0
    _workspace(tmp_path / "ws", "v2")
    assert amlport("backup", str(ws.root), "--repo", str(repo)).returncode == 0
    forgot = amlport("forget", str(repo), "--keep-last", "1")
    assert forgot.returncode == 0, forgot.explain()
    full = _objects(repo)
    args = ("forget", str(repo), "--keep-last", "1", "--prune")
    _kill_when(args, lambda: _objects(repo) < full - FILES // 5)
    assert len(_verified(repo)["snapshots"]) == 1  # type: ignore[arg-type]
    # The killed prune's exclusive lock is stale (its pid is gone): the re-run takes over.
    again = amlport(*args, "--json")
    assert again.returncode == 0, again.explain()
    assert _objects(repo) < full - FILES
    assert len(_verified(repo)["snapshots"]) == 1  # type: ignore[arg-type]


def _format1_repository(path: Path, snapshots: int, files: int) -> None:
    repo = Repository.init(path, version=1)
    with repo.store.synced_together():
        entries = [
            FileEntry(f"files/ws/data/f{i:05d}.csv", repo.put_bytes(f"{i}".encode()), len(str(i)))
            for i in range(files)
        ]
    source = {"account": "killws", "endpoint": "core.windows.net",
              "containers": {"blobstore": "b", "artifacts": "a"}, "datastores": {}}  # fmt: skip
    parent = None
    for n in range(snapshots):
        created = format_time(datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(hours=n))
        m = Manifest(source=source, files=entries[: files - n], parent=parent, created=created)
        parent = repo.write_snapshot(m)
    repo.close()


def test_an_upgrade_killed_half_way_leaves_a_repository_that_verifies(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _format1_repository(repo, snapshots=25, files=2000)
    listed = amlport("snapshots", str(repo), "--json")
    assert listed.returncode == 0, listed.explain()
    expected = len(json.loads(listed.stdout)["snapshots"])

    def some_converted() -> bool:
        names = [p.name for p in (repo / "snapshots").iterdir()]
        return sum(1 for n in names if not n.endswith(".json") and "." not in n) >= 3

    args = ("repo", "upgrade", str(repo))
    _kill_when(args, some_converted)
    doc = _verified(repo)
    assert doc["snapshots"]  # both forms of the snapshots read
    listed = amlport("snapshots", str(repo), "--json")
    assert listed.returncode == 0 and len(json.loads(listed.stdout)["snapshots"]) == expected
    again = amlport(*args, "--json")
    assert again.returncode == 0, again.explain()
    assert not list((repo / "snapshots").glob("*.json"))
    assert len(_verified(repo)["snapshots"]) == expected  # type: ignore[arg-type]
