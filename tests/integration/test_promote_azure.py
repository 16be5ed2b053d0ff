"""``amlport promote`` between two Azurite accounts: server-side copy, pointer re-bound."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.cliutil import amlport

from amlport.model import findings as F
from amlport.storage.opener import StorageAuth, open_source
from amlport.walk import walk

pytestmark = pytest.mark.azurite
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
BLOBSTORE = "azureml-blobstore-0b0b0b0b-1111-2222-3333-444444444444"
ARTIFACTS = "promoted-azureml"


def _map_file(tmp_path: Path, account: str) -> tuple[Path, Path]:
    target = {
        "account": account,
        "endpoint": "core.windows.net",
        "workspace": "mlw-prod",
        "subscription_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "resource_group": "rg-prod",
        "containers": {"blobstore": BLOBSTORE, "artifacts": ARTIFACTS},
        "datastores": {
            "prodblob": BLOBSTORE,
            "workspaceblobstore": BLOBSTORE,
            "workspaceartifactstore": ARTIFACTS,
        },
    }
    doc = {
        "target": target,
        "datastores": {
            "workspaceblobstore": "prodblob",
            "workspaceartifactstore": "workspaceartifactstore",
        },
    }
    path, ws = tmp_path / "prod.yaml", tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    ws.write_text(yaml.safe_dump(target), encoding="utf-8")
    return path, ws


def test_promote_designer_model_server_side(
    tmp_path: Path, azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace]
) -> None:
    source = azurite_workspaces["designer-autoprice"]
    target = azurite.target
    map_file, ws_file = _map_file(tmp_path, target.name)
    args = (
        "promote",
        source.url,
        "--workspace-file",  # the source's identity: its own long URIs are re-bound
        str(source.descriptor_file),
        "--to",
        target.url,
        "--map",
        str(map_file),
        "--select",
        "model:Trained_model",
        "--include",
        "models,pipelines,runs,data",
        "--connection-string",
        source.account.connection_string,
        "--target-connection-string",
        target.connection_string,
        "--json",
    )
    first = amlport(*args)
    assert first.returncode == 0, first.stderr
    doc = json.loads(first.stdout)
    assert doc["client_payload_bytes"] == 0 and doc["copied_server_side"] > 0
    for secret in (source.account.key, target.key):
        assert secret not in first.stdout + first.stderr

    with open_source(
        target.url,
        workspace_file=ws_file,
        auth=StorageAuth(connection_string=target.connection_string),
    ) as src:
        inv = walk(src)
    parent = inv.runs["a186e29d-388b-46bb-b111-726e328be005"]
    assert len(parent.children) == 7
    [pointer] = [p for p in inv.pointers if p.path.endswith(f"dcid.{TRAIN}/Trained_model")]
    assert not [f for f in inv.findings if f.code == F.DANGLING_POINTER and f.path == pointer.path]
    with open_source(
        target.url,
        workspace_file=ws_file,
        auth=StorageAuth(connection_string=target.connection_string),
    ) as src:
        raw = json.loads(src.read_bytes(ARTIFACTS, pointer.path.split("/", 1)[1]))
    assert raw["Account"] == target.name and raw["Container"] == BLOBSTORE
    assert raw["AmlDataStoreName"] == "prodblob"

    again = json.loads(amlport(*args).stdout)
    assert set(again["counts"]) == {"skip"} and again["client_payload_bytes"] == 0
