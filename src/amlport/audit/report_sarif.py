"""SARIF 2.1.0 output (validated against the OASIS schema in the tests).

One run; ``tool.driver.rules`` holds every selected rule with its rationale, remediation and
the matching PSRule / APRL / checkov / Azure Policy ids. Results: each failure (``kind: fail``,
level by severity) and each rule that could not be checked (``kind: open``, level ``none``:
SARIF's "the tool could not tell"). Passes are left out, as code-scanning consumers expect.

Locations: a finding about a blob gets a physical location ``container/blob`` relative to the
``STORAGE`` base (the account's blob endpoint, or the local copy); a finding about a setting
gets a logical location named by the Azure resource id.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import quote

from amlport import __version__
from amlport.audit.catalog import Rule
from amlport.audit.engine import AuditReport, Result, State
from amlport.model.findings import Severity

SARIF_SCHEMA = (
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
)
LEVELS = {Severity.HIGH: "error", Severity.MEDIUM: "warning", Severity.LOW: "note"}
# GitHub code scanning ranks results by this property (0.1-10).
SECURITY_SEVERITY = {Severity.HIGH: "8.0", Severity.MEDIUM: "5.0", Severity.LOW: "2.0"}
BASE_ID = "STORAGE"


def sarif_dict(report: AuditReport, fail_on: Severity, *, strict: bool = False) -> dict[str, Any]:
    index = {rule.id: i for i, rule in enumerate(report.rules)}
    results = [_result(r, index[r.rule.id]) for r in report.results if r.state is not State.PASS]
    run: dict[str, Any] = {
        "tool": {"driver": _driver(report.rules)},
        "invocations": [_invocation(report, fail_on, strict)],
        "results": results,
        "properties": {"target": _target(report)},
    }
    if report.target.source:
        run["originalUriBaseIds"] = {
            BASE_ID: {"description": {"text": f"workspace storage: {report.target.source}"}}
        }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def render_sarif(report: AuditReport, fail_on: Severity, *, strict: bool = False) -> str:
    data = sarif_dict(report, fail_on, strict=strict)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def _driver(rules: list[Rule]) -> dict[str, Any]:
    return {
        "name": "amlport",
        "semanticVersion": __version__,
        "version": __version__,
        "rules": [_descriptor(rule) for rule in rules],
    }


def _descriptor(rule: Rule) -> dict[str, Any]:
    help_md = f"{rule.rationale}\n\nRemediation:\n\n```\n{rule.remediation}\n```"
    if rule.notes:
        help_md += f"\n\n{rule.notes}"
    return {
        "id": rule.id,
        "name": "".join(w.capitalize() for w in rule.check.split("_")),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": rule.rationale},
        "help": {"text": f"{rule.rationale} Remediation: {rule.remediation}", "markdown": help_md},
        "defaultConfiguration": {"level": LEVELS.get(rule.severity, "note")},
        "properties": {
            "category": rule.category,
            "severity": rule.severity.value,
            "security-severity": SECURITY_SEVERITY.get(rule.severity, "1.0"),
            "tags": list(dict.fromkeys([rule.category, "azure-ml", *_ref_tags(rule)])),
            "references": {k: list(v) for k, v in sorted(rule.references.items())},
        },
        **({"helpUri": rule.links[0]} if rule.links else {}),
    }


def _ref_tags(rule: Rule) -> list[str]:
    return [ref for refs in rule.references.values() for ref in refs if not _is_guid(ref)]


def _is_guid(text: str) -> bool:
    return len(text) == 36 and text.count("-") == 4


def _result(r: Result, rule_index: int) -> dict[str, Any]:
    o = r.outcome
    failed = o.state is State.FAIL
    text = o.message if not o.note else f"{o.message} ({o.note})"
    out: dict[str, Any] = {
        "ruleId": r.rule.id,
        "ruleIndex": rule_index,
        "kind": "fail" if failed else "open",
        "level": LEVELS.get(r.severity, "note") if failed else "none",
        "message": {"text": text},
        "partialFingerprints": {"amlportResult/v1": _fingerprint(r)},
        "properties": {"state": o.state.value, "severity": r.severity.value},
    }
    if failed:  # SARIF "fixes" must be file edits; a command goes in the property bag
        out["properties"]["remediation"] = r.remediation
    if o.evidence:
        out["properties"]["evidence"] = o.evidence
    location = _location(r)
    if location:
        out["locations"] = [location]
    return out


def _location(r: Result) -> dict[str, Any] | None:
    o = r.outcome
    if o.path:
        uri = quote(o.path, safe="/")
        return {"physicalLocation": {"artifactLocation": {"uri": uri, "uriBaseId": BASE_ID}}}
    if o.resource:
        return {"logicalLocations": [{"fullyQualifiedName": o.resource, "kind": "resource"}]}
    return None


def _fingerprint(r: Result) -> str:
    o = r.outcome
    key = "\x1f".join((r.rule.id, o.path or "", o.resource or ""))
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


def _invocation(report: AuditReport, fail_on: Severity, strict: bool) -> dict[str, Any]:
    code = int(report.exit_code(fail_on, strict=strict))
    notes = [{"message": {"text": w}, "level": "warning"} for w in report.warnings]
    inv: dict[str, Any] = {"executionSuccessful": True, "exitCode": code}
    if notes:
        inv["toolExecutionNotifications"] = notes
    return inv


def _target(report: AuditReport) -> dict[str, Any]:
    t = report.target
    return {
        "source": t.source,
        "account": t.account,
        "workspace": t.workspace,
        "arm": t.arm,
        "dataPlane": t.data_plane,
    }
