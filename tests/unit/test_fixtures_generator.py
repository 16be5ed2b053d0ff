"""The fixture generator: checked-in workspaces are current, scaled output is deterministic."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.data import tree_bytes

ROOT = Path(__file__).resolve().parents[2]
GENERATOR = ROOT / "fixtures" / "generate.py"
WORKSPACES = ROOT / "fixtures" / "workspaces"
SUBMITTING = re.compile(r"Submitting \d+ runs, first five are: (\S+)")


def run_generator(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def pipeline_parents(workspace: Path) -> dict[str, list[str]]:
    """dcid.<run> folders whose executionlogs.txt submits children -> the child run ids."""
    parents: dict[str, list[str]] = {}
    for log in (workspace / "azureml" / "ExperimentRun").glob(
        "dcid.*/logs/azureml/executionlogs.txt"
    ):
        pairs = [p for m in SUBMITTING.finditer(log.read_text()) for p in m.group(1).split(",")]
        if pairs:
            parents[log.parents[2].name] = [p.split(":", 1)[1] for p in pairs]
    return parents


def test_checked_in_fixtures_match_the_generator() -> None:
    result = run_generator("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_check_reports_a_changed_file(tmp_path: Path) -> None:
    copy = tmp_path / "workspaces"
    shutil.copytree(WORKSPACES, copy)
    (copy / "messy" / "workspace.yaml").write_text("account: tampered\n")
    result = run_generator("--check", "--out", copy)
    assert result.returncode == 1
    assert "differs:   messy/workspace.yaml" in result.stdout


def test_scaled_writes_n_pipeline_runs_deterministically(tmp_path: Path) -> None:
    for out in ("a", "b"):
        result = run_generator("--scaled", "3", "--out", tmp_path / out)
        assert result.returncode == 0, result.stdout + result.stderr
    first, second = tmp_path / "a" / "scaled-3", tmp_path / "b" / "scaled-3"
    assert (first / "workspace.yaml").is_file()
    parents = pipeline_parents(first)
    assert len(parents) == 3
    assert all(len(children) == 7 for children in parents.values())
    assert tree_bytes(first) == tree_bytes(second)
