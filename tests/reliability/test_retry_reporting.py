"""Retries are reported by every command that transfers, reads and writes alike (issue 19;
design 0005, "Scan speed and retry reporting").

``backup``, ``export``, ``import``, ``restore`` and ``promote`` print ``retries`` (every
storage call retried, by any of the run's clients: source, target, repository) and
``retried`` (reads, writes, and why) in ``--json``, and one ``retried`` line on stderr when
it is not zero. Before, only the source's retries were reported (``scan``/``export``), and
``backup --json`` had none: a throttled repository write was retried and never said.

The faults are injected by the reliability proxy (``tests/helpers/rel_proxy.py``): one
throttled answer (503 ``ServerBusy``) to the first write into the repository's container and
one to the first read of a run file; both calls then succeed.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.rel_azurite import PrivateAzurite
from helpers.rel_proxy import Fault, FaultProxy
from helpers.rel_workspace import (
    ARTIFACTS,
    Ran,
    Workspace,
    new_workspace,
    small_backup,
    target_section,
)
from helpers.rel_workspace import run_measured as amlport

pytestmark = [pytest.mark.azurite, pytest.mark.slow]
ACCOUNT = "relwait"  # an account of the reliability emulator (conftest ACCOUNTS)
RUN_FILE = "outputs/[w]..eights.bin"  # a hostile but legal name


def _workspace(root: Path) -> tuple[Workspace, str]:
    ws = new_workspace(root, ACCOUNT)
    ws.put_run_file("r9", RUN_FILE, os.urandom(4096))
    return ws, f"/{ACCOUNT}/{ARTIFACTS}/ExperimentRun/dcid.r9/{RUN_FILE}"


class OneBusyWriteAndRead:
    """503 to the first write (PUT) into ``repo_container`` and to the first GET of
    ``read_path``; every other request goes through."""

    def __init__(self, repo_container: str, read_path: str) -> None:
        self.prefix = f"/{ACCOUNT}/{repo_container}/"
        self.read_path = read_path
        self.wrote = self.read = False

    def __call__(self, method: str, path: str, seen: int) -> Fault | None:
        if method == "PUT" and path.startswith(self.prefix) and not self.wrote:
            self.wrote = True
            return Fault(503)
        if method == "GET" and path == self.read_path and not self.read:
            self.read = True
            return Fault(503)
        return None


def _backup(
    emulator: PrivateAzurite, tmp_path: Path, *extra: str
) -> tuple[Ran, list[tuple[str, str, int | str]]]:
    ws, path = _workspace(tmp_path / "ws")
    account = emulator.account(ACCOUNT)
    az.upload_workspace(account.connection_string, ws.root)
    container = f"retried-{uuid.uuid4().hex[:10]}"
    rule = OneBusyWriteAndRead(container, path)
    with FaultProxy(emulator.port, rule) as proxy:
        connection = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={account.key};"
            f"BlobEndpoint={proxy.endpoint}/{ACCOUNT};"
        )
        ran = amlport(
            "backup", f"{proxy.endpoint}/{ACCOUNT}", "--repo", f"az://{container}",
            "--account-key", account.key, "--workspace-file", str(ws.root / "workspace.yaml"),
            *extra, env={"AMLPORT_REPO_CONNECTION_STRING": connection},
        )  # fmt: skip
        injected = list(proxy.injected)
    assert account.key not in ran.stdout + ran.stderr
    return ran, injected


def test_a_throttled_repository_write_and_source_read_are_counted_in_backup_json(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    ran, injected = _backup(rel_emulator, tmp_path, "--json")
    assert ran.returncode == 0, ran.explain()
    doc = ran.json()
    assert sorted((method, what) for method, _, what in injected) == [
        ("GET", 503), ("PUT", 503),
    ], injected  # fmt: skip
    assert doc["retries"] == 2
    assert doc["retried"] == {
        "reads": 1, "writes": 1, "throttled": 2, "server_errors": 0, "connection": 0,
    }  # fmt: skip


def test_the_human_summary_says_what_was_retried(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    ran, injected = _backup(rel_emulator, tmp_path)
    assert ran.returncode == 0, ran.explain()
    assert len(injected) == 2, injected
    lines = [ln for ln in ran.stderr.splitlines() if ln.startswith("retried")]
    assert lines == ["retried 2 storage calls (1 read, 1 write; 2 throttled)"], lines


def test_a_throttled_target_write_is_counted_in_import_json(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    """The import target's own writes (``AzureTarget``): before, its ``retry_count`` was
    reported by no command."""
    repo, _ = small_backup(tmp_path)
    account = rel_emulator.account(ACCOUNT)
    target = target_section()
    suffix = uuid.uuid4().hex[:10]
    artifacts, blobstore = f"imp-{suffix}", f"azureml-blobstore-{suffix}"
    target.update(
        account=ACCOUNT,
        containers={"blobstore": blobstore, "artifacts": artifacts},
        datastores={"workspaceblobstore": blobstore, "workspaceartifactstore": artifacts},
    )
    map_file = tmp_path / "map.yaml"
    map_file.write_text(
        yaml.safe_dump({"target": target, "datastores": {
            "workspaceblobstore": "workspaceblobstore",
            "workspaceartifactstore": "workspaceartifactstore",
        }}),
        encoding="utf-8",
    )  # fmt: skip
    rule = OneBusyWriteAndRead(artifacts, read_path="-")  # no read of the target is faulted
    with FaultProxy(rel_emulator.port, rule) as proxy:
        ran = amlport(
            "import", str(repo), "--to", f"{proxy.endpoint}/{ACCOUNT}", "--map", str(map_file),
            "--account-key", account.key, "--json",
        )  # fmt: skip
        injected = list(proxy.injected)
    assert ran.returncode == 0, ran.explain()
    assert [(m, what) for m, _, what in injected] == [("PUT", 503)], injected
    doc = ran.json()
    assert doc["retries"] == 1
    assert doc["retried"] == {
        "reads": 0, "writes": 1, "throttled": 1, "server_errors": 0, "connection": 0,
    }  # fmt: skip
