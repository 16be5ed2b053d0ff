"""A scripted week of nightly backups of a workspace in Azurite, with changes between nights.

Then ``forget --keep-daily 3 --prune`` leaves exactly the three newest days, each verifying,
and no object that no snapshot references; prune frees exactly the others. The latest
snapshot equals the live source (``diff``) and restores with ``--check`` into a local folder
and into another Azurite account.

The workspace is ``sdk-bikeshare`` under container names of this test's own in the ``amlsrc``
account (named by a ``workspace.yaml``), so no other suite sees or disturbs it. Snapshot times
come from the library API (``BackupRequest.now``), the way a test simulates a schedule.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from azure.storage.blob import ContainerClient
from helpers import azurite as az
from helpers.backup import (
    MAPS,
    WS,
    cli,
    night,
    objects_on_disk,
    referenced,
    stored_file_bytes,
)

from amlport.backup import BackupRequest, BackupResult, run_backup
from amlport.bundle import Repository
from amlport.storage.opener import StorageAuth, open_source

pytestmark = pytest.mark.azurite

UPLOAD = "LocalUpload/887fe322eb7658f755904d6adcb13209/daily-bike-share.csv"
SCRIPT = "LocalUpload/811454ebb0073e2d4c263d0e246f1617/src/train.py"
MODEL = "ExperimentRun/dcid.gentle_koala_6tq1mw8dx3/model/model.pkl"


@dataclass
class Week:
    account: az.AzuriteAccount
    descriptor: Path
    blobstore: ContainerClient
    artifacts: ContainerClient
    repo: Path

    def backup(
        self, when: int, hour: int = 0, tags: tuple[str, ...] = ("nightly",)
    ) -> BackupResult:
        auth = StorageAuth(connection_string=self.account.connection_string)
        with open_source(self.account.url, workspace_file=self.descriptor, auth=auth) as src:
            request = BackupRequest(tags=list(tags), now=night(when, hour))
            return run_backup(src, self.repo, request)

    def source_args(self) -> tuple[str, ...]:
        return (
            self.account.url,
            "--connection-string",
            self.account.connection_string,
            "--workspace-file",
            str(self.descriptor),
        )


@pytest.fixture(scope="module")
def week(azurite: az.Azurite, tmp_path_factory: pytest.TempPathFactory) -> Week:
    root = tmp_path_factory.mktemp("week")
    descriptor, store, runs = az.upload_renamed_workspace(
        azurite.source, WS / "sdk-bikeshare", root, f"wk{uuid.uuid4().hex[:10]}"
    )
    service = azurite.source.service_client()
    return Week(
        azurite.source,
        descriptor,
        service.get_container_client(store),
        service.get_container_client(runs),
        root / "repo",
    )


def _ids(results: list[BackupResult]) -> list[str]:
    return [str(r.snapshot_id) for r in results]


def test_a_week_of_nightly_backups_then_forget_keep_daily_3_prune(
    week: Week, azurite: az.Azurite, tmp_path: Path
) -> None:
    results = [week.backup(0)]
    assert results[0].changes is None

    week.blobstore.upload_blob("LocalUpload/night1/extra.csv", b"day,n\n1,1\n")
    results.append(week.backup(1))
    added = [a.id for a in results[-1].changes.assets.added]  # type: ignore[union-attr]
    assert added == ["unclassified:workspaceblobstore/LocalUpload/night1"]

    old = week.blobstore.download_blob(UPLOAD).readall()
    week.blobstore.upload_blob(UPLOAD, old + b"2011-12-31,1,1,0\n", overwrite=True)
    results.append(week.backup(2))
    changes = results[-1].changes
    assert changes is not None and changes.files["changed"] == 1
    assert any(f"files/workspaceblobstore/{UPLOAD}" in c.files_changed
               for c in changes.assets.changed)  # fmt: skip

    week.blobstore.delete_blob(SCRIPT)
    results.append(week.backup(3))
    changes = results[-1].changes
    assert changes is not None and changes.files["removed"] == 1
    assert [a.id for a in changes.assets.removed] == [
        "unclassified:workspaceblobstore/LocalUpload/811454ebb0073e2d4c263d0e246f1617"
    ]

    week.artifacts.upload_blob("ExperimentRun/dcid.night4_run/user_logs/std_log.txt", b"ok\n")
    results.append(week.backup(4))
    changes = results[-1].changes
    assert changes is not None and [r.id for r in changes.runs.added] == ["run:night4_run"]

    results.append(week.backup(5))  # a night without changes
    stats = results[-1].export.stats
    assert stats is not None and stats.new_bytes == 0 and stats.read_bytes == 0
    assert results[-1].changes is not None and not results[-1].changes.different

    week.artifacts.upload_blob(MODEL, b"\x80\x04retrained", overwrite=True)
    results.append(week.backup(6))
    week.blobstore.upload_blob("LocalUpload/noon/fix.csv", b"a\n1\n")
    results.append(week.backup(6, hour=12, tags=("manual",)))  # the same day, later
    ids = _ids(results)
    assert [s.id for s in Repository.open(week.repo).list_snapshots()] == ids

    keep = ids[4:5] + ids[5:6] + ids[7:8]  # the newest of each of the last three days
    store = Repository.open(week.repo)
    live = set().union(*(store.load_snapshot(i).digests() for i in keep))
    live |= set().union(*(store.snapshots.pieces(i)[1] for i in keep))  # format 2: the trees
    expected_freed = objects_on_disk(week.repo) - live
    assert expected_freed  # the week's overwritten and deleted blobs
    # loose objects: exactly their files; packed ones (the default) are freed with their
    # pack, and bytes_freed is then what the object files and pack files shrank by
    freed_bytes = sum(store.object_path(d).stat().st_size for d in expected_freed
                      if not store.objects.packing)  # fmt: skip
    before = stored_file_bytes(week.repo)

    res = cli("forget", str(week.repo), "--keep-daily", "3", "--prune", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert sorted(k["id"] for k in doc["keep"]) == sorted(keep)
    assert all(k["reasons"] == ["daily"] for k in doc["keep"])
    assert doc["prune"]["objects_removed"] == len(expected_freed)
    if store.objects.packing:
        freed_bytes = before - stored_file_bytes(week.repo)
        assert freed_bytes > 0
    assert doc["prune"]["bytes_freed"] == freed_bytes
    assert sorted(s.id for s in Repository.open(week.repo).list_snapshots()) == sorted(keep)
    assert objects_on_disk(week.repo) == referenced(week.repo)  # no unreferenced object
    verify = cli("verify", str(week.repo))
    assert verify.returncode == 0 and "verified 3 snapshot(s)" in verify.stdout, verify.stderr

    # the latest snapshot is the live workspace; a new change shows up
    same = cli("diff", str(week.repo), *week.source_args())
    assert same.returncode == 0, same.stdout + same.stderr
    week.blobstore.upload_blob("LocalUpload/later/new.csv", b"x\n")
    moved = cli("diff", str(week.repo), *week.source_args(), "--json")
    assert moved.returncode == 1, moved.stderr
    assert [a["id"] for a in json.loads(moved.stdout)["assets"]["added"]] == [
        "unclassified:workspaceblobstore/LocalUpload/later"
    ]

    # disaster recovery of the latest: into a local folder and into another account
    local = cli("restore", str(week.repo), "latest", "--to", str(tmp_path / "dr"),
                "--map", str(MAPS / "qa.yaml"), "--check")  # fmt: skip
    assert local.returncode == 0 and "check: PASSED" in local.stdout, local.stdout + local.stderr
    remote_map = _azure_map(azurite, tmp_path)
    remote = cli("restore", str(week.repo), ids[-1][:12], "--to", azurite.target.url,
                 "--map", str(remote_map), "--check", "--json",
                 "--connection-string", azurite.target.connection_string)  # fmt: skip
    assert remote.returncode == 0, remote.stdout + remote.stderr
    check = json.loads(remote.stdout)["check"]
    restored = [f for f in store.load_snapshot(ids[-1]).files if f.path.startswith("files/")]
    assert check["ok"] and check["files_checked"] == len(restored)


def _azure_map(azurite: az.Azurite, tmp_path: Path) -> Path:
    tag = uuid.uuid4().hex[:10]
    store, runs = f"dr{tag}-store", f"dr{tag}-runs"
    mapping = {
        "target": {
            "account": azurite.target.name,
            "workspace": "mlw-dr",
            "containers": {"blobstore": store, "artifacts": runs},
            "datastores": {"workspaceblobstore": store, "workspaceartifactstore": runs},
        },
        "datastores": {
            "workspaceblobstore": "workspaceblobstore",
            "workspaceartifactstore": "workspaceartifactstore",
        },
    }
    path = tmp_path / "dr-map.yaml"
    path.write_text(yaml.safe_dump(mapping), encoding="utf-8")
    return path
