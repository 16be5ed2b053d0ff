"""Audit data-plane facts against Azurite: switch blob soft delete and watch AMLP-RES-002 flip.

Uses the ``messy`` fixture workspace's own account (``azurite_workspaces``); the service
properties it changes are restored afterwards, so other tests see the account as loaded.
Azurite stores ``delete_retention_policy`` but never applies it, which is all the audit needs:
it reads the setting.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import typer
from azure.storage.blob import BlobServiceClient, RetentionPolicy
from helpers import azurite as az
from typer.testing import CliRunner

from amlport.audit import AuditRequest, State, run_audit
from amlport.audit.dataplane import collect_data_plane
from amlport.audit.engine import AuditReport, Result
from amlport.cli import audit_cmd
from amlport.storage.opener import StorageAuth, open_source
from amlport.walk import walk

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def messy(azurite_workspaces: dict[str, az.LoadedWorkspace]) -> az.LoadedWorkspace:
    if "messy" not in azurite_workspaces:
        pytest.skip("fixtures/workspaces/messy has not been generated")
    return azurite_workspaces["messy"]


@pytest.fixture
def admin(messy: az.LoadedWorkspace) -> Iterator[BlobServiceClient]:
    """An admin client on the messy account; its soft delete setting is restored after."""
    client = messy.account.service_client()
    original = client.get_service_properties()["delete_retention_policy"]
    try:
        yield client
    finally:
        client.set_service_properties(delete_retention_policy=original)
        client.close()


def set_soft_delete(client: BlobServiceClient, days: int | None) -> None:
    policy = RetentionPolicy(enabled=True, days=days) if days else RetentionPolicy(enabled=False)
    client.set_service_properties(delete_retention_policy=policy)


def audit_account(ws: az.LoadedWorkspace, auth: StorageAuth, url: str | None = None) -> AuditReport:
    with open_source(url or ws.url, auth=auth) as source:
        request = AuditRequest(
            inventory=walk(source),
            data_plane=collect_data_plane(source),
            source_label=source.describe(),
            only=["AMLP-RES-00[12]", "AMLP-HYG-001"],
        )
    return run_audit(request)


def rule(report: AuditReport, rule_id: str) -> Result:
    (result,) = [r for r in report.results if r.rule.id == rule_id]
    return result


def key(ws: az.LoadedWorkspace) -> StorageAuth:
    return StorageAuth(connection_string=ws.account.connection_string)


def test_soft_delete_finding_flips_with_the_service_property(
    messy: az.LoadedWorkspace, admin: BlobServiceClient
) -> None:
    set_soft_delete(admin, None)
    off = rule(audit_account(messy, key(messy)), "AMLP-RES-002")
    assert off.state is State.FAIL and "disabled" in off.outcome.message
    assert off.outcome.evidence == "data plane: get_service_properties"

    set_soft_delete(admin, 9)
    on = rule(audit_account(messy, key(messy)), "AMLP-RES-002")
    assert on.state is State.PASS and "9 days" in on.outcome.message

    set_soft_delete(admin, 3)
    short = rule(audit_account(messy, key(messy)), "AMLP-RES-002")
    assert short.state is State.FAIL and "only 3 days" in short.outcome.message


def test_sku_comes_from_account_information_and_hygiene_from_the_walk(
    messy: az.LoadedWorkspace,
) -> None:
    report = audit_account(messy, key(messy))
    sku = rule(report, "AMLP-RES-001")
    assert sku.state is State.PASS and "Standard_RAGRS" in sku.outcome.message  # Azurite's SKU
    assert sku.outcome.note and "failing over" in sku.outcome.note
    assert sku.outcome.evidence == "data plane: get_account_information"
    sas = rule(report, "AMLP-HYG-001")
    assert sas.state is State.FAIL
    assert str(sas.outcome.path).endswith("messy_b_pointer_with_sas/Trained_model")


def test_a_container_sas_cannot_read_service_properties_so_not_checked(
    messy: az.LoadedWorkspace,
) -> None:
    blobstore = messy.containers[-1] if messy.containers[0] == "azureml" else messy.containers[0]
    sas = az.read_list_container_sas(messy.account, blobstore, expires_in=timedelta(hours=1))
    report = audit_account(messy, StorageAuth(sas_token=sas), url=f"{messy.url}/{blobstore}")
    soft = rule(report, "AMLP-RES-002")
    assert soft.state is State.NOT_CHECKED, soft.outcome.message
    assert "get_service_properties failed" in soft.outcome.message
    assert sas.split("sig=")[-1][:10] not in soft.outcome.message


def audit_app() -> typer.Typer:
    app = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @app.callback()
    def main() -> None:
        """amlport (test harness)."""

    audit_cmd.register(app)
    return app


def test_cli_audits_a_live_account_and_never_prints_the_key(
    messy: az.LoadedWorkspace, admin: BlobServiceClient
) -> None:
    set_soft_delete(admin, None)
    args = ["audit", messy.url, "--connection-string", messy.account.connection_string, "--json"]
    res = CliRunner().invoke(audit_app(), args, env={"COLUMNS": "200"}, catch_exceptions=False)
    assert res.exit_code == 5, res.stderr
    data: dict[str, Any] = json.loads(res.stdout)
    states = {
        r["rule_id"]: r["state"] for r in data["results"] if r["rule_id"].startswith("AMLP-RES-00")
    }
    assert states["AMLP-RES-001"] == "pass" and states["AMLP-RES-002"] == "fail"
    assert data["target"]["data_plane"] == "checked"
    assert messy.account.key not in res.stdout + res.stderr
