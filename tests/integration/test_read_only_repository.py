"""A disaster-recovery restore from an off-site repository the run may only read.

The off-site copy is often reachable with a read-only credential (a read+list SAS, a Reader
role, an immutable container). Before, every command but ``snapshots`` had to write a lock
blob, so ``restore`` and ``verify`` of such a copy failed with "access denied writing blob
…/locks/…" (exit 2): the backup could not be restored with the credential meant for it. Now a
shared lock that cannot be written is taken without a file (restic's ``--no-lock``), after
checking that no writer holds the repository, with one warning; commands that need an
exclusive lock (``forget``, ``backup``) still need write access.
"""

from __future__ import annotations

import json
import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from azure.storage.blob import ContainerSasPermissions, generate_container_sas
from helpers import azurite as az
from helpers.cliutil import amlport

pytestmark = pytest.mark.azurite

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces" / "designer-autoprice"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"
CONTAINER = "ro-offsite"


@pytest.fixture(scope="module")
def offsite(azurite: az.Azurite) -> tuple[az.AzuriteAccount, str]:
    """An az:// repository with one snapshot, and a read+list SAS for it."""
    account = azurite.source
    env = {"AMLPORT_REPO_CONNECTION_STRING": account.connection_string}
    res = amlport("backup", str(WS), "--repo", f"{account.url}/{CONTAINER}", env=env)
    assert res.returncode == 0, res.stderr
    sas = generate_container_sas(
        account.name,
        CONTAINER,
        account_key=account.key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(timezone.utc) + timedelta(hours=2),
    )
    return account, sas


def _blobs(account: az.AzuriteAccount) -> dict[str, str]:
    client = account.service_client().get_container_client(CONTAINER)
    return {b.name: str(b.etag) for b in client.list_blobs()}


def test_restore_and_verify_with_a_read_only_credential(
    offsite: tuple[az.AzuriteAccount, str], tmp_path: Path
) -> None:
    account, sas = offsite
    url = f"{account.url}/{CONTAINER}"
    before = _blobs(account)
    target = tmp_path / "t"
    res = amlport(
        "restore", url, "latest", "--to", str(target), "--map", str(QA), "--repo-sas-token", sas
    )
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("read-only to this credential") == 1
    assert any(p.name == "Trained_model" for p in target.rglob("*"))
    ver = amlport("verify", url, "--repo-sas-token", sas)
    assert ver.returncode == 0, ver.stderr
    assert _blobs(account) == before, "a read-only run wrote the repository"


def test_a_writer_holding_the_repository_still_stops_a_read_only_reader(
    offsite: tuple[az.AzuriteAccount, str], tmp_path: Path
) -> None:
    account, sas = offsite
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    lock = {
        "exclusive": True,
        "pid": os.getpid(),
        "hostname": socket.gethostname(),
        "created": now,
        "refreshed": now,
    }
    client = account.service_client().get_container_client(CONTAINER)
    client.upload_blob("locks/writer.json", json.dumps(lock).encode())
    try:
        res = amlport(
            "restore", f"{account.url}/{CONTAINER}", "latest", "--to", str(tmp_path / "t"),
            "--map", str(QA), "--repo-sas-token", sas,
        )  # fmt: skip
        assert res.returncode == 2 and "locked" in res.stderr.lower(), res.stderr
        assert not (tmp_path / "t").exists()
    finally:
        client.delete_blob("locks/writer.json")


def test_forget_still_needs_write_access(offsite: tuple[az.AzuriteAccount, str]) -> None:
    account, sas = offsite
    before = _blobs(account)
    res = amlport(
        "forget", f"{account.url}/{CONTAINER}", "--keep-last", "1", "--repo-sas-token", sas
    )
    assert res.returncode == 2 and "access denied" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert _blobs(account) == before
