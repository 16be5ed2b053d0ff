"""A workspace walked from Azurite gives exactly what the same workspace gives from disk.

Every fixture workspace (``fixtures/workspaces/<name>``) is uploaded once into an Azurite
account of its own (see ``tests/conftest.py``), then walked through ``AzureSource`` and through
``LocalSource``; inventories and lineage graphs must be equal. The Azure side reads with a
read + list-only SAS (what the docs recommend) or with a connection string.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers import azurite as az

from amlport.lineage import build_graph
from amlport.storage.opener import StorageAuth, open_source
from amlport.walk import walk

pytestmark = pytest.mark.azurite

WORKSPACES = [d.name for d in az.fixture_workspace_dirs()]
AUTHS: dict[str, Callable[[az.AzuriteAccount], StorageAuth]] = {
    "read-list-sas": lambda acct: StorageAuth(sas_token=az.read_list_account_sas(acct)),
    "connection-string": lambda acct: StorageAuth(connection_string=acct.connection_string),
}


def _canonical(data: Any) -> Any:
    """JSON round trip: tuples become lists, so equal content compares equal."""
    return json.loads(json.dumps(data, sort_keys=True, default=str))


def _sorted_node_link(node_link: dict[str, Any]) -> dict[str, Any]:
    out = dict(_canonical(node_link))
    out["nodes"] = sorted(out["nodes"], key=lambda n: json.dumps(n, sort_keys=True))
    out["links"] = sorted(out["links"], key=lambda e: json.dumps(e, sort_keys=True))
    return out


def _walk(location: str, *, workspace_file: Path | None, auth: StorageAuth | None = None) -> Any:
    with open_source(location, workspace_file=workspace_file, auth=auth) as source:
        inventory = walk(source)
    return inventory


@pytest.fixture(scope="module")
def local_walks() -> dict[str, Any]:
    """Each fixture walked from its local folder, once."""
    root = az.FIXTURE_WORKSPACES
    walks = {name: _walk(str(root / name), workspace_file=None) for name in WORKSPACES}
    for name, inventory in walks.items():  # parity of two empty walks would prove nothing
        # (the nested-pipeline project holds specs and uploads, no run: its specs compare)
        assert inventory.blobs > 0 and (inventory.runs or inventory.components), f"{name}: empty"
    return walks


@pytest.mark.parametrize("auth_kind", sorted(AUTHS))
@pytest.mark.parametrize("name", WORKSPACES)
def test_walk_parity_with_descriptor(
    name: str,
    auth_kind: str,
    azurite_workspaces: dict[str, az.LoadedWorkspace],
    local_walks: dict[str, Any],
) -> None:
    """Given the same workspace.yaml, nothing may differ, the "source" key included: it is
    the workspace descriptor, which both sides read from the same file."""
    ws = azurite_workspaces[name]
    remote = _walk(ws.url, workspace_file=ws.descriptor_file, auth=AUTHS[auth_kind](ws.account))
    local = local_walks[name]
    assert _canonical(remote.to_dict()) == _canonical(local.to_dict())
    assert _sorted_node_link(build_graph(remote).to_node_link()) == _sorted_node_link(
        build_graph(local).to_node_link()
    )


@pytest.mark.parametrize("name", WORKSPACES)
def test_walk_parity_with_discovery(
    name: str,
    azurite_workspaces: dict[str, az.LoadedWorkspace],
    local_walks: dict[str, Any],
) -> None:
    """Without workspace.yaml the Azure side discovers the containers by listing the account.

    Only "source" legitimately differs: a live account does not say which subscription,
    resource group, workspace or region it belongs to (those come from workspace.yaml), so
    the discovered descriptor holds the account, the endpoint and the containers only. Those
    must still match; everything derived from the blobs must be identical.
    """
    ws = azurite_workspaces[name]
    remote = _walk(ws.url, workspace_file=None, auth=AUTHS["read-list-sas"](ws.account))
    local = local_walks[name]
    remote_dict, local_dict = _canonical(remote.to_dict()), _canonical(local.to_dict())
    remote_source, local_source = remote_dict.pop("source"), local_dict.pop("source")
    for key in ("account", "endpoint", "containers"):
        assert remote_source[key] == local_source[key], key
    assert remote_dict == local_dict
    assert _sorted_node_link(build_graph(remote).to_node_link()) == _sorted_node_link(
        build_graph(local).to_node_link()
    )
