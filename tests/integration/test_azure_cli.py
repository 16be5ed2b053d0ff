"""``amlport scan <account URL> --connection-string …`` prints what the local copy prints."""

from __future__ import annotations

import json

import pytest
from helpers import azurite as az
from helpers.cliutil import amlport

pytestmark = pytest.mark.azurite


def _summary(stdout: str) -> list[str]:
    """The scan summary without its first line (which names the location)."""
    return stdout.splitlines()[1:]


@pytest.mark.parametrize("name", ["designer-autoprice", "messy"])
def test_scan_of_azurite_account_prints_the_local_summary(
    name: str, azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace]
) -> None:
    ws = azurite_workspaces[name]
    conn = ws.account.connection_string
    remote = amlport(
        "scan", ws.url, "--connection-string", conn, "--workspace-file", str(ws.descriptor_file)
    )
    local = amlport("scan", str(ws.local_dir))
    assert remote.returncode == local.returncode, remote.stderr
    assert _summary(remote.stdout) == _summary(local.stdout)
    key = conn.split("AccountKey=")[1].split(";")[0]
    assert key not in remote.stdout + remote.stderr


def test_connection_string_from_the_environment(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace]
) -> None:
    ws = azurite_workspaces["sdk-bikeshare"]
    conn = ws.account.connection_string
    res = amlport("scan", ws.url, "--json", env={"AZURE_STORAGE_CONNECTION_STRING": conn})
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["inventory"]["counts"]["runs"] == 10


def test_wrong_key_is_one_line_exit_2(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace]
) -> None:
    ws = azurite_workspaces["sdk-bikeshare"]
    bad = (
        "DefaultEndpointsProtocol=http;AccountName={0};AccountKey={1};BlobEndpoint={2}/{0};".format(
            ws.account.name, "QUJD" * 22, azurite.endpoint
        )
    )
    res = amlport("scan", ws.url, "--connection-string", bad)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and "QUJD" not in res.stderr
