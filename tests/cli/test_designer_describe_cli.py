"""``amlport describe``: the installed command, real exit codes and output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
AUTOPRICE = REPO / "fixtures" / "workspaces" / "designer-autoprice"
PARENT = "a186e29d-388b-46bb-b111-726e328be005"


def test_designer_describe_prints_markdown() -> None:
    ran = amlport("describe", str(AUTOPRICE), PARENT[:8])
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith(f"# Designer pipeline run {PARENT}\n")
    assert "### 5. Train Model" in ran.stdout and "```mermaid" in ran.stdout


def test_designer_describe_json_and_output_file(tmp_path: Path) -> None:
    ran = amlport("describe", str(AUTOPRICE), PARENT, "--json")
    doc = json.loads(ran.stdout)
    assert (doc["schema"], doc["exit_code"], ran.returncode) == ("amlport.describe/1", 0, 0)
    assert len(doc["pipeline"]["steps"]) == 7
    out = tmp_path / "autoprice.md"
    ran = amlport("describe", str(AUTOPRICE), PARENT, "-o", str(out))
    assert ran.returncode == 0 and ran.stdout == ""
    assert out.read_text(encoding="utf-8").startswith("# Designer pipeline run")


def test_designer_describe_list_and_unknown_pipeline() -> None:
    ran = amlport("describe", str(AUTOPRICE), "list")
    assert ran.returncode == 0 and ran.stdout.startswith(PARENT)
    ran = amlport("describe", str(AUTOPRICE), "ffff\x1b[31m")
    assert ran.returncode == 2 and "\x1b" not in ran.stderr


def test_designer_describe_reports_unestablished_edges(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(AUTOPRICE, ws)
    for path in (ws / "azureml").rglob("data-capability.log"):
        path.unlink()
    ran = amlport("describe", str(ws), PARENT, "--json")
    doc = json.loads(ran.stdout)
    assert ran.returncode == 1 and doc["exit_code"] == 1
    assert any(s["not_established"] for s in doc["pipeline"]["steps"])
    assert "warning" in ran.stderr


@pytest.mark.parametrize("where", ["inside", "missing-folder"])
def test_designer_describe_output_file_is_checked(tmp_path: Path, where: str) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(AUTOPRICE, ws)
    target = ws / "azureml" / "d.md" if where == "inside" else tmp_path / "no" / "d.md"
    ran = amlport("describe", str(ws), PARENT, "-o", str(target))
    assert ran.returncode == 2 and not target.exists()


def test_designer_describe_refuses_a_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text('{"format": "amlport.repository", "version": 1}')
    ran = amlport("describe", str(repo), PARENT)
    assert ran.returncode == 2 and "restore" in ran.stderr
