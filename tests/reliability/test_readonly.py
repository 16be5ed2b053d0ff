"""A source opened with a read + list-only SAS: the export, lineage and audit flows work, and
not one write reaches the storage.

The private emulator logs every request it receives (``--debug``); after the flows, every
request since the start is a GET or a HEAD. The SAS itself would refuse a write (checked
too), and amlport's own guard refuses one before it leaves the process (checked too, with no
request reaching the emulator).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient
from helpers import azurite as az
from helpers.rel_azurite import PrivateAzurite
from helpers.rel_workspace import run_in_process as amlport

from amlport.errors import ReadOnlyViolation
from amlport.storage.azure import open_azure_source
from amlport.storage.opener import StorageAuth

pytestmark = [pytest.mark.azurite]

WORKSPACES = {"designer-autoprice": "relreadonly", "messy": "relreadonly2"}
SAFE = {"GET", "HEAD"}


@pytest.fixture(scope="module")
def loaded(rel_emulator: PrivateAzurite) -> Iterator[dict[str, tuple[str, str]]]:
    """Fixture name -> (account URL, read+list SAS), after uploading with the account key."""
    out = {}
    for name, account_name in WORKSPACES.items():
        account = rel_emulator.account(account_name)
        az.upload_workspace(account.connection_string, az.FIXTURE_WORKSPACES / name)
        out[name] = (account.url, az.read_list_account_sas(account))
    yield out


def _writes(requests: list[tuple[str, str]]) -> list[str]:
    return [f"{method} {url.split('?')[0]}" for method, url in requests if method not in SAFE]


@pytest.mark.parametrize("name", sorted(WORKSPACES))
def test_flows_with_a_read_list_sas_send_no_write(
    name: str, loaded: dict[str, tuple[str, str]], rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    url, sas = loaded[name]
    desc = str(az.FIXTURE_WORKSPACES / name / "workspace.yaml")
    auth = ("--sas-token", sas, "--workspace-file", desc)
    mark = rel_emulator.mark()

    scan = amlport("scan", url, "--json", *auth)
    assert scan.returncode in (0, 1), scan.explain()
    graph = amlport("lineage", url, "--format", "json", *auth)
    assert graph.returncode in (0, 1), graph.explain()
    plan = amlport("export", url, "--to", str(tmp_path / "dry"), "--dry-run", *auth)
    assert plan.returncode in (0, 1), plan.explain()
    repo = tmp_path / "repo"
    export = amlport(
        "export",
        url,
        "--to",
        str(repo),
        "--include",
        "models,pipelines,environments,runs,data",
        *auth,
    )
    assert export.returncode in (0, 1), export.explain()
    again = amlport("export", url, "--to", str(repo), *auth)  # incremental: reads, reuses
    assert again.returncode in (0, 1), again.explain()
    audit = amlport("audit", url, "--format", "json", *auth)
    assert audit.returncode in (0, 1, 5), audit.explain()
    assert amlport("verify", str(repo)).returncode == 0

    seen = rel_emulator.requests_since(mark)
    assert len(seen) > 20  # the flows really read from the emulator
    assert _writes(seen) == []
    for ran in (scan, graph, plan, export, again, audit):
        assert sas.split("sig=")[1][:12] not in ran.stdout + ran.stderr


def test_the_sas_refuses_writes_and_amlport_refuses_them_first(
    loaded: dict[str, tuple[str, str]], rel_emulator: PrivateAzurite
) -> None:
    url, sas = loaded["designer-autoprice"]
    desc = az.FIXTURE_WORKSPACES / "designer-autoprice" / "workspace.yaml"
    from amlport.storage.local import load_descriptor_file

    descriptor = load_descriptor_file(desc)
    container = descriptor.blobstore_container

    raw = BlobServiceClient(url, credential=sas)  # the SDK alone: the service says no
    with pytest.raises(HttpResponseError) as denied:
        raw.get_blob_client(container, "amlport-write-probe.txt").upload_blob(b"x")
    assert denied.value.status_code == 403

    mark = rel_emulator.mark()
    with open_azure_source(url, descriptor=descriptor, auth=StorageAuth(sas_token=sas)) as source:
        client = source.blob_service_client  # type: ignore[attr-defined]
        with pytest.raises(ReadOnlyViolation):
            client.get_blob_client(container, "amlport-write-probe.txt").upload_blob(b"x")
        with pytest.raises(ReadOnlyViolation):
            client.get_container_client(container).delete_blob("azureml/anything")
    assert _writes(rel_emulator.requests_since(mark)) == []  # refused before it left
