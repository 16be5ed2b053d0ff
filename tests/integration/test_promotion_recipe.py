"""docs/recipes/promotion.md executed as written, over Azurite: dev → qa → prod between three
accounts whose QA and prod workspaces use other container and datastore names than dev.

Every ``amlport`` line of the recipe runs as a user would run it (``$VARS`` from the
environment the recipe's first block sets, relative files in the working folder); the steps a
person does by hand ("fill in target:") are done here, and every step's outcome is checked:
QA and prod record their identity, prod's provenance lists the dev and the QA hop, QA and
prod rescanned by URL alone give dev's lineage graph, and ``diff dev prod --map …`` reports
no difference — and does report a file changed in prod afterwards. Also here: a restored
Azure target rescanned by URL alone has the source's graph (the identity record).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import uuid
from pathlib import Path
from typing import Any

import networkx as nx
import pytest
import yaml
from helpers import azurite as az
from helpers.cliutil import amlport

from amlport.backup import BackupRequest, run_backup
from amlport.lineage import build_graph
from amlport.model.provenance import IDENTITY_NAME, IMPORTS_PREFIX
from amlport.storage.local import LocalSource
from amlport.storage.opener import StorageAuth, open_source
from amlport.walk import walk

pytestmark = pytest.mark.azurite
REPO_ROOT = Path(__file__).resolve().parents[2]
RECIPE = REPO_ROOT / "docs" / "recipes" / "promotion.md"
DEV = "designer-autoprice"


def recipe_commands() -> list[list[str]]:
    """The ``amlport`` lines of the recipe's bash blocks, split as bash would (no shell)."""
    text = RECIPE.read_text(encoding="utf-8")
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [line for line in block.splitlines() if line.startswith("amlport ")]
    return [[os.path.expandvars(w) for w in shlex.split(line)[1:]] for line in lines]


def _stage(prefix: str, account: str, workspace: str, blob_ds: str) -> dict[str, Any]:
    """A workspace with hub-style containers of its own (the account is shared by tests)."""
    tag = f"{prefix}{uuid.uuid4().hex[:8]}"
    blob, art = f"{tag}-blobstore", f"{tag}-azureml"
    return {
        "account": account,
        "endpoint": "core.windows.net",
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": f"rg-{prefix}",
        "workspace": workspace,
        "containers": {"blobstore": blob, "artifacts": art},
        "datastores": {
            blob_ds: blob,
            "workspaceblobstore": blob,
            "workspaceartifactstore": art,
        },
    }


def _fill_in(path: Path, target: dict[str, Any], blob_ds: str) -> dict[str, Any]:
    """What the recipe asks a person to do: the target, and the datastores mapped. One source
    datastore per target container (two onto one are refused): the source's own name for its
    blobstore when it has one (QA's files name ``qablob``), else the built-in one."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    own = sorted(ds for ds in doc["datastores"] if ds.endswith("blob"))
    doc["target"] = target
    doc["datastores"] = {
        (own[0] if own else "workspaceblobstore"): blob_ds,
        "workspaceartifactstore": "workspaceartifactstore",
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return doc


def _graph(url: str, conn: str) -> nx.MultiDiGraph:
    with open_source(url, auth=StorageAuth(connection_string=conn)) as src:
        inv = walk(src)
    g = nx.MultiDiGraph()
    lg = build_graph(inv).g
    g.add_nodes_from((n, {"kind": d["kind"]}) for n, d in lg.nodes(data=True))
    g.add_edges_from((u, v, {"kind": d["kind"]}) for u, v, d in lg.edges(data=True))
    return g


def _same_graph(a: nx.MultiDiGraph, b: nx.MultiDiGraph) -> None:
    assert set(a.nodes) == set(b.nodes)  # datastore-relative ids: the same ids
    assert sorted((u, v, k["kind"]) for u, v, k in a.edges(data=True)) == sorted(
        (u, v, k["kind"]) for u, v, k in b.edges(data=True)
    )


def _read(account: az.AzuriteAccount, container: str, name: str) -> dict[str, Any]:
    blob = account.service_client().get_blob_client(container, name)
    return json.loads(blob.download_blob().readall())


def test_the_promotion_recipe_runs_as_written(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    azurite: az.Azurite,
    azurite_workspaces: dict[str, az.LoadedWorkspace],
) -> None:
    dev = azurite_workspaces[DEV]
    qa_acct, prod_acct = azurite.source, azurite.target
    qa = _stage("qa", qa_acct.name, "mlw-qa", "qablob")
    prod = _stage("pr", prod_acct.name, "mlw-prod", "prodblob")
    qa_url = f"{qa_acct.url}/{qa['containers']['blobstore']}"  # the account holds others
    prod_url = f"{prod_acct.url}/{prod['containers']['blobstore']}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dev-workspace.yaml").write_bytes(dev.descriptor_file.read_bytes())
    env = {
        "DEV": dev.url,
        "QA": qa_url,
        "PROD": prod_url,
        "DEV_CONN": dev.account.connection_string,
        "QA_CONN": qa_acct.connection_string,
        "PROD_CONN": prod_acct.connection_string,
        "KINDS": "components,data,environments,models,pipelines,runs",
    }
    monkeypatch.setattr(os, "environ", {**os.environ, **env})
    steps = recipe_commands()
    assert [s[:2] for s in steps] == [
        ["map", "init"], ["promote", dev.url], ["promote", dev.url],
        ["map", "init"], ["promote", qa_url], ["diff", dev.url],
    ]  # fmt: skip
    secrets = [dev.account.key, qa_acct.key, prod_acct.key]

    def run(args: list[str], codes: tuple[int, ...] = (0,)) -> Any:
        done = amlport(*args)
        assert done.returncode in codes, (args[:2], done.stdout[-2000:], done.stderr[-3000:])
        assert not any(s in done.stdout + done.stderr for s in secrets)
        return done

    # 1. map init from the dev workspace itself (no export)
    run(steps[0])
    qa_map = _fill_in(tmp_path / "qa.yaml", qa, "qablob")
    assert qa_map["source"].startswith(f"{dev.account.name}/")
    # 2. dry run writes nothing, then the promotion
    run(steps[1], (0, 1))
    assert not qa_acct.service_client().get_container_client(qa["containers"]["artifacts"]).exists()
    run(steps[2])
    art = qa["containers"]["artifacts"]
    assert _read(qa_acct, art, IDENTITY_NAME)["workspace"]["workspace"] == "mlw-qa"
    # 3. QA by its URL alone: map init reads its identity (datastores, workspace)
    run(steps[3])
    prod_map = yaml.safe_load((tmp_path / "prod.yaml").read_text(encoding="utf-8"))
    assert prod_map["source"] == f"{qa_acct.name}/mlw-qa"
    assert "qablob" in prod_map["datastores"]
    _fill_in(tmp_path / "prod.yaml", prod, "prodblob")
    # 4. QA → prod: both earlier hops, with account and workspace
    doc = json.loads(run(steps[4]).stdout)
    hops = [(h["account"], h["workspace"]) for h in doc["hops"]]
    dev_ws = yaml.safe_load(dev.descriptor_file.read_text(encoding="utf-8"))["workspace"]
    assert hops == [(dev.account.name, dev_ws), (qa_acct.name, "mlw-qa")]
    assert doc["client_payload_bytes"] == 0 and doc["copied_server_side"] > 0
    assert doc["rewrites"] and {"file", "location", "before", "after", "rule"} <= set(
        doc["rewrites"][0]
    )
    record = _read(prod_acct, prod["containers"]["artifacts"], doc["record"].split("/", 1)[1])
    assert [(h["account"], h["workspace"]) for h in record["hops"]] == hops
    assert record["rewrites"] == doc["rewrites"]
    assert doc["record"].split("/", 1)[1].startswith(IMPORTS_PREFIX)
    # rescanned by URL alone, QA and prod have dev's lineage graph
    dev_graph = _graph(dev.url, dev.account.connection_string)
    _same_graph(dev_graph, _graph(qa_url, qa_acct.connection_string))
    _same_graph(dev_graph, _graph(prod_url, prod_acct.connection_string))
    # 5. no drift from dev to prod under both maps
    same = run(steps[5])
    assert "0 added, 0 removed, 0 changed" in same.stdout, same.stdout
    assert "audit:  0 facts added, 0 removed" in same.stdout, same.stdout
    # a file changed in prod is drift (exit 1), named in --json
    blob = prod_acct.service_client().get_blob_client(
        prod["containers"]["blobstore"],
        "azureml/a79bd916-2790-4202-89ed-fbdede3ccf1d/Trained_model/data_type.json",
    )
    blob.upload_blob(blob.download_blob().readall() + b" ", overwrite=True)
    drift = run([*steps[5], "--json"], (1,))
    changed = json.loads(drift.stdout)["files"]["changed"]
    assert changed == 1
    # a credential pasted into a file of prod is an audit fact added, named by its path
    leak = "LocalUpload/notes/[leak]/[/]x.py"  # markup (Azurite lists no control char)
    prod_acct.service_client().get_blob_client(prod["containers"]["blobstore"], leak).upload_blob(
        b'c = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=' + b"A" * 86 + b'=="\n'
    )
    audit = json.loads(run([*steps[5], "--json"], (1,)).stdout)["audit"]
    assert [(f["rule_id"], f["subject"]) for f in audit["added"]] == [
        ("AMLP-HYG-002", f"files/workspaceblobstore/{leak}")
    ]
    assert audit["removed"] == [] and audit["unchanged"] > 0


def test_a_restored_azure_target_rescanned_by_url_alone_has_the_source_graph(
    tmp_path: Path, azurite: az.Azurite
) -> None:
    source = REPO_ROOT / "fixtures" / "workspaces" / DEV
    repo = tmp_path / "repo"
    run_backup(LocalSource(source), repo, BackupRequest())
    target = _stage("rs", azurite.target.name, "mlw-dr", "drblob")
    map_file = tmp_path / "dr.yaml"
    map_file.write_text(
        yaml.safe_dump(
            {
                "target": target,
                "datastores": {
                    "workspaceblobstore": "drblob",
                    "workspaceartifactstore": "workspaceartifactstore",
                },
            }
        ),
        encoding="utf-8",
    )
    conn = azurite.target.connection_string
    done = amlport(
        "restore", str(repo), "latest", "--to", azurite.target.url, "--map", str(map_file),
        "--connection-string", conn,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    url = f"{azurite.target.url}/{target['containers']['blobstore']}"
    local = nx.MultiDiGraph()
    lg = build_graph(walk(LocalSource(source))).g
    local.add_nodes_from((n, {"kind": d["kind"]}) for n, d in lg.nodes(data=True))
    local.add_edges_from((u, v, {"kind": d["kind"]}) for u, v, d in lg.edges(data=True))
    _same_graph(local, _graph(url, conn))
    # the map file is a workspace file: the same graph through --workspace-file
    scanned = amlport("lineage", url, "--workspace-file", str(map_file), "--connection-string",
                      conn, "--json")  # fmt: skip
    assert scanned.returncode in (0, 1), scanned.stderr[-2000:]
    assert {n["id"] for n in json.loads(scanned.stdout)["nodes"]} == set(local.nodes)
