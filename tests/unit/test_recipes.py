"""The scheduling recipes in docs/recipes/ are valid and do what docs/backup.md says.

Each scheduled pipeline parses (``yaml.safe_load``), has a schedule with a valid 5-field cron
expression, and runs ``amlport backup`` and, after it, ``amlport verify``. The cron wrapper is
valid bash and does the same; the cron recipe's crontab line runs the wrapper.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

RECIPES = Path(__file__).resolve().parents[2] / "docs" / "recipes"
_FIELD = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
CRON = re.compile(rf"^{_FIELD}( {_FIELD}){{4}}$")


def _load(name: str) -> dict[Any, Any]:
    data = yaml.safe_load((RECIPES / name).read_text(encoding="utf-8"))
    assert isinstance(data, dict), name
    return data


def _strings(node: Any) -> list[str]:
    """Every string in a YAML document, in document order (scripts included)."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _backup_then_verify(text: str) -> None:
    backup = text.find("amlport backup ")
    verify = text.find("amlport verify ")
    assert backup >= 0, "no `amlport backup` step"
    assert verify > backup, "`amlport verify` must run after `amlport backup`"


def test_cron_pattern_accepts_and_rejects() -> None:
    assert CRON.match("17 2 * * *") and CRON.match("0 */6 * * 1-5")
    assert not CRON.match("17 2 * *") and not CRON.match("@daily")


def test_github_actions_workflow() -> None:
    data = _load("github-actions-backup.yml")
    # YAML 1.1 reads a bare `on:` key as the boolean true; GitHub reads it as "on".
    on = data.get("on", data.get(True))
    assert isinstance(on, dict) and on.get("schedule"), "no on.schedule"
    crons = [entry["cron"] for entry in on["schedule"]]
    assert crons and all(CRON.match(c) for c in crons), crons
    steps = [s for job in data["jobs"].values() for s in job["steps"]]
    assert all("run" in s or "uses" in s for s in steps)
    _backup_then_verify("\n".join(s["run"] for s in steps if "run" in s))
    assert "--retry-lock" in "\n".join(_strings(data))


def test_azure_devops_pipeline() -> None:
    data = _load("azure-pipelines-backup.yml")
    crons = [entry["cron"] for entry in data["schedules"]]
    assert crons and all(CRON.match(c) for c in crons), crons
    assert data["schedules"][0].get("always") is True  # runs without code changes
    assert data.get("trigger") == "none"
    _backup_then_verify("\n".join(_strings(data["jobs"])))


def test_cron_wrapper_and_crontab_line() -> None:
    script = (RECIPES / "amlport-backup.sh").read_text(encoding="utf-8")
    assert script.startswith("#!/usr/bin/env bash")
    _backup_then_verify(script)
    doc = (RECIPES / "cron.md").read_text(encoding="utf-8")
    block = re.search(r"```cron\n(.*?)```", doc, re.S)
    assert block is not None, "cron.md has no ```cron block"
    lines = [ln for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 1
    fields = lines[0].split()
    assert CRON.match(" ".join(fields[:5])) and "amlport-backup" in lines[0]


@pytest.mark.skipif(shutil.which("bash") is None, reason="bash not installed")
def test_cron_wrapper_is_valid_bash() -> None:
    res = subprocess.run(
        ["bash", "-n", str(RECIPES / "amlport-backup.sh")], capture_output=True, text=True
    )
    assert res.returncode == 0, res.stderr


def test_runbook_covers_restore_registration_and_verification() -> None:
    text = (RECIPES / "disaster-recovery.md").read_text(encoding="utf-8")
    for needle in ("amlport restore", "--check", "--emit-assets", "register.sh", "amlport verify"):
        assert needle in text, needle
