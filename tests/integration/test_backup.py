"""``amlport backup``: every blob of the workspace lands in the snapshot; changes are reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.backup import FIXTURES, WS, cli, copy_workspace, night

from amlport.backup import BackupRequest, run_backup
from amlport.backup.catchall import ASSET_PREFIX, group_of
from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.storage.local import LocalSource
from amlport.walk import walk


def _originals(repo: Path, snapshot: str) -> set[tuple[str, str]]:
    manifest = Repository.open(repo).load_snapshot(snapshot)
    return {
        (f.original["container"], f.original["path"])
        for f in manifest.files
        if f.original and "container" in f.original
    }


@pytest.mark.parametrize("name", FIXTURES)
def test_backup_carries_every_source_blob(name: str, tmp_path: Path) -> None:
    source = LocalSource(WS / name)
    result = run_backup(source, tmp_path / "repo", BackupRequest())
    assert result.snapshot_id is not None and int(result.exit_code) in (0, 1)
    blobs = {(b.container, b.name) for b in source.list_blobs()}
    assert len(blobs) == walk(source).blobs  # what `scan` counts
    assert _originals(tmp_path / "repo", result.snapshot_id) == blobs


def test_leftovers_become_unclassified_data_assets(tmp_path: Path) -> None:
    result = run_backup(LocalSource(WS / "sdk-bikeshare"), tmp_path / "r", BackupRequest())
    manifest = Repository.open(tmp_path / "r").load_snapshot(str(result.snapshot_id))
    extra = [a for a in manifest.assets if a.id.startswith(ASSET_PREFIX)]
    assert [(a.kind, a.id, a.attrs["unclassified"]) for a in extra] == [
        (
            "data",
            "unclassified:workspaceblobstore/LocalUpload/811454ebb0073e2d4c263d0e246f1617",
            True,
        )
    ]
    assert extra[0].files == [
        "files/workspaceblobstore/LocalUpload/811454ebb0073e2d4c263d0e246f1617/src/train.py"
    ]
    assert manifest.selection["extension"] == "backup-catch-all"
    # the whole workspace is in the snapshot, so is the whole lineage graph
    graph = walk(LocalSource(WS / "sdk-bikeshare"))
    assert graph.blobs == len(_originals(tmp_path / "r", str(result.snapshot_id)))


def test_grouping_of_leftover_blobs() -> None:
    assert group_of("bs", "LocalUpload/abc/src/x.py", "azureml") == "LocalUpload/abc"
    assert group_of("bs", "azureml/run1/train.py", "azureml") == "azureml/run1"
    assert group_of("bs", "loose.csv", "azureml") == "loose.csv"
    assert group_of("bs", "mydata/2024/a.csv", "azureml") == "mydata"
    art = "ExperimentRun/dcid.r1/outputs/x.bin"
    assert group_of("azureml", art, "azureml") == "ExperimentRun/dcid.r1"
    assert group_of("azureml", "amlport/imports/x.json", "azureml") == "amlport"


def test_selection_backup_has_no_catch_all(tmp_path: Path) -> None:
    request = BackupRequest(include=frozenset({"models"}))
    result = run_backup(LocalSource(WS / "sdk-bikeshare"), tmp_path / "r", request)
    manifest = Repository.open(tmp_path / "r").load_snapshot(str(result.snapshot_id))
    assert not [a for a in manifest.assets if a.id.startswith(ASSET_PREFIX)]
    assert "extension" not in manifest.selection


def test_backup_reports_what_changed_since_the_previous_snapshot(tmp_path: Path) -> None:
    ws = copy_workspace("designer-autoprice", tmp_path / "ws")
    repo = tmp_path / "repo"
    first = run_backup(LocalSource(ws), repo, BackupRequest(now=night(0), tags=["nightly"]))
    assert first.changes is None and first.parent is None
    blobstore = next(p for p in ws.iterdir() if p.name.startswith("azureml-blobstore-"))
    upload = blobstore / "UI" / "2024-03-05_020000_UTC" / "prices.csv"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"make,price\naudi,13950\n")
    step = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
    log = ws / "azureml" / "ExperimentRun" / f"dcid.{step}" / "logs" / "azureml" / "stderrlogs.txt"
    log.write_bytes(log.read_bytes() + b"one more line\n")
    res = cli("backup", str(ws), "--repo", str(repo), "--tag", "nightly", "--json")
    assert res.returncode in (0, 1), res.stderr
    doc = json.loads(res.stdout)
    assert doc["parent"] == first.snapshot_id
    changes = doc["changes"]
    assert [a["id"] for a in changes["assets"]["added"]] == [
        "unclassified:workspaceblobstore/UI/2024-03-05_020000_UTC"
    ]
    assert [r["id"] for r in changes["runs"]["changed"]] == [f"run:{step}"]
    assert changes["files"]["added"] == 1 and changes["files"]["changed"] == 1
    assert doc["transfer"]["new_objects"] == 2
    assert doc["transfer"]["new_bytes"] == len(upload.read_bytes()) + log.stat().st_size
    assert changes["different"] is True


def test_unchanged_second_backup_reads_nothing_and_reports_no_change(tmp_path: Path) -> None:
    run_backup(LocalSource(WS / "messy"), tmp_path / "r", BackupRequest())
    res = cli("backup", str(WS / "messy"), "--repo", str(tmp_path / "r"))
    assert res.returncode in (0, 1), res.stderr
    assert "0 new objects, 0 new bytes" in res.stdout and "0 bytes read" in res.stdout
    assert "assets: 0 added, 0 removed, 0 changed" in res.stdout
    assert "Traceback" not in res.stderr
    assert "read cache" not in res.stdout  # the library run kept no cache: all read


@pytest.mark.parametrize("command", ["backup", "export"])
def test_the_text_output_says_what_the_read_cache_saved(command: str, tmp_path: Path) -> None:
    dest = "--repo" if command == "backup" else "--to"
    argv = [command, str(WS / "designer-autoprice"), dest, str(tmp_path / "r")]
    force = ["--force"] if command == "backup" else []  # or decided from the listing: no walk
    first, second = cli(*argv), cli(*argv, *force)
    assert first.returncode in (0, 1) and second.returncode in (0, 1), second.stderr
    assert "read cache" not in first.stdout
    line = next(x for x in second.stdout.splitlines() if "taken from the read cache" in x)
    assert int(line.split()[0]) > 0


def test_an_azure_container_url_is_never_taken_for_a_folder(tmp_path: Path) -> None:
    # A container repository needs a credential (tests/integration/test_bundle_azure.py); a
    # URL that went through Path() (az:/backups) must not become a local folder "az:".
    with pytest.raises(UsageError, match="which storage account"):
        run_backup(LocalSource(WS / "sdk-bikeshare"), Path("az://backups"), BackupRequest())
    assert not Path("az:").exists()
