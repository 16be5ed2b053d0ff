"""Reporters: JSON (documented schema), SARIF 2.1.0 (validated), Markdown, the rich table."""

from __future__ import annotations

import io
import json
import re
from functools import cache
from pathlib import Path

import pytest
from helpers.sarif import SCHEMA, validate_sarif
from rich.console import Console

from amlport.audit import AuditRequest, State, run_audit
from amlport.audit.armfiles import load_arm_folder
from amlport.audit.engine import REPORT_SCHEMA, AuditReport
from amlport.audit.facts import ControlPlane, DataPlane, Fact
from amlport.audit.report_formats import FORMATS, render_text
from amlport.audit.report_markdown import md_escape
from amlport.audit.report_table import render_table, short_resource
from amlport.model.findings import Severity
from amlport.storage.local import LocalSource
from amlport.walk import walk

REPO = Path(__file__).resolve().parents[2]
ARM = REPO / "fixtures" / "arm"
MESSY = REPO / "fixtures" / "workspaces" / "messy"
HIGH = Severity.HIGH


@cache
def messy_bad() -> AuditReport:
    """The messy workspace with the bad deployment's facts, the OR policies not exported."""
    src = LocalSource(MESSY)
    control = load_arm_folder(ARM / "bad")
    control.replication = Fact.unknown("or-policies.json is not in the --arm folder")
    request = AuditRequest(
        inventory=walk(src),
        data_plane=DataPlane.not_checked("local copy", src.descriptor.account),
        control_plane=control,
        source_label=src.describe(),
    )
    return run_audit(request)


def good_only() -> AuditReport:
    return run_audit(AuditRequest(control_plane=load_arm_folder(ARM / "good")))


# --- JSON ------------------------------------------------------------------------------------


def test_json_report_has_the_documented_top_level_fields() -> None:
    data = json.loads(render_text(messy_bad(), "json", HIGH))
    assert data["schema"] == REPORT_SCHEMA
    assert set(data) == {
        "schema",
        "tool",
        "target",
        "fail_on",
        "strict",
        "exit_code",
        "summary",
        "warnings",
        "results",
        "rules",
    }
    assert data["exit_code"] == 5 and data["fail_on"] == "high"
    assert data["target"]["account"] == "stmessylegacy0042"
    assert data["summary"]["fail"] == len([r for r in data["results"] if r["state"] == "fail"])
    keys = {
        "rule_id",
        "title",
        "category",
        "severity",
        "state",
        "message",
        "path",
        "resource",
        "note",
        "evidence",
        "remediation",
    }
    assert all(set(r) == keys for r in data["results"])
    assert all(r["remediation"] is None for r in data["results"] if r["state"] == "pass")


def test_json_is_deterministic_and_failures_come_first() -> None:
    a = render_text(messy_bad(), "json", HIGH)
    assert a == render_text(messy_bad(), "json", HIGH)
    states = [r["state"] for r in json.loads(a)["results"]]
    assert states == sorted(states, key=["fail", "not_checked", "pass"].index)


def test_json_documented_in_docs_audit_md() -> None:
    doc = (REPO / "docs" / "audit.md").read_text(encoding="utf-8")
    for key in ("schema", "exit_code", "summary", "results", "rule_id", "not_checked", "evidence"):
        assert f"`{key}`" in doc, key


# --- SARIF -----------------------------------------------------------------------------------


def test_sarif_validates_against_the_official_schema() -> None:
    for report in (messy_bad(), good_only(), run_audit(AuditRequest())):
        validate_sarif(json.loads(render_text(report, "sarif", HIGH)))


def test_the_vendored_schema_is_the_oasis_errata01_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["id"].endswith("/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json")


def test_the_validator_rejects_broken_sarif() -> None:
    doc = json.loads(render_text(messy_bad(), "sarif", HIGH))
    doc["runs"][0]["results"][0]["level"] = "critical"
    with pytest.raises(AssertionError):
        validate_sarif(doc)


def test_sarif_results_are_failures_and_not_checked_with_locations() -> None:
    report = messy_bad()
    run = json.loads(render_text(report, "sarif", HIGH))["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == [r.id for r in report.rules]
    results = run["results"]
    assert len(results) == len(report.results) - len(report.by_state(State.PASS))
    for res in results:
        assert rules[res["ruleIndex"]]["id"] == res["ruleId"]
        assert (res["kind"], res["level"] == "none") in {("fail", False), ("open", True)}
    lrs = next(r for r in results if r["ruleId"] == "AMLP-RES-001")
    assert lrs["level"] == "error" and "Standard_LRS" in lrs["message"]["text"]
    assert lrs["properties"]["remediation"].startswith("az storage account migration start")
    assert lrs["locations"][0]["logicalLocations"][0]["fullyQualifiedName"].endswith(
        "/storageAccounts/stmessylegacy0042"
    )
    sas = next(r for r in results if r["ruleId"] == "AMLP-HYG-001")
    uri = sas["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
    assert uri.endswith("messy_b_pointer_with_sas/Trained_model")
    assert run["invocations"][0]["exitCode"] == 5


def test_sarif_rules_carry_the_external_ids() -> None:
    run = json.loads(render_text(messy_bad(), "sarif", HIGH))["runs"][0]
    rule = next(r for r in run["tool"]["driver"]["rules"] if r["id"] == "AMLP-RES-001")
    assert "Azure.Storage.UseReplication" in rule["properties"]["tags"]
    assert rule["properties"]["references"]["checkov"] == ["CKV_AZURE_206"]
    assert "az storage account migration start" in rule["help"]["markdown"]


def test_sarif_uris_are_percent_encoded() -> None:
    run = json.loads(render_text(messy_bad(), "sarif", HIGH))["runs"][0]
    for res in run["results"]:
        for loc in res.get("locations", []):
            uri = loc.get("physicalLocation", {}).get("artifactLocation", {}).get("uri", "")
            assert " " not in uri and not re.search(r"[^\x21-\x7e]", uri)


# --- Markdown and table ----------------------------------------------------------------------


def test_markdown_groups_failures_by_severity_with_remediation() -> None:
    md = render_text(messy_bad(), "markdown", HIGH)
    assert md.startswith("# amlport audit\n")
    for heading in ("## Failures", "### High", "### Medium", "## Not checked", "## Passed"):
        assert heading in md
    assert md.index("### High") < md.index("### Medium")
    assert "az lock create --name amlport-cannot-delete" in md
    assert "exit code 5" in md


def test_markdown_escapes_table_breakers() -> None:
    assert md_escape("a|b\nc*d") == "a\\|b c\\*d"


def test_table_renders_groups_and_remediations() -> None:
    buf = io.StringIO()
    console = Console(file=buf, width=200, no_color=True)
    for part in render_table(messy_bad(), HIGH):
        console.print(part)
    text = buf.getvalue()
    assert "HIGH: " in text and "MEDIUM: " in text and "NOT CHECKED" in text
    assert "az storage account migration start" in text
    assert "storageAccounts/stmessylegacy0042" in text
    assert "-> exit 5" in text


def test_short_resource() -> None:
    assert (
        short_resource("/subscriptions/s/resourceGroups/r/providers/A.B/vaults/kv") == "vaults/kv"
    )
    assert short_resource("acct") == "acct" and short_resource(None) == ""


def test_unknown_text_format_is_refused() -> None:
    assert "table" in FORMATS
    with pytest.raises(ValueError):
        render_text(good_only(), "table", HIGH)


# --- secrets never leak -----------------------------------------------------------------------


def _messy_secrets() -> list[str]:
    log = next(
        MESSY.glob("azureml/ExperimentRun/dcid.messy_c_secrets_in_logs/user_logs/std_log.txt")
    )
    text = log.read_text(encoding="utf-8")
    key = re.search(r"AccountKey=([A-Za-z0-9+/=]+)", text)
    sig = re.search(r"sig=([^&\s]+)", text)
    assert key and sig
    return [key.group(1), sig.group(1)]


@pytest.mark.parametrize("fmt", ["json", "sarif", "markdown"])
def test_no_secret_from_the_workspace_reaches_a_report(fmt: str) -> None:
    text = render_text(messy_bad(), fmt, HIGH)
    for secret in _messy_secrets():
        assert secret not in text


def test_empty_control_plane_report_lists_every_rule_as_not_checked() -> None:
    data = json.loads(
        render_text(run_audit(AuditRequest(control_plane=ControlPlane())), "json", HIGH)
    )
    assert {r["state"] for r in data["results"]} == {"not_checked"}
    assert data["exit_code"] == 0
