"""``make demo`` tells the whole story: scripts/demo.sh, run as the Makefile runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.reportutil import FIXTURE, ROOT


def test_demo_backs_up_changes_diffs_restores_audits_and_writes_the_report(
    tmp_path: Path,
) -> None:
    before = sorted((p.relative_to(FIXTURE), p.stat().st_mtime_ns) for p in FIXTURE.rglob("*"))
    amlport = Path(sys.executable).parent / "amlport"
    run = subprocess.run(
        ["bash", "scripts/demo.sh", str(amlport), str(tmp_path / "demo")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "TMPDIR": str(tmp_path)},
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    out = run.stdout
    for step in range(1, 8):
        assert f"== {step}. " in out
    assert "azureml-defaults==1.57.0" in out
    assert "files:  0 added, 0 removed, 1 changed" in out  # backup and diff agree: one file
    assert "check: PASSED" in out
    report = tmp_path / "demo" / "report.html"
    assert f"file://{report}" in out
    assert "amlport report" in report.read_text(encoding="utf-8")
    # The fixture is untouched and the temporary workspace is gone.
    assert (
        sorted((p.relative_to(FIXTURE), p.stat().st_mtime_ns) for p in FIXTURE.rglob("*")) == before
    )
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]
