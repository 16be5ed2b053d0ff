"""SIGKILL in the middle of a format-2 backup, prune and ``repo upgrade``: what is left is a
repository ``verify`` accepts, and the same command run again finishes the job. Local
repositories, and a backup and prune into an ``az://`` repository (Azurite). With
``AMLPORT_TEST_ENCRYPT=1`` the ``amlport`` processes create encrypted repositories
(``tests/conftest.py``), so ``make test-encrypted`` repeats every proof on one."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.rel_workspace import Workspace, finish, new_workspace, start
from helpers.rel_workspace import run_measured as amlport

from amlport.bundle import Repository
from amlport.model.manifest import FileEntry, Manifest, format_time

FILES = 2500


def _workspace(root: Path, version: str = "v1", files: int = FILES) -> Workspace:
    ws = new_workspace(root)
    for i in range(files):
        ws.put(f"{ws.blobstore.name}/data/part{i // 100:03d}/f{i:05d}.csv",
               f"{version},{i},{'x' * (i % 97)}\n")  # fmt: skip
    return ws


@pytest.fixture
def loose(monkeypatch: pytest.MonkeyPatch) -> None:
    """The repository is made without pack files (inherited by the ``amlport`` processes):
    these proofs kill while objects are stored or deleted one file at a time, counted on
    disk. With packs (the default) 2,500 small files make one pack written at the run's
    end; that kill, between the pack and its index, is ``test_kill_packs.py``."""
    monkeypatch.setenv("AMLPORT_PACKS", "0")


def _objects(repo: Path) -> int:
    base = repo / "objects" / "sha256"
    return sum(1 for _ in base.rglob("*")) if base.is_dir() else 0


def _kill_when(
    args: tuple[str, ...], ready: Callable[[], bool], env: dict[str, str] | None = None
) -> int:
    """Start ``amlport ARGS``, SIGKILL it once ``ready()``; its pid."""
    proc = start(*args, env=env)
    deadline = time.monotonic() + 120
    while not ready():
        assert proc.popen.poll() is None, f"amlport {args[0]} ended before it could be killed"
        assert time.monotonic() < deadline, "the command made no progress"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert finish(proc, args).returncode == -signal.SIGKILL
    return proc.pid


def _verified(repo: Path | str, env: dict[str, str] | None = None) -> dict[str, object]:
    ran = amlport("verify", str(repo), "--json", env=env)
    assert ran.returncode == 0, ran.explain()
    doc: dict[str, object] = json.loads(ran.stdout)
    return doc


def test_a_backup_killed_half_way_leaves_a_repository_that_verifies(
    tmp_path: Path, loose: None
) -> None:
    ws = _workspace(tmp_path / "ws")
    repo = tmp_path / "repo"
    first = amlport("backup", str(ws.root), "--repo", str(repo), "--json")
    assert first.returncode == 0, first.explain()
    ws2 = _workspace(tmp_path / "ws", "v2")  # every file changes: a long second backup
    before = _objects(repo)
    args = ("backup", str(ws2.root), "--repo", str(repo))
    # Killed once the first objects of the second run are stored: with worker processes
    # the rest follows within one poll's listing of 2,500 files (killing at a fifth of them
    # sometimes found the run already finished).
    _kill_when(args, lambda: _objects(repo) > before + FILES // 50)
    doc = _verified(repo)
    assert len(doc["snapshots"]) == 1  # type: ignore[arg-type]  # the killed one never appeared
    again = amlport(*args, "--json")
    assert again.returncode == 0, again.explain()
    assert len(_verified(repo)["snapshots"]) == 2  # type: ignore[arg-type]


def test_a_prune_killed_half_way_leaves_a_repository_that_verifies(
    tmp_path: Path, loose: None
) -> None:
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


AZ_FILES = 400  # an object is a request: fewer files than locally for as long a backup


@pytest.mark.azurite
def test_a_backup_and_a_prune_killed_half_way_leave_an_azure_repository_that_verifies(
    azurite: az.Azurite, tmp_path: Path, loose: None
) -> None:
    container = "kill-format2"
    blobs = azurite.target.service_client().get_container_client(container)

    def objects() -> int:
        return sum(1 for _ in blobs.list_blobs(name_starts_with="objects/"))

    env = {"AMLPORT_REPO_CONNECTION_STRING": azurite.target.connection_string}
    repo = f"az://{container}"
    ws = _workspace(tmp_path / "ws", files=AZ_FILES)
    first = amlport("backup", str(ws.root), "--repo", repo, "--json", env=env)
    assert first.returncode == 0, first.explain()
    _workspace(tmp_path / "ws", "v2", files=AZ_FILES)
    before = objects()
    args = ("backup", str(ws.root), "--repo", repo)

    def dead_locks(pid: int) -> None:
        """The killed command's locks record this machine (host name, boot id, pid
        namespace) and a pid that is gone: stale at once, so the next command (``verify``)
        removes them with a warning instead of being held off for 30 minutes
        (bundle/lock.py)."""
        held = {
            b.name: json.loads(blobs.download_blob(b.name).readall())
            for b in blobs.list_blobs(name_starts_with="locks/")
        }
        assert held and {d["pid"] for d in held.values()} == {pid}, held  # the killed one's
        assert all(d.get("machine") for d in held.values()), held
        ran = amlport("verify", repo, env=env)
        assert ran.returncode == 0 and "removing stale" in ran.stderr, ran.explain()
        assert not list(blobs.list_blobs(name_starts_with="locks/"))

    killed = _kill_when(args, lambda: objects() > before + AZ_FILES // 5, env)
    dead_locks(killed)
    assert len(_verified(repo, env)["snapshots"]) == 1  # type: ignore[arg-type]
    again = amlport(*args, "--json", env=env)
    assert again.returncode == 0, again.explain()
    assert len(_verified(repo, env)["snapshots"]) == 2  # type: ignore[arg-type]
    forgot = amlport("forget", repo, "--keep-last", "1", env=env)
    assert forgot.returncode == 0, forgot.explain()
    full = objects()
    args = ("forget", repo, "--keep-last", "1", "--prune")
    killed = _kill_when(args, lambda: objects() < full - AZ_FILES // 5, env)
    dead_locks(killed)  # an exclusive one, taken over the same way
    assert len(_verified(repo, env)["snapshots"]) == 1  # type: ignore[arg-type]
    again = amlport(*args, "--json", env=env)
    assert again.returncode == 0, again.explain()
    assert objects() <= full - AZ_FILES
    assert len(_verified(repo, env)["snapshots"]) == 1  # type: ignore[arg-type]
