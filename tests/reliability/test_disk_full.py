"""A full disk is a clear error with a documented exit code, not an "internal error".

The disk is filled by a file size limit (``RLIMIT_FSIZE``, as ``ulimit -f``: writes past it
fail with EFBIG, handled exactly as ENOSPC), so the test needs no root and no mount. Before:
``backup`` and ``import`` ended with ``amlport: internal error: OSError: [Errno 27] File too
large``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cliutil import stored_snapshots

resource = pytest.importorskip("resource")

ROOT = Path(__file__).resolve().parents[2]
AUTOPRICE = ROOT / "fixtures" / "workspaces" / "designer-autoprice"
QA = ROOT / "tests" / "integration" / "maps" / "qa.yaml"


def _run(limit: int | None, *args: str) -> subprocess.CompletedProcess[str]:
    def limited() -> None:  # in the child: EFBIG instead of SIGXFSZ past the limit
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return subprocess.run(
        [sys.executable, "-m", "amlport", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=limited,
        env={**os.environ, "COLUMNS": "200"},
    )


def test_backup_on_a_full_disk_exits_2_and_records_no_snapshot(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    res = _run(4000, "backup", str(AUTOPRICE), "--repo", str(repo), "--no-cache")
    assert res.returncode == 2, res.stderr
    err = " ".join(res.stderr.split())
    assert "internal error" not in err and "Traceback" not in err
    assert "cannot write" in err and "disk is full" in err and "hint:" in err
    assert not stored_snapshots(repo)  # nothing recorded (in either format)
    again = _run(None, "backup", str(AUTOPRICE), "--repo", str(repo), "--no-cache")
    assert again.returncode == 0, again.stderr  # space back: the backup completes


def test_import_to_a_full_disk_names_the_files_and_exits_3(tmp_path: Path) -> None:
    repo, target = tmp_path / "repo", tmp_path / "t"
    assert _run(None, "backup", str(AUTOPRICE), "--repo", str(repo)).returncode == 0
    res = _run(1500, "import", str(repo), "--to", str(target), "--map", str(QA), "--json")
    assert res.returncode == 3, res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    assert doc["failures"] and all("disk is full" in f for f in doc["failures"])
    assert doc["counts"].get("create", 0) > 0  # the files that fit are written
    again = _run(None, "import", str(repo), "--to", str(target), "--map", str(QA), "--json")
    assert again.returncode == 0, again.stderr
    assert "failed" not in json.loads(again.stdout)["counts"]
