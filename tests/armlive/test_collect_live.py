"""``collect_live`` through the real azure-mgmt clients against the ARM replay server."""

from __future__ import annotations

import pytest
from helpers import armreplay as ar

from amlport.audit import armlive
from amlport.audit.facts import Retention

SUB, GUID = ar.BIKESHARE_SUB, ar.BIKESHARE_GUID
CONTAINERS = (f"azureml-blobstore-{GUID}", "azureml")


def target(d: ar.Deployment) -> armlive.LiveTarget:
    return armlive.LiveTarget(d.subscription, d.resource_group, d.account, d.workspace)


def test_every_fact_is_read_through_the_sdks(arm: ar.ReplayServer) -> None:
    d = ar.bikeshare_deployment(
        registered_model_uris=("azureml://jobs/run-1/outputs/artifacts/paths/model/",)
    )
    arm.serve_all(d.bodies())
    cp = armlive.collect_live(target(d))
    unknown = {k: getattr(cp, k).reason for k in vars(cp) if hasattr(getattr(cp, k), "known")}
    assert all(getattr(cp, k).known for k in unknown), unknown
    assert cp.storage.value and cp.storage.value.sku == "Standard_GZRS"
    geo = cp.storage.value.geo
    assert (geo.status_of_secondary, geo.replication_status) == ("available", "Live")
    assert cp.blob_soft_delete.value == Retention(True, 300)
    assert cp.container_soft_delete.value == Retention(True, 14)
    assert cp.restore_policy.value == Retention(True, 6)
    assert cp.permanent_delete.value is False and cp.versioning.value and cp.change_feed.value
    policies = cp.replication.value or ()
    assert len(policies) == 2 and all(
        p.rules == tuple((c, c) for c in CONTAINERS) for p in policies
    )
    assert {lk.name for lk in cp.locks.value or ()} == {
        "rg-cannot-delete",
        "ws-cannot-delete",
        "st-cannot-delete",
    }
    ws = cp.workspace.value
    assert ws and ws.workspace_guid == GUID and ws.hbi_workspace is True
    assert ws.public_network_access == "Disabled"
    assert ws.application_insights_id and ws.application_insights_id.endswith("/testinsights")
    assert ws.container_registry_id and SUB in ws.container_registry_id
    kv = cp.key_vault.value
    assert kv and (kv.soft_delete, kv.purge_protection, kv.retention_days) == (True, True, 90)
    assert cp.registry.value == d.registered_model_uris
    assert cp.lock_gaps == ()


def test_calls_carry_a_bearer_token_and_only_read(arm: ar.ReplayServer) -> None:
    d = ar.bikeshare_deployment()
    arm.serve_all(d.bodies())
    armlive.collect_live(target(d))
    assert arm.seen and {s.method for s in arm.seen} == {"GET"}
    policy_gets = [p for p in arm.paths_seen() if "/objectreplicationpolicies/" in p.lower()]
    assert len(policy_gets) == 2  # each policy read on its own, for its rules


def test_a_forbidden_call_leaves_only_its_fact_unknown(arm: ar.ReplayServer) -> None:
    d = ar.bikeshare_deployment()
    bodies = d.bodies()
    vault = bodies.pop(d.vault_id)
    assert vault
    arm.serve_all(bodies)
    arm.serve("GET", d.vault_id, ar.error(403, "AuthorizationFailed", "no read on the vault"))
    cp = armlive.collect_live(target(d))
    assert not cp.key_vault.known and "HTTP 403" in str(cp.key_vault.reason)
    assert cp.workspace.known and cp.storage.known and cp.locks.known


def test_without_subscription_lock_rights_each_scope_is_listed(arm: ar.ReplayServer) -> None:
    d = ar.bikeshare_deployment()
    bodies = d.bodies()
    sub_locks = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/locks"
    everything = bodies.pop(sub_locks)["value"]
    arm.serve_all(bodies)
    arm.serve("GET", sub_locks, ar.error(403, "AuthorizationFailed", "subscription scope"))
    for path, scope in zip(
        ar.lock_scope_paths(d), (d.rg_id, d.storage_id, d.workspace_id), strict=True
    ):
        arm.serve("GET", path, {"value": [lk for lk in everything if lk["id"].startswith(scope)]})
    cp = armlive.collect_live(target(d))
    assert cp.locks.known and len(cp.locks.value or ()) == 3
    assert len(cp.lock_gaps) == 1 and "HTTP 403" in cp.lock_gaps[0]


def test_the_endpoint_must_be_https(monkeypatch: pytest.MonkeyPatch) -> None:
    from amlport.errors import UsageError

    monkeypatch.setenv(armlive.ENDPOINT_ENV, "http://127.0.0.1:1")
    with pytest.raises(UsageError, match="must be an https URL"):
        armlive.arm_endpoint()


def test_a_forbidden_model_registry_leaves_the_registry_unknown(arm: ar.ReplayServer) -> None:
    """An identity that may not read the workspace's models: the registry is unknown (HYG-004
    then says it could not check), every other fact is still read."""
    d = ar.bikeshare_deployment(
        registered_model_uris=("azureml://jobs/run-1/outputs/artifacts/paths/model/",)
    )
    bodies = d.bodies()
    for path in [p for p in bodies if p.startswith(f"{d.workspace_id}/models")]:
        bodies.pop(path)
    arm.serve_all(bodies)
    arm.serve("GET", f"{d.workspace_id}/models", ar.error(403, "AuthorizationFailed", "models"))
    cp = armlive.collect_live(target(d))
    assert not cp.registry.known and "HTTP 403" in str(cp.registry.reason)
    assert cp.workspace.known and cp.key_vault.known and cp.storage.known and cp.locks.known
