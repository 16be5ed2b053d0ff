"""The report formats by name: ``--format table|json|sarif|markdown``.

``table`` is rich renderables (``report_table``) that the CLI prints; the others are text.
"""

from __future__ import annotations

from amlport.audit.engine import AuditReport
from amlport.audit.report_json import render_json
from amlport.audit.report_markdown import render_markdown
from amlport.audit.report_sarif import render_sarif
from amlport.model.findings import Severity

FORMATS = ("table", "json", "sarif", "markdown")
TEXT_FORMATS = {"json": render_json, "sarif": render_sarif, "markdown": render_markdown}


def render_text(report: AuditReport, fmt: str, fail_on: Severity, *, strict: bool = False) -> str:
    """The report as text in one of the text formats (json, sarif, markdown)."""
    try:
        render = TEXT_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"{fmt!r} is not a text format") from None
    return render(report, fail_on, strict=strict)
