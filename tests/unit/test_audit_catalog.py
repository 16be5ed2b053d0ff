"""The rule catalogue: stable ids, valid data, every check exists, docs in sync."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from amlport.audit.catalog import (
    CatalogError,
    load_rules,
    parse_catalog,
    rules_by_id,
    select_rules,
)
from amlport.audit.docs import render_rules_markdown
from amlport.audit.runner import CHECKS
from amlport.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REF_FORMS = {
    "psrule": re.compile(r"^Azure\.[A-Za-z]+\.[A-Za-z]+$"),
    "aprl": GUID,
    "checkov": re.compile(r"^CKV2?_AZURE_\d+$"),
    "azure_policy": GUID,
}
# Ids are a public contract (--rule/--skip, SARIF baselines): removing or renumbering one is a
# breaking change. Add new ids here when adding rules; never take one out.
STABLE_IDS = {
    "AMLP-RES-001": "replication",
    "AMLP-RES-002": "blob_soft_delete",
    "AMLP-RES-003": "container_soft_delete",
    "AMLP-RES-004": "versioning",
    "AMLP-RES-005": "change_feed",
    "AMLP-RES-006": "restore_policy",
    "AMLP-RES-007": "object_replication",
    "AMLP-LCK-001": "delete_lock",
    "AMLP-LCK-002": "readonly_lock",
    "AMLP-KV-001": "keyvault_soft_delete",
    "AMLP-KV-002": "keyvault_purge_protection",
    "AMLP-HYG-001": "sas_in_pointer",
    "AMLP-HYG-002": "secrets_in_files",
    "AMLP-HYG-003": "dangling_pointers",
    "AMLP-HYG-004": "run_output_models",
    "AMLP-HYG-005": "designer_models",
    "AMLP-HYG-006": "unpinned_references",
    "AMLP-HYG-007": "unpinned_conda",
    "AMLP-HYG-008": "orphan_outputs",
    "AMLP-HYG-009": "missing_outputs",
}


def test_every_stable_id_is_present_with_its_check() -> None:
    by_id = rules_by_id()
    assert {i: by_id[i].check for i in STABLE_IDS} == STABLE_IDS


def test_every_rule_has_a_check_and_an_az_remediation_or_instructions() -> None:
    for rule in load_rules():
        assert rule.check in CHECKS, rule.id
        assert rule.title and rule.rationale and rule.remediation
        if rule.category == "resilience":
            assert rule.remediation.startswith("az "), rule.id


def test_references_have_the_form_of_their_tool() -> None:
    for rule in load_rules():
        for kind, refs in rule.references.items():
            for ref in refs:
                assert REF_FORMS[kind].match(ref), f"{rule.id}: {kind} {ref}"


def test_references_confirmed_in_the_tools_sources() -> None:
    """Spot checks of ids confirmed in PSRule, APRL, checkov and Azure Policy sources."""
    by_id = rules_by_id()
    assert by_id["AMLP-RES-001"].references["psrule"] == ("Azure.Storage.UseReplication",)
    assert by_id["AMLP-RES-001"].references["checkov"] == ("CKV_AZURE_206",)
    assert by_id["AMLP-RES-003"].references["psrule"] == ("Azure.Storage.ContainerSoftDelete",)
    assert by_id["AMLP-KV-002"].references["azure_policy"] == (
        "0b60c0b2-2dc2-4e1c-b5c9-abbed971de53",
    )
    assert not by_id["AMLP-LCK-001"].references  # no posture checker covers locks


def test_replication_rule_explains_the_grs_failover_caveat() -> None:
    rule = rules_by_id()["AMLP-RES-001"]
    assert "does not support failing over" in rule.rationale
    assert "object replication" in rule.rationale


def _doc(**changes: Any) -> dict[str, Any]:
    rule = {
        "id": "AMLP-TST-001",
        "check": "replication",
        "category": "resilience",
        "severity": "high",
        "title": "t",
        "rationale": "r",
        "remediation": "az x",
    }
    rule.update(changes)
    return {"version": 1, "rules": [rule]}


@pytest.mark.parametrize(
    "changes",
    [
        {"id": "bad-id"},
        {"severity": "critical"},
        {"category": "other"},
        {"title": ""},
        {"references": {"snyk": ["x"]}},
        {"references": {"psrule": "Azure.Storage.SoftDelete"}},
    ],
)
def test_malformed_rules_are_rejected(changes: dict[str, Any]) -> None:
    with pytest.raises(CatalogError):
        parse_catalog(_doc(**changes))


def test_duplicate_ids_are_rejected() -> None:
    doc = _doc()
    doc["rules"].append(dict(doc["rules"][0]))
    with pytest.raises(CatalogError, match="duplicate"):
        parse_catalog(doc)


def test_the_packaged_file_is_what_load_rules_reads() -> None:
    text = (REPO / "src/amlport/audit/rules.yaml").read_text(encoding="utf-8")
    assert parse_catalog(yaml.safe_load(text)) == load_rules()


def test_select_by_id_and_pattern() -> None:
    rules = load_rules()
    hyg = select_rules(rules, only=["AMLP-HYG-*"])
    assert [r.id for r in hyg] == [f"AMLP-HYG-00{i}" for i in range(1, 10)]
    rest = select_rules(rules, skip=["AMLP-HYG-*", "amlp-kv-001"])
    assert "AMLP-KV-001" not in {r.id for r in rest} and len(rest) == len(rules) - 10
    assert [r.id for r in select_rules(rules, only=["AMLP-RES-001"])] == ["AMLP-RES-001"]


def test_unknown_rule_selection_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="AMLP-NOPE-001"):
        select_rules(load_rules(), only=["AMLP-NOPE-001"])
    with pytest.raises(UsageError):
        select_rules(load_rules(), skip=["X*"])


def test_committed_rule_docs_equal_the_generated_text() -> None:
    committed = (REPO / "docs" / "audit-rules.md").read_text(encoding="utf-8")
    assert committed == render_rules_markdown(), (
        "docs/audit-rules.md is stale: python -m amlport.audit.docs > docs/audit-rules.md"
    )


def test_rule_docs_list_every_rule_and_reference() -> None:
    text = render_rules_markdown()
    for rule in load_rules():
        assert f"### {rule.id}" in text
        for refs in rule.references.values():
            for ref in refs:
                assert f"`{ref}`" in text


def test_a_resilience_rule_without_references_says_that_none_exists() -> None:
    """Issue 24: each resilience fact has a rule, a stable id and its PSRule / APRL / checkov
    mapping where one exists; where none does (LCK-001/002, RES-005/007/008/009, WS-001/002/004),
    the rule's notes say so, so an empty mapping is a finding, not an omission."""
    bare = [r for r in load_rules() if r.category == "resilience" and not r.references]
    assert {"AMLP-LCK-001", "AMLP-LCK-002", "AMLP-RES-005", "AMLP-RES-007"} <= {r.id for r in bare}
    for rule in bare:
        notes = " ".join((rule.notes or "").split())
        assert re.search(r"No PSRule.{0,40}(APRL|checkov)", notes), (rule.id, notes)
