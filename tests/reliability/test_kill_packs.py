"""SIGKILL in the middle of a backup into a repository with pack files (``AMLPORT_PACKS=1``):
killed once its first pack is written and before the index piece that names it, the
repository verifies (the pack is garbage, the snapshot never appeared), the same backup run
again finishes, and prune deletes the pack nothing indexes. With ``AMLPORT_TEST_ENCRYPT=1``
the repository is encrypted (``tests/conftest.py``)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from helpers.rel_workspace import Workspace, finish, new_workspace, start
from helpers.rel_workspace import run_measured as amlport

FILES = 2500
PACKS = {"AMLPORT_PACKS": "1"}


def _workspace(root: Path) -> Workspace:
    ws = new_workspace(root)
    for i in range(FILES):  # about 12 MB of small files: more than one 8 MiB pack
        ws.put(f"{ws.blobstore.name}/data/part{i // 100:03d}/f{i:05d}.csv",
               f"{i}," + "y" * (4000 + i % 997) + "\n")  # fmt: skip
    return ws


def _files(repo: Path, pattern: str) -> list[Path]:
    return [p for p in repo.glob(pattern) if p.is_file() and not p.name.startswith(".tmp-")]


def test_a_packed_backup_killed_between_pack_and_index_leaves_a_repository_that_verifies(
    tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path / "ws")
    repo = tmp_path / "repo"
    args = ("backup", str(ws.root), "--repo", str(repo))
    proc = start(*args, env=PACKS)
    deadline = time.monotonic() + 120
    while not _files(repo, "packs/??/*"):
        assert proc.popen.poll() is None, "the backup ended before its first pack was written"
        assert time.monotonic() < deadline, "the backup made no progress"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)
    assert finish(proc, args).returncode == -signal.SIGKILL
    assert b'"packs"' in (repo / "config.json").read_bytes()
    assert not _files(repo, "snapshots/*")
    verified = amlport("verify", str(repo), "--json")
    assert verified.returncode == 0, verified.explain()
    again = amlport(*args, "--json", env=PACKS)
    assert again.returncode == 0, again.explain()
    doc = json.loads(amlport("verify", str(repo), "--json").stdout)
    assert doc["ok"] and len(doc["snapshots"]) == 1 and doc["packs_checked"] >= 2
    pruned = amlport("forget", str(repo), "--keep-last", "1", "--prune", "--json")
    assert pruned.returncode == 0, pruned.explain()
    # the killed run's pack, unless the second run wrote the very same bytes (then indexed)
    assert json.loads(pruned.stdout)["prune"]["packs_removed"] in (0, 1)
    indexed = json.loads(amlport("verify", str(repo), "--json").stdout)
    assert indexed["ok"] and indexed["packs_checked"] == len(_files(repo, "packs/??/*"))
