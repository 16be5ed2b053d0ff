"""Helpers for the backup/forget/diff/restore tests (no tests here).

``cli`` runs the command the way a user does — a subprocess, real exit code and output. It
registers ``amlport.cli.backup_cmd`` on the app when ``cli/app.py`` does not yet, so the suites
run before and after the registration line lands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from amlport.bundle import Repository

REPO_ROOT = Path(__file__).resolve().parents[2]
WS = REPO_ROOT / "fixtures" / "workspaces"
MAPS = Path(__file__).resolve().parent / "maps"
FIXTURES = ("designer-autoprice", "messy", "sdk-bikeshare", "v2-lendingclub")
# A Monday, 02:00 UTC: the first night of a simulated schedule.
MONDAY = datetime(2024, 3, 4, 2, 0, tzinfo=timezone.utc)

_LAUNCH = (
    "import sys\n"
    "from amlport.cli.app import app\n"
    "from amlport.cli import backup_cmd\n"
    "if 'backup' not in {c.name for c in app.registered_commands}:\n"
    "    backup_cmd.register(app)\n"
    "app(prog_name='amlport')\n"
)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _LAUNCH, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def cli_popen(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", _LAUNCH, *args],
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
    base = repo / "objects" / "sha256"
    return {f"sha256:{p.name}" for p in base.glob("*/*") if not p.name.startswith(".tmp-")}


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
