"""The fidelity test over Azurite: export each fixture, import it into another account with other
container and datastore names, rescan the target through the Azure source: same lineage."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az

from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importing import ImportRequest, run_import
from amlport.lineage import LineageGraph, build_graph
from amlport.model.mapping import Mapping
from amlport.storage.local import LocalSource
from amlport.storage.opener import StorageAuth, open_source, open_target
from amlport.walk import walk

pytestmark = pytest.mark.azurite
WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
NAMES = ["designer-autoprice", "v2-lendingclub", "sdk-bikeshare", "messy"]


def _mapping(account: str, index: int) -> tuple[Mapping, dict[str, object]]:
    blobstore = f"azureml-blobstore-f1de1170-0000-0000-0000-00000000000{index}"
    artifacts = f"fidelity{index}-azureml"
    target = {
        "account": account,
        "endpoint": "core.windows.net",
        "workspace": f"mlw-fid{index}",
        "containers": {"blobstore": blobstore, "artifacts": artifacts},
        "datastores": {
            "fidblob": blobstore,
            "workspaceblobstore": blobstore,
            "workspaceartifactstore": artifacts,
        },
    }
    doc = {
        "target": target,
        "datastores": {
            "workspaceblobstore": "fidblob",
            "workspaceartifactstore": "workspaceartifactstore",
        },
    }
    return Mapping.from_dict(doc), target


def _edges(lg: LineageGraph) -> Counter[tuple[str, str, str]]:
    return Counter((u, v, d["kind"]) for u, v, d in lg.g.edges(data=True))


@pytest.mark.parametrize("index,name", list(enumerate(NAMES)))
def test_fidelity_over_azurite(index: int, name: str, tmp_path: Path, azurite: az.Azurite) -> None:
    account = azurite.target
    repo = tmp_path / "repo"
    run_export(LocalSource(WS / name), repo, ExportRequest(include=frozenset(INCLUDE_KINDS)))
    mapping, target_doc = _mapping(account.name, index)
    auth = StorageAuth(connection_string=account.connection_string)
    with open_target(account.url, descriptor=mapping.target, auth=auth) as target:
        first = run_import(repo, target, ImportRequest(mapping=mapping))
        again = run_import(repo, target, ImportRequest(mapping=mapping))
    assert int(first.exit_code) == 0, first.to_dict()
    assert set(again.counts) == {"skip"} and again.record is None
    ws_file = tmp_path / "workspace.yaml"
    ws_file.write_text(yaml.safe_dump(target_doc), encoding="utf-8")
    with open_source(account.url, workspace_file=ws_file, auth=auth) as src:
        target_graph = build_graph(walk(src))
    source_graph = build_graph(walk(LocalSource(WS / name)))
    assert set(target_graph.g.nodes) == set(source_graph.g.nodes)
    assert _edges(target_graph) == _edges(source_graph)
