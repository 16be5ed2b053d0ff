"""``verify --deep`` tells a spec that is invalid in the source (a warning, exit 1, the failing
field named, the whole reason) from a damaged bundle (exit 4) (issue 20, item 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.cliutil import amlport

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "v2-nyctaxi-nested"


@pytest.fixture(scope="module")
def invalid_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("azure.ai.ml")
    tmp = tmp_path_factory.mktemp("deep")
    ws = tmp / "ws"
    shutil.copytree(WS, ws)
    prep = next(ws.rglob("prep_src/prep.yml"))
    text = prep.read_text(encoding="utf-8")
    # `outputs:` with nothing under it: a real mistake azure.ai.ml rejects ("may not be null").
    prep.write_text(text.replace("outputs:\n  prep_data:\n    type: uri_folder\n", "outputs:\n"))
    repo = tmp / "repo"
    res = amlport("export", str(ws), "--repo", str(repo), "--select", "component:prep_taxi_data")
    assert res.returncode == 0, res.stderr
    return repo


def test_component_invalid_in_source_is_a_warning_naming_the_field(invalid_repo: Path) -> None:
    res = amlport("verify", str(invalid_repo), "--deep")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "prep.yml does not load (field outputs): invalid in the source workspace" in res.stderr
    assert "restore the object from another copy" not in res.stdout + res.stderr
    # The whole reason, not only its first line: the loader's JSON lists the field and value.
    assert '"path": "outputs"' in res.stdout and "may not be null" in res.stdout


def test_component_invalid_in_source_json_says_where_it_comes_from(invalid_repo: Path) -> None:
    res = amlport("verify", str(invalid_repo), "--deep", "--json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    body = doc.get("deep") or next(v["deep"] for v in doc.values() if isinstance(v, dict))
    (problem,) = body["problems"]
    assert problem["fields"] == ["outputs"] and problem["origin"] == "source"
    assert "\n" in problem["reason"]


def test_component_damaged_bundle_is_still_exit_4(invalid_repo: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(invalid_repo, repo)
    stored = [*(repo / "objects").rglob("*"), *(repo / "packs").glob("??/*")]  # loose, packs
    victim = next(p for p in stored if p.is_file())
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    res = amlport("verify", str(repo), "--deep")
    assert res.returncode == 4, res.stdout + res.stderr
