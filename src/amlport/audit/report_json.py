"""The JSON report (schema ``amlport.audit/1``, documented in docs/audit.md and docs/json.md).

Deterministic: no timestamps, results sorted (failures first, then by severity, rule and path),
so two audits of the same state give byte-identical reports and CI can diff them.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from amlport import __version__
from amlport.audit.engine import REPORT_SCHEMA, AuditReport
from amlport.model.findings import Severity


def report_dict(report: AuditReport, fail_on: Severity, *, strict: bool = False) -> dict[str, Any]:
    return {
        "schema": REPORT_SCHEMA,
        "tool": {"name": "amlport", "version": __version__},
        "target": asdict(report.target),
        "fail_on": fail_on.value,
        "strict": strict,
        "exit_code": int(report.exit_code(fail_on, strict=strict)),
        "summary": report.summary(),
        "warnings": list(report.warnings),
        "results": [r.to_dict() for r in report.results],
        "rules": [rule.to_dict() for rule in report.rules],
    }


def render_json(report: AuditReport, fail_on: Severity, *, strict: bool = False) -> str:
    data = report_dict(report, fail_on, strict=strict)
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
