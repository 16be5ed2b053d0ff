"""``amlport import`` / ``map init`` / ``promote`` as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.bundle import stored_files
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("b") / "repo"
    res = amlport("export", str(WS / "designer-autoprice"), "--to", str(repo), "--json")
    assert res.returncode in (0, 1), res.stderr
    return repo


def test_map_init_lists_every_source_datastore(bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "map.yaml"
    res = amlport("map", "init", str(bundle), "-o", str(out))
    assert res.returncode == 0, res.stderr
    text = out.read_text(encoding="utf-8")
    assert "workspaceblobstore: workspaceblobstore" in text
    assert "workspaceartifactstore: workspaceartifactstore" in text
    assert "azmlfromscratchstr" in text.splitlines()[1]  # the header names the source


def test_dry_run_plans_and_writes_nothing(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    res = amlport(
        "import", str(bundle), "--to", str(target), "--map", str(QA), "--dry-run", "--json"
    )
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["dry_run"] and doc["counts"] == {"create": len(doc["actions"])}
    assert not any(p.is_file() and p.name != "workspace.yaml" for p in target.rglob("*"))


def test_import_then_reimport_reports_zero_changes(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    first = amlport("import", str(bundle), "--to", str(target), "--map", str(QA), "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["record"]
    again = json.loads(
        amlport("import", str(bundle), "--to", str(target), "--map", str(QA), "--json").stdout
    )
    assert set(again["counts"]) == {"skip"} and again["record"] is None


def test_corrupt_snapshot_exits_4_and_writes_nothing(bundle: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(bundle, repo)
    # The first file holding objects, a byte longer: a pack (the default: it is no longer at
    # the size its index gives) or an object's own file (AMLPORT_PACKS=0).
    victim = stored_files(repo)[0]
    victim.write_bytes(victim.read_bytes() + b"!")
    target = tmp_path / "t"
    res = amlport("import", str(repo), "--to", str(target), "--map", str(QA))
    assert res.returncode == 4 and "Traceback" not in res.stderr
    assert not (target / "azureml").exists()


def test_conflicting_target_file_is_reported_not_overwritten(bundle: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    assert amlport("import", str(bundle), "--to", str(target), "--map", str(QA)).returncode == 0
    pointer = next(target.rglob("Trained_model"))
    pointer.write_text("{}", encoding="utf-8")
    res = amlport("import", str(bundle), "--to", str(target), "--map", str(QA), "--json")
    assert res.returncode == 3
    assert [a for a in json.loads(res.stdout)["actions"] if a["action"] == "conflict"]
    assert pointer.read_text(encoding="utf-8") == "{}"
    fixed = amlport(
        "import", str(bundle), "--to", str(target), "--map", str(QA), "--on-conflict", "overwrite"
    )
    assert fixed.returncode == 0 and "AmlDataStoreName" in pointer.read_text(encoding="utf-8")


def test_promote_local_to_local_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "t"
    args = ("promote", str(WS / "sdk-bikeshare"), "--to", str(target), "--map", str(QA), "--json")
    first = json.loads(amlport(*args).stdout)
    assert first["counts"].get("create", 0) > 0 and not first["failures"]
    again = json.loads(amlport(*args).stdout)
    assert set(again["counts"]) == {"skip"} and again["record"] is None
