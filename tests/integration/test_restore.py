"""``amlport restore --check``: import plus proof; a tampered target fails the proof."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.backup import FIXTURES, MAPS, WS, cli

from amlport.backup import BackupRequest, run_backup
from amlport.backup.check import CheckReport, check_lineage
from amlport.backup.compare import diff_specs
from amlport.backup.restore import RestoreReport, RestoreRequest, run_restore, target_as_source
from amlport.bundle import Repository
from amlport.importing.engine import load_mapping
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_source, open_target

QA = MAPS / "qa.yaml"


def _backup(name: str, repo: Path) -> str:
    result = run_backup(LocalSource(WS / name), repo, BackupRequest())
    return str(result.snapshot_id)


def _restore(repo: Path, target: Path, snapshot: str = "latest") -> RestoreReport:
    mapping = load_mapping(QA)
    with open_target(str(target), descriptor=mapping.target) as t:
        return run_restore(
            repo,
            t,
            RestoreRequest(mapping, snapshot=snapshot, check=True),
            scan=lambda: target_as_source(str(target), mapping.target),
        )


@pytest.mark.parametrize("name", FIXTURES)
def test_restore_check_passes_for_every_fixture(name: str, tmp_path: Path) -> None:
    repo, target = tmp_path / "repo", tmp_path / "target"
    snapshot = _backup(name, repo)
    report = _restore(repo, target, snapshot[:10])
    assert int(report.exit_code) == 0, report.lines()
    doc = json.loads(json.dumps(report.to_dict()))
    assert doc["snapshot"] == snapshot and doc["check"]["ok"] is True
    check = doc["check"]
    assert check["files_checked"] == len(list(LocalSource(WS / name).list_blobs()))
    assert check["missing_nodes"] == [] and check["missing_edges"] == []
    assert check["nodes_expected"] > 0 and check["edges_expected"] > 0


def test_tampered_file_fails_the_check_and_overwrite_repairs_it(tmp_path: Path) -> None:
    repo, target = tmp_path / "repo", tmp_path / "target"
    _backup("designer-autoprice", repo)
    args = ("restore", str(repo), "latest", "--to", str(target), "--map", str(QA), "--check")
    first = cli(*args)
    assert first.returncode == 0 and "check: PASSED" in first.stdout, first.stderr
    victim = next(target.rglob("data_type.json"))
    victim.write_bytes(victim.read_bytes().replace(b"{", b"{ ", 1))

    again = cli(*args)
    assert again.returncode == 4, again.stdout + again.stderr
    rel = victim.relative_to(target).as_posix()
    assert "check: FAILED" in again.stdout
    assert f"content differs from the snapshot: {rel}" in again.stdout
    assert "restore check failed" in again.stderr and "Traceback" not in again.stderr

    repaired = cli(*args, "--on-conflict", "overwrite")
    assert repaired.returncode == 0 and "1 update" in repaired.stdout, repaired.stdout


def test_restore_repairs_a_deleted_file(tmp_path: Path) -> None:
    repo, target = tmp_path / "repo", tmp_path / "target"
    _backup("designer-autoprice", repo)
    assert int(_restore(repo, target).exit_code) == 0
    ilearner = next(target.rglob("data.ilearner"))
    ilearner.unlink()  # a re-run restores it: the check passes again
    again = _restore(repo, target)
    assert again.check is not None and again.check.ok
    assert again.imported.counts == {"create": 1, "skip": 186}


def test_lineage_differences_are_named(tmp_path: Path) -> None:
    repo, target = tmp_path / "repo", tmp_path / "target"
    snapshot = _backup("sdk-bikeshare", repo)
    assert int(_restore(repo, target, snapshot).exit_code) == 0
    manifest = Repository.open(repo).load_snapshot(snapshot)
    nodes = [n["id"] for n in manifest.lineage["nodes"]]
    manifest.lineage["links"].append({"source": nodes[0], "target": nodes[1], "kind": "binds"})
    manifest.lineage["nodes"].append({"id": "model:workspaceblobstore/gone", "kind": "model"})
    report = CheckReport()
    check_lineage(report, manifest, LocalSource(target))
    assert report.missing_nodes == ["model:workspaceblobstore/gone"]
    assert report.missing_edges == [(nodes[0], nodes[1], "binds")]
    assert not report.ok


def test_unknown_snapshot_is_an_error(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _backup("sdk-bikeshare", repo)
    res = cli("restore", str(repo), "ffff", "--to", str(tmp_path / "t"), "--map", str(QA))
    assert res.returncode == 2 and "no snapshot" in res.stderr, res.stderr
    assert not (tmp_path / "t" / "azureml").exists()


def test_a_restored_workspace_diffs_equal_to_its_snapshot_but_for_the_import_record(
    tmp_path: Path,
) -> None:
    repo, target = tmp_path / "repo", tmp_path / "target"
    snapshot = _backup("designer-autoprice", repo)
    mapping = load_mapping(MAPS / "prod.yaml")  # datastores keep their names, as in DR
    with open_target(str(target), descriptor=mapping.target) as t:
        run_restore(repo, t, RestoreRequest(mapping, snapshot=snapshot))
    report = diff_specs(f"{repo}@{snapshot}", str(target), open_source)
    assert [a.id for a in report.assets.added] == ["unclassified:workspaceartifactstore/amlport"]
    assert not (report.assets.removed or report.assets.changed or report.runs.different)
    assert report.files["changed"] == 0 and report.files["removed"] == 0
    assert not (report.nodes_added or report.nodes_removed)
    assert not (report.edges_added or report.edges_removed)


def test_check_plans_with_the_aliases_the_restore_used(tmp_path: Path) -> None:
    """A map naming ``devblob``, an alias of the blobstore whose files the snapshot lists
    under ``workspaceblobstore``: the restore writes them (``Mapping.with_aliases``), and the
    check proves every one of them. Before, the check planned with the map as written and
    counted the blobstore's files as blocked: unchecked, and still "PASSED"."""
    import shutil

    import yaml

    src = tmp_path / "dev"
    shutil.copytree(WS / "designer-autoprice", src)
    desc = yaml.safe_load((src / "workspace.yaml").read_text(encoding="utf-8"))
    desc["datastores"]["devblob"] = desc["containers"]["blobstore"]
    (src / "workspace.yaml").write_text(yaml.safe_dump(desc), encoding="utf-8")
    repo, target = tmp_path / "repo", tmp_path / "target"
    run_backup(LocalSource(src), repo, BackupRequest())
    doc = yaml.safe_load(QA.read_text(encoding="utf-8"))
    doc["datastores"] = {"devblob": "qablob", "workspaceartifactstore": "workspaceartifactstore"}
    map_file = tmp_path / "qa.yaml"
    map_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    mapping = load_mapping(map_file)
    with open_target(str(target), descriptor=mapping.target) as t:
        report = run_restore(
            repo,
            t,
            RestoreRequest(mapping, check=True),
            scan=lambda: target_as_source(str(target), mapping.target),
        )
    check = report.to_dict()["check"]
    assert check["ok"] is True, report.lines()
    assert check["files_blocked"] == 0
    assert check["files_checked"] == len(list(LocalSource(src).list_blobs()))


def test_restore_holds_one_copy_of_the_snapshot_while_it_imports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The import reads the snapshot itself: the copy restore picked is let go before it
    (two copies of a 100k-file snapshot were ~200 MB), and ``--check`` still checks."""
    import gc
    import weakref

    import amlport.backup.restore as restore

    repo, target = tmp_path / "repo", tmp_path / "target"
    snapshot = _backup("designer-autoprice", repo)
    picked: list[weakref.ref[object]] = []
    alive_at_import: list[bool] = []
    pick, imp = restore.pick_snapshot, restore.run_import

    def pick_spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        manifest = pick(*args, **kwargs)
        picked.append(weakref.ref(manifest))
        return manifest

    def import_spy(*args, **kwargs):  # type: ignore[no-untyped-def]
        gc.collect()
        alive_at_import.append(picked[0]() is not None)
        return imp(*args, **kwargs)

    monkeypatch.setattr(restore, "pick_snapshot", pick_spy)
    monkeypatch.setattr(restore, "run_import", import_spy)
    report = _restore(repo, target, snapshot)
    assert alive_at_import == [False]
    assert int(report.exit_code) == 0 and report.check is not None and report.check.ok
    assert report.check.files_checked == len(
        list(LocalSource(WS / "designer-autoprice").list_blobs())
    )
