"""Helpers for the backup/forget/diff/restore tests.

``cli`` is ``helpers.cliutil.amlport`` (the command run the way a user does: a subprocess,
real exit code and output); ``cli_popen`` starts it without waiting.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from amlport.bundle import Repository
from helpers.bundle import stored_files
from helpers.cliutil import amlport

REPO_ROOT = Path(__file__).resolve().parents[2]
WS = REPO_ROOT / "fixtures" / "workspaces"
MAPS = Path(__file__).resolve().parents[1] / "integration" / "maps"
FIXTURES = ("designer-autoprice", "messy", "sdk-bikeshare", "v2-lendingclub")
# A Monday, 02:00 UTC: the first night of a simulated schedule.
MONDAY = datetime(2024, 3, 4, 2, 0, tzinfo=timezone.utc)
cli = amlport  # the backup suites' name for the one CLI runner


def cli_popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "amlport", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )


def night(n: int, hour: int = 0) -> datetime:
    """The n-th night of the schedule (0 = the first Monday)."""
    return MONDAY + timedelta(days=n, hours=hour)


def copy_workspace(name: str, dest: Path) -> Path:
    shutil.copytree(WS / name, dest)
    return dest


def objects_on_disk(repo: Path) -> set[str]:
    """Every object stored: loose files, and the objects the pack index names (pack files,
    the default for a new repository)."""
    base = repo / "objects" / "sha256"
    loose = {f"sha256:{p.name}" for p in base.glob("*/*") if not p.name.startswith(".tmp-")}
    if not (repo / "packs" / "index").is_dir():
        return loose
    packed = Repository.open(repo).objects.pack_index().items()
    return loose | {f"sha256:{hexd}" for hexd, _ in packed}


def referenced(repo: Path) -> set[str]:
    """Every object a snapshot references: its files' data objects and, in format 2, the
    pieces of its tree."""
    store = Repository.open(repo)
    out: set[str] = set()
    for info in store.list_snapshots():
        data, pieces = store.snapshots.pieces(info.id)
        assert data == store.load_snapshot(info.id).digests()
        out |= data | pieces
    return out


def stored_file_bytes(repo: Path) -> int:
    """Bytes of every loose object file and pack file (``stored_files``): what a prune's
    ``bytes_freed`` takes away in a repository with packs."""
    return sum(f.stat().st_size for f in stored_files(repo))
