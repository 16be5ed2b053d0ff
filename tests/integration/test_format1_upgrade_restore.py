"""Issue 18's promise for old repositories: the format-1 repository amlport 0.1.0 made
(``tests/format1/repo``) restores after ``amlport repo upgrade`` exactly as before — the
same files in the target — and ``amlport diff`` says the same, between its two snapshots and
between the repository and what was restored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from helpers.data import tree_bytes
from helpers.rel_workspace import filled_map
from helpers.rel_workspace import run_in_process as amlport

FORMAT1 = Path(__file__).resolve().parents[1] / "format1" / "repo"


def _ids(repo: Path) -> list[str]:
    ran = amlport("snapshots", str(repo), "--json")
    assert ran.returncode == 0, ran.explain()
    docs = sorted(json.loads(ran.stdout)["snapshots"], key=lambda s: s["created"])
    return [s["id"] for s in docs]


IMPORTS = "azureml/amlport/imports/"  # one provenance record, named by the snapshot id


def _restore(repo: Path, target: Path, map_file: Path) -> dict[str, bytes]:
    """The files the restore wrote, but its provenance record (named by the snapshot id,
    which the upgrade changes)."""
    ran = amlport("restore", str(repo), "latest", "--to", str(target), "--map", str(map_file))
    assert ran.returncode == 0, ran.explain()
    files = tree_bytes(target)
    records = [name for name in files if name.startswith(IMPORTS)]
    assert len(records) == 1, records
    del files[records[0]]
    return files


def _diff(a: str, b: str, *extra: str) -> tuple[int, Any]:
    ran = amlport("diff", a, b, "--json", *extra)
    assert ran.returncode in (0, 1), ran.explain()
    doc = json.loads(ran.stdout)
    doc.pop("a"), doc.pop("b")  # the snapshot ids: new ones after the upgrade
    return ran.returncode, doc


def _diffs(repo: Path, target: Path, map_file: Path) -> list[tuple[int, Any]]:
    first, second = _ids(repo)
    return [
        _diff(f"{repo}@{first}", f"{repo}@{second}"),
        _diff(str(repo), str(target), "--map", str(map_file)),
    ]


def test_the_format1_repository_restores_and_diffs_the_same_after_repo_upgrade(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FORMAT1, repo)
    (repo / "locks").mkdir(exist_ok=True)  # git keeps no empty folder
    map_file = filled_map(repo, tmp_path / "map.yaml")
    before_files = _restore(repo, tmp_path / "before", map_file)
    before_diffs = _diffs(repo, tmp_path / "before", map_file)
    assert before_files and before_diffs[0][0] == 1  # the two snapshots differ in one file

    upgraded = amlport("repo", "upgrade", str(repo), "--json")
    assert upgraded.returncode == 0, upgraded.explain()
    assert json.loads((repo / "config.json").read_text())["version"] == 2
    assert not list((repo / "snapshots").glob("*.json"))
    verified = amlport("verify", str(repo))
    assert verified.returncode == 0, verified.explain()

    assert _restore(repo, tmp_path / "after", map_file) == before_files
    assert _diffs(repo, tmp_path / "after", map_file) == before_diffs
    # and the repository against the target restored before the upgrade
    assert _diffs(repo, tmp_path / "before", map_file) == before_diffs
