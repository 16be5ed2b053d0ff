"""The checks: pass / fail / not checked for each rule, and never a pass for an unknown fact."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from amlport.audit import AuditRequest, State, run_audit
from amlport.audit.armfiles import load_arm_folder
from amlport.audit.catalog import load_rules
from amlport.audit.engine import AuditReport, Result
from amlport.audit.facts import (
    ControlPlane,
    DataPlane,
    Fact,
    KeyVault,
    Lock,
    ReplicationPolicy,
    Retention,
)
from amlport.errors import ExitCode
from amlport.model import findings as F
from amlport.model.findings import Severity
from amlport.model.inventory import Inventory
from amlport.storage.local import LocalSource
from amlport.walk import walk

REPO = Path(__file__).resolve().parents[2]
ARM = REPO / "fixtures" / "arm"
WS = REPO / "fixtures" / "workspaces"
RG = "/subscriptions/s/resourceGroups/rg"
STORAGE = f"{RG}/providers/Microsoft.Storage/storageAccounts/azmlfromscratchstr"
WORKSPACE = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/azml-from-scratch"
RESILIENCE = [r.id for r in load_rules() if r.category == "resilience"]
HYGIENE = [r.id for r in load_rules() if r.category == "hygiene"]


@cache
def inventory(name: str) -> Inventory:
    return walk(LocalSource(WS / name))


def good() -> ControlPlane:
    return load_arm_folder(ARM / "good")


def audit(
    cp: ControlPlane | None = None, inv: Inventory | None = None, only: Sequence[str] = ()
) -> AuditReport:
    dp = DataPlane.not_checked("local copy")
    control = cp or ControlPlane()
    return run_audit(AuditRequest(inventory=inv, data_plane=dp, control_plane=control, only=only))


def results(report: AuditReport, rule_id: str) -> list[Result]:
    return [r for r in report.results if r.rule.id == rule_id]


def one(report: AuditReport, rule_id: str) -> Result:
    (r,) = results(report, rule_id)
    return r


def with_storage(cp: ControlPlane, **changes: object) -> ControlPlane:
    assert cp.storage.value is not None
    cp.storage = Fact.of(replace(cp.storage.value, **changes), "test")
    return cp


def lock(level: str, scope: str, name: str = "l") -> Lock:
    return Lock(
        id=f"{scope}/providers/Microsoft.Authorization/locks/{name}",
        name=name,
        level=level,
        scope=scope,
    )


# --- fixtures end to end ---------------------------------------------------------------------


def test_good_deployment_passes_every_resilience_rule() -> None:
    report = audit(good())
    assert {r.rule.id: r.state for r in report.results if r.rule.category == "resilience"} == {
        i: State.PASS for i in RESILIENCE
    }
    assert report.exit_code(Severity.LOW) is ExitCode.OK


def test_bad_deployment_fails_lrs_locks_and_soft_delete_with_remediations() -> None:
    report = audit(load_arm_folder(ARM / "bad"))
    failed = {r.rule.id for r in report.by_state(State.FAIL)}
    assert {"AMLP-RES-001", "AMLP-LCK-001", "AMLP-RES-002", "AMLP-RES-004", "AMLP-KV-002"} <= failed
    lrs = one(report, "AMLP-RES-001")
    assert "Standard_LRS" in lrs.outcome.message
    assert lrs.remediation.startswith("az storage account migration start --account-name")
    assert "stmessylegacy0042" in lrs.remediation and "rg-messy-legacy" in lrs.remediation
    assert "az lock create" in one(report, "AMLP-LCK-001").remediation
    assert "--enable-delete-retention true" in one(report, "AMLP-RES-002").remediation
    assert report.exit_code(Severity.HIGH) is ExitCode.POLICY


# --- not checked is never pass ---------------------------------------------------------------


def test_without_any_facts_every_rule_is_not_checked() -> None:
    report = audit()
    assert {r.state for r in report.results} == {State.NOT_CHECKED}
    assert len(report.results) == len(load_rules())
    assert all(r.outcome.message.startswith("not checked: ") for r in report.results)
    assert report.exit_code(Severity.LOW) is ExitCode.OK
    assert report.exit_code(Severity.LOW, strict=True) is ExitCode.POLICY


@pytest.mark.parametrize(
    "field",
    [
        "storage",
        "blob_soft_delete",
        "container_soft_delete",
        "versioning",
        "change_feed",
        "restore_policy",
        "replication",
        "locks",
        "key_vault",
        "workspace",
    ],
)
def test_an_unknown_fact_never_passes(field: str) -> None:
    cp = good()
    setattr(cp, field, Fact.unknown("gone"))
    report = audit(cp)
    passed_before = {r.rule.id for r in audit(good()).by_state(State.PASS)}
    touched = passed_before - {r.rule.id for r in report.by_state(State.PASS)}
    assert touched, f"no rule reads {field}"
    for rule_id in touched:
        assert {r.state for r in results(report, rule_id)} == {State.NOT_CHECKED}


# --- replication -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sku", "state", "noted"),
    [
        ("Standard_LRS", State.FAIL, False),
        ("Premium_LRS", State.FAIL, False),
        ("Standard_ZRS", State.PASS, False),
        ("Standard_GZRS", State.PASS, True),
        ("Standard_RAGZRS", State.PASS, True),
        ("Standard_GRS", State.PASS, True),
        ("Standard_RAGRS", State.PASS, True),
        ("Standard_Mystery", State.NOT_CHECKED, False),
    ],
)
def test_replication_tiers(sku: str, state: State, noted: bool) -> None:
    r = one(audit(with_storage(good(), sku=sku)), "AMLP-RES-001")
    assert r.state is state
    assert bool(r.outcome.note) is noted
    if noted:
        assert "does not support failing over" in str(r.outcome.note)


# --- soft delete, versioning ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("retention", "state"),
    [
        (Retention(False), State.FAIL),
        (Retention(True, 3), State.FAIL),
        (Retention(True, 6), State.FAIL),
        (Retention(True, 7), State.PASS),
        (Retention(True, 365), State.PASS),
        (Retention(True, None), State.FAIL),
    ],
)
def test_blob_soft_delete_needs_seven_days(retention: Retention, state: State) -> None:
    cp = good()
    cp.blob_soft_delete = Fact.of(retention, "test")
    assert one(audit(cp), "AMLP-RES-002").state is state


def test_container_soft_delete_and_versioning_off_fail() -> None:
    cp = good()
    cp.container_soft_delete = Fact.of(Retention(False), "test")
    cp.versioning = Fact.of(False, "test")
    report = audit(cp)
    assert one(report, "AMLP-RES-003").state is State.FAIL
    assert one(report, "AMLP-RES-004").state is State.FAIL


# --- object replication ----------------------------------------------------------------------


def _or(*pairs: tuple[str, str], src: str = "azmlfromscratchstr") -> ControlPlane:
    cp = good()
    cp.replication = Fact.of((ReplicationPolicy("p", src, "dr", tuple(pairs)),), "test")
    return cp


def test_replication_must_cover_every_workspace_container() -> None:
    r = one(audit(_or(("azureml", "azureml"))), "AMLP-RES-007")
    assert r.state is State.FAIL and "azureml-blobstore-*" in r.outcome.message
    both = _or(("azureml", "azureml"), ("azureml-blobstore-123", "x"))
    assert one(audit(both), "AMLP-RES-007").state is State.PASS


def test_replication_into_this_account_does_not_count() -> None:
    cp = _or(("azureml", "a"), ("azureml-blobstore-1", "b"), src="someoneelse")
    assert one(audit(cp), "AMLP-RES-007").state is State.FAIL


def test_replication_uses_the_source_containers_when_walked() -> None:
    inv = inventory("designer-autoprice")
    cp = _or(("azureml", "azureml"), ("azureml-blobstore-other", "x"))
    r = one(audit(cp, inv), "AMLP-RES-007")
    assert r.state is State.FAIL and inv.source.blobstore_container in r.outcome.message


# --- locks -----------------------------------------------------------------------------------


def _locks(*locks: Lock, ws: str = WORKSPACE, sa: str = STORAGE) -> ControlPlane:
    cp = with_storage(good(), id=sa)
    assert cp.workspace.value is not None
    cp.workspace = Fact.of(replace(cp.workspace.value, id=ws, storage_account_id=sa), "test")
    cp.locks = Fact.of(tuple(locks), "test")
    return cp


@pytest.mark.parametrize(
    ("locks", "state"),
    [
        ((), State.FAIL),
        ((lock("CanNotDelete", RG),), State.PASS),
        ((lock("CanNotDelete", "/subscriptions/s"),), State.PASS),
        ((lock("CanNotDelete", STORAGE),), State.FAIL),
        ((lock("CanNotDelete", STORAGE), lock("CanNotDelete", WORKSPACE, "w")), State.PASS),
        ((lock("CanNotDelete", "/subscriptions/s/resourceGroups/rg2"),), State.FAIL),
        ((lock("CanNotDelete", f"{RG}x"),), State.FAIL),
    ],
)
def test_delete_lock_must_cover_workspace_and_storage(
    locks: tuple[Lock, ...], state: State
) -> None:
    assert one(audit(_locks(*locks)), "AMLP-LCK-001").state is state


def test_readonly_lock_is_flagged_with_its_id_in_the_remediation() -> None:
    ro = lock("ReadOnly", STORAGE, "freeze")
    report = audit(_locks(lock("CanNotDelete", RG), ro))
    r = one(report, "AMLP-LCK-002")
    assert r.state is State.FAIL and "listKeys" in r.outcome.message
    assert f"az lock delete --ids {ro.id}" in r.remediation
    assert one(report, "AMLP-LCK-001").state is State.PASS


def test_lock_on_storage_with_unknown_workspace_is_not_checked() -> None:
    cp = _locks(lock("CanNotDelete", STORAGE))
    cp.workspace = Fact.unknown("workspace.json missing")
    r = one(audit(cp), "AMLP-LCK-001")
    assert r.state is State.NOT_CHECKED and "workspace.json missing" in r.outcome.message


# --- key vault -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("soft", "purge", "states"),
    [
        (True, True, (State.PASS, State.PASS)),
        (True, None, (State.PASS, State.FAIL)),
        (False, False, (State.FAIL, State.FAIL)),
        (None, True, (State.FAIL, State.PASS)),
    ],
)
def test_key_vault(soft: bool | None, purge: bool | None, states: tuple[State, State]) -> None:
    cp = good()
    cp.key_vault = Fact.of(KeyVault("id", "kv", soft, purge), "test")
    report = audit(cp)
    assert (one(report, "AMLP-KV-001").state, one(report, "AMLP-KV-002").state) == states
    assert "--name kv" in one(report, "AMLP-KV-002").remediation


# --- hygiene ---------------------------------------------------------------------------------


def test_messy_hygiene_findings_all_appear_with_their_paths() -> None:
    inv = inventory("messy")
    report = audit(inv=inv)
    codes = {
        F.SAS_IN_POINTER: "AMLP-HYG-001",
        F.SECRET_IN_FILE: "AMLP-HYG-002",
        F.DANGLING_POINTER: "AMLP-HYG-003",
    }
    for code, rule_id in codes.items():
        walk_paths = {f.path for f in inv.findings if f.code == code}
        assert walk_paths, f"the messy fixture has no {code}"
        audit_paths = {r.outcome.path for r in results(report, rule_id)}
        assert walk_paths == audit_paths
    paths = {r.rule.id: r.outcome.path or "" for r in report.by_state(State.FAIL)}
    assert "messy_b_pointer_with_sas/Trained_model" in paths["AMLP-HYG-001"]
    assert any(
        "messy_c_secrets_in_logs" in r.outcome.path
        for r in results(report, "AMLP-HYG-002")
        if r.outcome.path
    )
    assert "messy_a_pointer_target_missing" in paths["AMLP-HYG-003"]


def test_every_hygiene_failure_keeps_a_path() -> None:
    for name in ("messy", "designer-autoprice", "v2-lendingclub", "sdk-bikeshare"):
        report = audit(inv=inventory(name))
        for r in report.by_state(State.FAIL):
            assert r.outcome.path and "/" in r.outcome.path, (name, r.rule.id)


def test_designer_workspace_has_non_portable_models_and_loose_conda() -> None:
    report = audit(inv=inventory("designer-autoprice"))
    ilearner = [r for r in results(report, "AMLP-HYG-005") if r.state is State.FAIL]
    assert any(".ilearner" in r.outcome.message for r in ilearner)
    conda = one(report, "AMLP-HYG-007")
    assert conda.state is State.FAIL and "azureml-defaults" in conda.outcome.message
    assert str(conda.outcome.path).endswith("trained_model_outputs/conda_env.yaml")


def test_latest_references_are_flagged_in_the_yaml_that_holds_them() -> None:
    report = audit(inv=inventory("v2-lendingclub"))
    flagged = [r for r in results(report, "AMLP-HYG-006") if r.state is State.FAIL]
    assert flagged and all(
        "@latest" in r.outcome.message or "latest" in r.outcome.message for r in flagged
    )
    assert any(str(r.outcome.path).endswith("components/split.yml") for r in flagged)
    assert not any("lendingclub-env:3" in r.outcome.message for r in flagged)


def test_mlflow_python_env_requirement_files_are_not_unpinned_conda() -> None:
    report = audit(inv=inventory("sdk-bikeshare"))
    assert one(report, "AMLP-HYG-007").state is State.PASS


def test_models_only_in_run_outputs_are_not_checked_without_the_registry() -> None:
    report = audit(inv=inventory("sdk-bikeshare"))
    flagged = results(report, "AMLP-HYG-004")
    assert flagged and all(r.state is State.NOT_CHECKED for r in flagged)
    assert all("model registry was not read" in r.outcome.message for r in flagged)
    assert all(str(r.outcome.path).startswith("azureml/ExperimentRun/dcid.") for r in flagged)
    assert "--path azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid." in (
        flagged[0].remediation
    )


def test_the_registry_decides_which_run_output_models_are_unregistered() -> None:
    inv = inventory("sdk-bikeshare")
    candidates = results(audit(inv=inv), "AMLP-HYG-004")
    registered = str(candidates[0].outcome.path).split("/", 1)[1]
    cp = ControlPlane()
    cp.registry = Fact.of(
        (
            f"azureml://subscriptions/s/resourcegroups/rg/workspaces/w/datastores/"
            f"workspaceartifactstore/paths/{registered}",
        ),
        "arm (live)",
    )
    flagged = results(audit(cp, inv=inv), "AMLP-HYG-004")
    assert all(r.state is State.FAIL for r in flagged)
    assert {r.outcome.path for r in flagged} == {r.outcome.path for r in candidates[1:]}
    cp.registry = Fact.of((), "arm (live)")
    assert all(r.state is State.FAIL for r in results(audit(cp, inv=inv), "AMLP-HYG-004"))


def test_hygiene_without_a_source_is_not_checked() -> None:
    report = audit(good())
    for rule_id in HYGIENE:
        r = one(report, rule_id)
        assert r.state is State.NOT_CHECKED and "no SOURCE" in r.outcome.message


# --- exit codes and selection ----------------------------------------------------------------


def test_exit_codes_follow_fail_on() -> None:
    cp = good()
    cp.change_feed = Fact.of(False, "test")  # low
    report = audit(cp)
    assert report.exit_code(Severity.HIGH) is ExitCode.WARNINGS
    assert report.exit_code(Severity.LOW) is ExitCode.POLICY


def test_selected_rules_only() -> None:
    report = audit(load_arm_folder(ARM / "bad"), only=["AMLP-RES-00[45]"])
    assert {r.rule.id for r in report.results} == {"AMLP-RES-004", "AMLP-RES-005"}
    assert report.exit_code(Severity.HIGH) is ExitCode.WARNINGS


def test_a_crashing_check_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    from amlport.audit import runner

    def boom(*_: object) -> list[object]:
        raise RuntimeError("boom AccountKey=c2VjcmV0c2VjcmV0c2VjcmV0")

    monkeypatch.setattr(runner, "CHECKS", {**runner.CHECKS, "versioning": boom})
    r = one(audit(good()), "AMLP-RES-004")
    assert r.state is State.NOT_CHECKED and "internal error" in r.outcome.message
    assert "c2VjcmV0" not in r.outcome.message
