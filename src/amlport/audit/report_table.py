"""The terminal report: rich tables grouped by severity, each failure with its remediation.

Builds renderables only (no rich.console here): printing is the CLI's job.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from amlport.audit.engine import AuditReport, Result, State
from amlport.model.findings import Severity

STYLES = {Severity.HIGH: "bold red", Severity.MEDIUM: "yellow", Severity.LOW: "cyan"}
SEVERITIES = (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


def render_table(
    report: AuditReport, fail_on: Severity, *, strict: bool = False
) -> list[Table | Text]:
    """The renderables to print, in order."""
    parts: list[Table | Text] = [_header(report)]
    fails = report.by_state(State.FAIL)
    for sev in SEVERITIES:
        group = [r for r in fails if r.severity is sev]
        if group:
            parts.append(_fail_table(sev, group))
    unchecked = report.by_state(State.NOT_CHECKED)
    if unchecked:
        parts.append(_unchecked_table(unchecked))
    passes = report.by_state(State.PASS)
    if passes:
        parts.append(_pass_table(passes))
    parts.append(_footer(report, fail_on, strict))
    return parts


def _header(report: AuditReport) -> Text:
    t = report.target
    text = Text("amlport audit", style="bold")
    text.append(f"  source: {t.source or 'none'}  account: {t.account or 'unknown'}")
    text.append(f"  workspace: {t.workspace or 'unknown'}\n")
    text.append(f"control plane: {t.arm or 'none'}  data plane: {t.data_plane}", style="dim")
    for w in report.warnings:
        text.append(f"\nwarning: {w}", style="yellow")
    return text


def _fail_table(sev: Severity, results: list[Result]) -> Table:
    style = STYLES.get(sev, "")
    table = Table(
        title=f"{sev.value.upper()}: {len(results)} failed",
        title_style=style,
        title_justify="left",
        expand=True,
        show_lines=True,
    )
    table.add_column("Rule", style=style, no_wrap=True)
    table.add_column("Where", overflow="fold", ratio=2)
    table.add_column("Finding", overflow="fold", ratio=3)
    table.add_column("Remediation", overflow="fold", ratio=3, style="green")
    for r in results:
        o = r.outcome
        table.add_row(r.rule.id, o.path or short_resource(o.resource), o.message, r.remediation)
    return table


def short_resource(resource_id: str | None) -> str:
    """``storageAccounts/acct`` for an ARM id (the full id is in the JSON and SARIF reports)."""
    if not resource_id:
        return ""
    parts = resource_id.rstrip("/").split("/")
    return "/".join(parts[-2:]) if resource_id.startswith("/subscriptions/") else resource_id


def _unchecked_table(results: list[Result]) -> Table:
    table = Table(title="NOT CHECKED", title_justify="left", expand=True, title_style="magenta")
    table.add_column("Rule", no_wrap=True)
    table.add_column("Severity", no_wrap=True)
    table.add_column("Why", overflow="fold")
    for r in results:
        why = r.outcome.message.removeprefix("not checked: ")
        table.add_row(r.rule.id, r.severity.value, why)
    return table


def _pass_table(results: list[Result]) -> Table:
    table = Table(title="PASSED", title_justify="left", expand=True, title_style="green")
    table.add_column("Rule", no_wrap=True)
    table.add_column("Result", overflow="fold")
    for r in results:
        o = r.outcome
        table.add_row(r.rule.id, f"{o.message}\nnote: {o.note}" if o.note else o.message)
    return table


def _footer(report: AuditReport, fail_on: Severity, strict: bool) -> Text:
    s = report.summary()
    code = int(report.exit_code(fail_on, strict=strict))
    by_sev = ", ".join(f"{n} {sev}" for sev, n in s["fail_by_severity"].items() if n)
    return Text(
        f"{s['fail']} failed ({by_sev or 'none'}), {s['not_checked']} not checked, "
        f"{s['pass']} passed; --fail-on {fail_on.value}{' --strict' if strict else ''} "
        f"-> exit {code}",
        style="bold",
    )
