"""Facts: the az export parsers, the --arm folder, the data plane, and how they merge."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError

from amlport.audit import armfiles as A
from amlport.audit.dataplane import LOCAL_REASON, NO_SOURCE_REASON, collect_data_plane
from amlport.audit.facts import NO_ARM, ControlPlane, DataPlane, Fact, Retention, merge
from amlport.errors import UsageError
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import Source
from amlport.storage.local import LocalSource

REPO = Path(__file__).resolve().parents[2]
ARM = REPO / "fixtures" / "arm"
SUB = "/subscriptions/0000/resourceGroups/rg"


def _json(name: str, folder: str = "good") -> Any:
    return json.loads((ARM / folder / name).read_text(encoding="utf-8"))


# --- parsers --------------------------------------------------------------------------------


def test_good_folder_parses_to_known_facts() -> None:
    cp = A.load_arm_folder(ARM / "good")
    assert cp.storage.value is not None and cp.storage.value.sku == "Standard_GZRS"
    assert cp.storage.value.resource_group == "rg-azml-from-scratch"
    assert cp.blob_soft_delete.value == Retention(True, 14)
    assert cp.versioning.value is True and cp.change_feed.value is True
    assert cp.restore_policy.value == Retention(True, 7)
    assert cp.locks.value and cp.locks.value[0].level == "CanNotDelete"
    assert cp.locks.value[0].scope.endswith("/resourceGroups/rg-azml-from-scratch")
    policy = cp.replication.value[0] if cp.replication.value else None
    assert policy and policy.source_account == "azmlfromscratchstr"
    assert cp.key_vault.value and cp.key_vault.value.purge_protection is True
    assert cp.workspace.value and cp.workspace.value.name == "azml-from-scratch"
    assert cp.storage.origin == "arm:storage-account.json"


def test_bad_folder_parses_to_failing_facts() -> None:
    cp = A.load_arm_folder(ARM / "bad")
    assert cp.storage.value and cp.storage.value.sku == "Standard_LRS"
    assert cp.blob_soft_delete.value == Retention(False, None)
    assert cp.container_soft_delete.value == Retention(False, None)
    assert cp.versioning.value is False
    assert cp.locks.value == () and cp.replication.value == ()
    assert cp.key_vault.value and cp.key_vault.value.purge_protection is None


def test_rest_shape_with_properties_parses_like_the_cli_shape() -> None:
    cli = _json("blob-service-properties.json")
    rest = {k: cli[k] for k in ("id", "name", "type")}
    rest["properties"] = {k: v for k, v in cli.items() if k not in rest}
    assert A.parse_blob_service(rest) == A.parse_blob_service(cli)
    lock = _json("locks.json")[0]
    rest_lock = {"id": lock["id"], "name": lock["name"], "properties": {"level": lock["level"]}}
    assert A.parse_locks({"value": [rest_lock]}) == A.parse_locks([lock])


def test_workspace_accepts_ml_cli_and_arm_shapes() -> None:
    ml = A.parse_workspace(_json("workspace.json"))
    arm = A.parse_workspace(
        {
            "id": ml.id,
            "name": ml.name,
            "properties": {
                "storageAccount": ml.storage_account_id,
                "keyVault": ml.key_vault_id,
                "workspaceId": "bfe051f9-e8f5-424e-a59f-174a92b7aa97",
            },
        }
    )
    assert (arm.storage_account_id, arm.key_vault_id) == (ml.storage_account_id, ml.key_vault_id)
    assert arm.resource_group == "rg-azml-from-scratch"
    assert arm.workspace_guid == "bfe051f9-e8f5-424e-a59f-174a92b7aa97"


def test_or_policy_accounts_may_be_names_or_resource_ids() -> None:
    doc = [
        {
            "policyId": "p",
            "sourceAccount": "src",
            "destinationAccount": f"{SUB}/x/dst",
            "rules": [{"sourceContainer": "azureml", "destinationContainer": "azureml"}],
        }
    ]
    (p,) = A.parse_or_policies(doc)
    assert (p.source_account, p.destination_account, p.rules) == (
        "src",
        "dst",
        (("azureml", "azureml"),),
    )


@pytest.mark.parametrize(
    ("parser", "doc"),
    [
        (A.parse_locks, {"id": "x"}),
        (A.parse_locks, [{"id": f"{SUB}/providers/Microsoft.Storage/x", "level": "ReadOnly"}]),
        (A.parse_locks, [{"id": f"{SUB}/providers/Microsoft.Authorization/locks/l"}]),
        (A.parse_storage_account, []),
        (A.parse_key_vault, {}),
        (A.parse_or_policies, [{"rules": "x"}]),
    ],
)
def test_wrong_shapes_raise_shape_error(parser: Any, doc: Any) -> None:
    with pytest.raises(A.ShapeError):
        parser(doc)


# --- the folder -----------------------------------------------------------------------------


def test_missing_files_are_not_checked_with_the_az_command(tmp_path: Path) -> None:
    shutil.copy(ARM / "bad" / "storage-account.json", tmp_path)
    cp = A.load_arm_folder(tmp_path)
    assert cp.storage.known
    assert not cp.locks.known and "az lock list" in str(cp.locks.reason)
    assert not cp.versioning.known
    assert "blob-service-properties show" in str(cp.versioning.reason)


def test_invalid_json_is_a_usage_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "locks.json").write_text("[{", encoding="utf-8")
    with pytest.raises(UsageError, match=r"locks\.json") as err:
        A.load_arm_folder(tmp_path)
    assert "az lock list" in str(err.value.hint)


def test_wrong_shape_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "locks.json").write_text('{"level": "ReadOnly"}', encoding="utf-8")
    with pytest.raises(UsageError, match="is not what 'az lock list' prints"):
        A.load_arm_folder(tmp_path)


def test_a_bom_from_powershell_redirection_is_accepted(tmp_path: Path) -> None:
    data = (ARM / "good" / "locks.json").read_bytes()
    (tmp_path / "locks.json").write_bytes(b"\xef\xbb\xbf" + data)
    assert A.load_arm_folder(tmp_path).locks.known


def test_not_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not a folder"):
        A.load_arm_folder(tmp_path / "nope")


def test_files_of_two_deployments_are_refused(tmp_path: Path) -> None:
    for name in ("workspace.json", "keyvault.json"):
        shutil.copy(ARM / "good" / name, tmp_path)
    shutil.copy(ARM / "bad" / "storage-account.json", tmp_path)
    with pytest.raises(UsageError, match="workspace uses azmlfromscratchstr"):
        A.load_arm_folder(tmp_path)


# --- data plane -----------------------------------------------------------------------------


class _Policy:
    def __init__(self, enabled: bool, days: int | None) -> None:
        self.enabled, self.days = enabled, days


class FakeService:
    def __init__(self, *, info: Any = None, props: Any = None) -> None:
        self.info, self.props = info, props

    def get_account_information(self) -> Any:
        if isinstance(self.info, Exception):
            raise self.info
        return self.info

    def get_service_properties(self) -> Any:
        if isinstance(self.props, Exception):
            raise self.props
        return self.props


class FakeAzureSource(LocalSource):
    """A source exposing a service client through the BlobServiceProvider protocol."""

    def __init__(self, service: FakeService) -> None:
        self.descriptor = WorkspaceDescriptor(account="acct", blobstore_container="b")
        self._client = service

    @property
    def blob_service_client(self) -> Any:
        return self._client


def _forbidden() -> HttpResponseError:
    err = HttpResponseError(message="This request is not authorized")
    err.status_code = 403
    err.error_code = "AuthorizationResourceTypeMismatch"  # type: ignore[attr-defined]
    return err


def test_data_plane_reads_sku_and_soft_delete() -> None:
    info = {"sku_name": "Standard_RAGRS", "account_kind": "StorageV2", "is_hns_enabled": False}
    svc = FakeService(info=info, props={"delete_retention_policy": _Policy(True, 9)})
    dp = collect_data_plane(FakeAzureSource(svc))
    assert dp.sku.value == "Standard_RAGRS" and dp.hns.value is False
    assert dp.blob_soft_delete.value == Retention(True, 9)
    assert dp.blob_soft_delete.origin.startswith("data plane")


def test_a_forbidden_call_is_not_checked_with_the_reason() -> None:
    svc = FakeService(info={"sku_name": "Standard_LRS"}, props=_forbidden())
    dp = collect_data_plane(FakeAzureSource(svc))
    assert dp.sku.known
    assert not dp.blob_soft_delete.known
    assert "HTTP 403" in str(dp.blob_soft_delete.reason)
    assert "account SAS" in str(dp.blob_soft_delete.reason)


def test_local_and_missing_sources_are_not_checked() -> None:
    local = LocalSource(REPO / "fixtures" / "workspaces" / "messy")
    dp = collect_data_plane(local)
    assert dp.account == "stmessylegacy0042" and dp.sku.reason == LOCAL_REASON
    assert collect_data_plane(None).blob_soft_delete.reason == NO_SOURCE_REASON


def test_sources_are_sources() -> None:
    assert isinstance(FakeAzureSource(FakeService()), Source)


# --- merge ----------------------------------------------------------------------------------


def _dp(sku: str | None, soft: Retention | None, account: str = "azmlfromscratchstr") -> DataPlane:
    dp = DataPlane.not_checked("offline", account)
    if sku:
        dp.sku = Fact.of(sku, "data plane: get_account_information")
    if soft:
        dp.blob_soft_delete = Fact.of(soft, "data plane: get_service_properties")
    return dp


def test_live_data_plane_wins_and_a_disagreement_is_a_warning() -> None:
    cp = A.load_arm_folder(ARM / "good")
    facts = merge(_dp("Standard_LRS", Retention(False)), cp)
    assert facts.sku.value == "Standard_LRS" and facts.sku.origin.startswith("data plane")
    assert facts.blob_soft_delete.value == Retention(False)
    assert len(facts.warnings) == 2 and "using the live value" in facts.warnings[0]


def test_export_fills_in_what_the_data_plane_cannot_read() -> None:
    facts = merge(_dp(None, None), A.load_arm_folder(ARM / "good"))
    assert facts.sku.value == "Standard_GZRS" and facts.sku.origin == "arm:storage-account.json"
    assert facts.warnings == []


def test_nothing_known_keeps_both_reasons() -> None:
    facts = merge(DataPlane.not_checked("local copy"), ControlPlane())
    assert not facts.sku.known
    assert "local copy" in str(facts.sku.reason) and NO_ARM in str(facts.sku.reason)
    assert facts.containers == ("azureml-blobstore-*", "azureml")


def test_another_accounts_export_is_a_warning() -> None:
    facts = merge(_dp(None, None, account="other"), A.load_arm_folder(ARM / "good"))
    assert any("describe azmlfromscratchstr" in w for w in facts.warnings)


def test_source_containers_override_the_default_patterns() -> None:
    facts = merge(_dp(None, None), ControlPlane(), containers=("azureml-blobstore-x", "azureml"))
    assert facts.containers == ("azureml-blobstore-x", "azureml")
