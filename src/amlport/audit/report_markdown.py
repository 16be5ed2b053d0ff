"""The Markdown report: a summary, failures grouped by severity with their remediation, then
what could not be checked and what passed. Suitable for a pull-request comment or a wiki."""

from __future__ import annotations

from amlport.audit.engine import AuditReport, Result, State
from amlport.model.findings import Severity

SEVERITIES = (Severity.HIGH, Severity.MEDIUM, Severity.LOW, Severity.INFO)


def md_escape(text: str) -> str:
    """Escape what would break a table cell or start markup."""
    out = text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    for ch in "*_`<>[]":
        out = out.replace(ch, "\\" + ch)
    return out


def _code(text: str) -> str:
    return f"`{text}`" if "`" not in text else f"``{text}``"


def render_markdown(report: AuditReport, fail_on: Severity, *, strict: bool = False) -> str:
    lines = _header(report, fail_on, strict)
    lines += _failures(report)
    lines += _not_checked(report)
    lines += _passes(report)
    return "\n".join(lines).rstrip() + "\n"


def _header(report: AuditReport, fail_on: Severity, strict: bool) -> list[str]:
    t, s = report.target, report.summary()
    code = int(report.exit_code(fail_on, strict=strict))
    lines = ["# amlport audit", ""]
    facts = [
        ("Source", t.source or "none"),
        ("Storage account", t.account or "unknown"),
        ("Workspace", t.workspace or "unknown"),
        ("Control-plane facts", t.arm or "none"),
        ("Data-plane facts", t.data_plane),
    ]
    lines += [f"- **{k}:** {md_escape(v)}" for k, v in facts]
    by_sev = ", ".join(f"{n} {sev}" for sev, n in s["fail_by_severity"].items() if n)
    lines += [
        "",
        f"**{s['fail']} failed** ({by_sev or 'none'}), {s['not_checked']} not checked, "
        f"{s['pass']} passed; --fail-on {fail_on.value}{' --strict' if strict else ''} "
        f"gives exit code {code}.",
        "",
    ]
    lines += [f"> **Warning:** {md_escape(w)}" for w in report.warnings]
    return [*lines, ""] if report.warnings else lines


def _failures(report: AuditReport) -> list[str]:
    fails = report.by_state(State.FAIL)
    if not fails:
        return ["## Failures", "", "None.", ""]
    lines = ["## Failures", ""]
    for sev in SEVERITIES:
        group = [r for r in fails if r.severity is sev]
        if group:
            lines += [f"### {sev.value.capitalize()} ({len(group)})", ""]
            lines += _fail_table(group)
    return lines


def _fail_table(results: list[Result]) -> list[str]:
    lines = ["| Rule | Where | Finding |", "| --- | --- | --- |"]
    for r in results:
        o = r.outcome
        where = _code(o.path) if o.path else md_escape(o.resource or "")
        lines.append(f"| {r.rule.id} | {where} | {md_escape(o.message)} |")
    lines.append("")
    seen: set[tuple[str, str]] = set()
    for r in results:
        key = (r.rule.id, r.remediation)
        if key not in seen:
            seen.add(key)
            lines += [f"**{r.rule.id}** {md_escape(r.rule.title)}. Remediation:", "", "```"]
            lines += [r.remediation, "```", ""]
    return lines


def _not_checked(report: AuditReport) -> list[str]:
    rows = report.by_state(State.NOT_CHECKED)
    if not rows:
        return []
    lines = ["## Not checked", "", "| Rule | Severity | Why |", "| --- | --- | --- |"]
    for r in rows:
        why = r.outcome.message.removeprefix("not checked: ")
        lines.append(f"| {r.rule.id} | {r.severity.value} | {md_escape(why)} |")
    return [*lines, ""]


def _passes(report: AuditReport) -> list[str]:
    rows = report.by_state(State.PASS)
    if not rows:
        return []
    lines = ["## Passed", "", "| Rule | Result |", "| --- | --- |"]
    for r in rows:
        o = r.outcome
        text = f"{o.message}. Note: {o.note}" if o.note else o.message
        lines.append(f"| {r.rule.id} | {md_escape(text)} |")
    return [*lines, ""]
