"""``amlport audit --arm-live`` end to end: the CLI, the real azure-mgmt clients, the ARM replay
server (and Azurite for the data plane and the walk). A healthy deployment checks every fact;
each fact flipped in the served response fails exactly its rule."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from azure.storage.blob import BlobServiceClient, RetentionPolicy
from helpers import armreplay as ar
from helpers import azurite as az
from typer.testing import CliRunner

from amlport.audit.catalog import load_rules
from amlport.cli.app import app

SUB, RG, WS = ar.BIKESHARE_SUB, ar.BIKESHARE_RG, ar.BIKESHARE_WS
RESILIENCE = {r.id for r in load_rules() if r.category == "resilience"}
Bodies = dict[str, Any]


def workspace_file(folder: Path, account: str, guid: str) -> Path:
    path = folder / "workspace.yaml"
    doc = {
        "account": account,
        "subscription_id": SUB,
        "resource_group": RG,
        "workspace": WS,
        "workspace_id": guid,
        "containers": {"blobstore": f"azureml-blobstore-{guid}", "artifacts": "azureml"},
    }
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


def run_audit(*args: str) -> tuple[int, dict[str, Any], str]:
    res = CliRunner().invoke(app, ["audit", *args, "--json"], env={"COLUMNS": "200"})
    assert res.exit_code in (0, 1, 5), (res.exit_code, res.stdout, res.stderr)
    return res.exit_code, json.loads(res.stdout), res.stderr


def states(report: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for r in report["results"]:
        out.setdefault(r["rule_id"], set()).add(r["state"])
    return out


# --- control plane only: every resilience rule, and each one flipped ---------------------------

GUID = "ecd26aa2-5440-4e86-8e7f-527cb96ef823"
ACCOUNT = "stbikesharesdk4417"


@pytest.fixture
def wsfile(tmp_path: Path) -> Path:
    return workspace_file(tmp_path, ACCOUNT, GUID)


def test_a_healthy_deployment_passes_every_resilience_rule(
    arm: ar.ReplayServer, wsfile: Path
) -> None:
    arm.serve_all(ar.bikeshare_deployment(ACCOUNT, GUID).bodies())
    code, report, _ = run_audit("--arm-live", "--workspace-file", str(wsfile), "--fail-on", "low")
    got = {k: v for k, v in states(report).items() if k in RESILIENCE}
    assert got == {rule: {"pass"} for rule in RESILIENCE}
    assert code == 0


def _props(path: Callable[[ar.Deployment], str], change: Callable[[dict[str, Any]], None]) -> Any:
    def flip(d: ar.Deployment, bodies: Bodies) -> None:
        change(bodies[path(d)]["properties"])

    return flip


def _sku(d: ar.Deployment, bodies: Bodies) -> None:
    bodies[d.storage_id]["sku"]["name"] = "Standard_LRS"


def _permanent(d: ar.Deployment, bodies: Bodies) -> None:
    bodies[f"{d.storage_id}/blobServices/default"] = d.permanent_delete_service()


def _or_rules(d: ar.Deployment, bodies: Bodies) -> None:
    for pid in d.policy_ids():
        bodies[f"{d.storage_id}/objectReplicationPolicies/{pid}"] = d.policy(pid, ("azureml",))


def _no_locks(d: ar.Deployment, bodies: Bodies) -> None:
    bodies[f"/subscriptions/{SUB}/providers/Microsoft.Authorization/locks"]["value"] = []


def _readonly(d: ar.Deployment, bodies: Bodies) -> None:
    """The published example's lock: ReadOnly on the resource group."""
    example = ar.example(f"{ar.AU}/ManagementLocks_ListAtResourceGroupLevel.json")["value"][0]
    lock = d.lock(d.rg_id, example["name"], example["properties"]["level"])
    bodies[f"/subscriptions/{SUB}/providers/Microsoft.Authorization/locks"]["value"].append(lock)


def _published_hbi(d: ar.Deployment, bodies: Bodies) -> None:
    published = ar.example(f"{ar.ML}/stable/2024-04-01/examples/Workspace/get.json")
    bodies[d.workspace_id]["properties"]["hbiWorkspace"] = published["properties"]["hbiWorkspace"]


SA: Callable[[ar.Deployment], str] = lambda d: d.storage_id  # noqa: E731
SVC: Callable[[ar.Deployment], str] = lambda d: f"{d.storage_id}/blobServices/default"  # noqa: E731
WSP: Callable[[ar.Deployment], str] = lambda d: d.workspace_id  # noqa: E731
KVP: Callable[[ar.Deployment], str] = lambda d: d.vault_id  # noqa: E731

FLIPS: dict[str, tuple[str, Callable[[ar.Deployment, Bodies], None]]] = {
    "lrs": ("AMLP-RES-001", _sku),
    "secondary-unavailable": (
        "AMLP-RES-008",
        _props(SA, lambda p: p.update(statusOfSecondary="unavailable")),
    ),
    "geo-bootstrap": (
        "AMLP-RES-008",
        _props(SA, lambda p: p["geoReplicationStats"].update(status="Bootstrap")),
    ),
    "blob-soft-delete-off": (
        "AMLP-RES-002",
        _props(SVC, lambda p: p["deleteRetentionPolicy"].update(enabled=False)),
    ),
    "container-soft-delete-off": (
        "AMLP-RES-003",
        _props(SVC, lambda p: p.pop("containerDeleteRetentionPolicy")),
    ),
    "versioning-off": ("AMLP-RES-004", _props(SVC, lambda p: p.update(isVersioningEnabled=False))),
    "change-feed-off": (
        "AMLP-RES-005",
        _props(SVC, lambda p: p["changeFeed"].update(enabled=False)),
    ),
    "restore-off": ("AMLP-RES-006", _props(SVC, lambda p: p.pop("restorePolicy"))),
    "or-misses-blobstore": ("AMLP-RES-007", _or_rules),
    "permanent-delete": ("AMLP-RES-009", _permanent),
    "no-locks": ("AMLP-LCK-001", _no_locks),
    "readonly-lock": ("AMLP-LCK-002", _readonly),
    "kv-soft-delete-off": ("AMLP-KV-001", _props(KVP, lambda p: p.update(enableSoftDelete=False))),
    "kv-purge-off": ("AMLP-KV-002", _props(KVP, lambda p: p.pop("enablePurgeProtection"))),
    "no-app-insights": ("AMLP-WS-001", _props(WSP, lambda p: p.pop("applicationInsights"))),
    "no-registry": ("AMLP-WS-002", _props(WSP, lambda p: p.pop("containerRegistry"))),
    "public": ("AMLP-WS-003", _props(WSP, lambda p: p.update(publicNetworkAccess="Enabled"))),
    "not-hbi": ("AMLP-WS-004", _published_hbi),
}


@pytest.mark.parametrize("flip", sorted(FLIPS))
def test_each_flipped_fact_fails_its_rule(arm: ar.ReplayServer, wsfile: Path, flip: str) -> None:
    rule, change = FLIPS[flip]
    d = ar.bikeshare_deployment(ACCOUNT, GUID)
    bodies = d.bodies()
    change(d, bodies)
    arm.serve_all(bodies)
    code, report, _ = run_audit("--arm-live", "--workspace-file", str(wsfile), "--fail-on", "low")
    got = {k: v for k, v in states(report).items() if k in RESILIENCE}
    assert got == {r: ({"fail"} if r == rule else {"pass"}) for r in RESILIENCE}
    assert code == 5


def test_every_resilience_rule_has_a_flip() -> None:
    assert {rule for rule, _ in FLIPS.values()} == RESILIENCE


def test_a_locks_gap_is_not_checked_not_failed(arm: ar.ReplayServer, wsfile: Path) -> None:
    d = ar.bikeshare_deployment(ACCOUNT, GUID)
    bodies = d.bodies()
    bodies.pop(f"/subscriptions/{SUB}/providers/Microsoft.Authorization/locks")
    arm.serve_all(bodies)
    arm.serve(
        "GET",
        f"/subscriptions/{SUB}/providers/Microsoft.Authorization/locks",
        ar.error(403, "AuthorizationFailed", "no subscription read"),
    )
    for path in ar.lock_scope_paths(d):
        arm.serve("GET", path, {"value": []})
    _, report, _ = run_audit("--arm-live", "--workspace-file", str(wsfile))
    lck = {r["rule_id"]: r for r in report["results"] if r["rule_id"].startswith("AMLP-LCK")}
    assert lck["AMLP-LCK-001"]["state"] == "not_checked"
    assert "HTTP 403" in lck["AMLP-LCK-001"]["message"]
    assert lck["AMLP-LCK-002"]["state"] == "not_checked"


# --- with Azurite: the data plane, the walk and the model registry ----------------------------


@pytest.fixture
def bikeshare(azurite_workspaces: dict[str, az.LoadedWorkspace]) -> Iterator[az.LoadedWorkspace]:
    """The sdk-bikeshare account with blob soft delete set to what the replay says (300 days),
    restored afterwards."""
    ws = azurite_workspaces["sdk-bikeshare"]  # committed: a missing one fails, never skips
    client: BlobServiceClient = ws.account.service_client()
    original = client.get_service_properties()["delete_retention_policy"]
    client.set_service_properties(delete_retention_policy=RetentionPolicy(enabled=True, days=300))
    try:
        yield ws
    finally:
        client.set_service_properties(delete_retention_policy=original)
        client.close()


def _guid(ws: az.LoadedWorkspace) -> str:
    (blobstore,) = [c for c in ws.containers if c.startswith("azureml-blobstore-")]
    return blobstore.removeprefix("azureml-blobstore-")


def _live_audit(ws: az.LoadedWorkspace, folder: Path) -> tuple[int, dict[str, Any], str]:
    wsfile = workspace_file(folder, ws.account.name, _guid(ws))
    args = [ws.url, "--connection-string", ws.account.connection_string]
    return run_audit(*args, "--workspace-file", str(wsfile), "--arm-live")


def _candidates(ws: az.LoadedWorkspace, arm: ar.ReplayServer, folder: Path) -> list[str]:
    """The run-output models HYG-004 would flag if the registry were empty."""
    arm.serve_all(
        ar.bikeshare_deployment(ws.account.name, _guid(ws), sku="Standard_RAGRS").bodies()
    )
    _, report, _ = _live_audit(ws, folder)
    arm.reset()
    return [r["path"] for r in report["results"] if r["rule_id"] == "AMLP-HYG-004"]


@pytest.mark.azurite
def test_live_audit_over_azurite_checks_every_rule(
    arm: ar.ReplayServer, bikeshare: az.LoadedWorkspace, tmp_path: Path
) -> None:
    candidates = _candidates(bikeshare, arm, tmp_path)
    assert len(candidates) >= 2
    # Register the first one in the workspace's registry (as az ml model create would).
    registered = candidates[0].split("/", 1)[1]
    uri = (
        f"azureml://subscriptions/{SUB}/resourcegroups/{RG}/workspaces/{WS}/datastores/"
        f"workspaceartifactstore/paths/{registered}"
    )
    d = ar.bikeshare_deployment(
        bikeshare.account.name, _guid(bikeshare), sku="Standard_RAGRS", registered_model_uris=(uri,)
    )
    arm.serve_all(d.bodies())
    code, report, stderr = _live_audit(bikeshare, tmp_path)
    assert report["summary"]["not_checked"] == 0, [
        (r["rule_id"], r["message"]) for r in report["results"] if r["state"] == "not_checked"
    ]
    assert "warning" not in stderr  # the data plane and the replay agree (SKU, soft delete)
    hyg4 = [r for r in report["results"] if r["rule_id"] == "AMLP-HYG-004"]
    assert {r["path"] for r in hyg4} == set(candidates[1:])
    assert all(r["state"] == "fail" and "model registry" in r["message"] for r in hyg4)
    got = {k: v for k, v in states(report).items() if k in RESILIENCE}
    assert got == {rule: {"pass"} for rule in RESILIENCE}
    assert code == 1  # HYG-004 is medium, below --fail-on high
