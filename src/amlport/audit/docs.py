"""Generate docs/audit-rules.md from rules.yaml.

Run ``python -m amlport.audit.docs > docs/audit-rules.md`` after changing the rules.

The committed file must equal this output (a test checks it), so the catalogue and its
documentation never drift.
"""

from __future__ import annotations

import sys

from amlport.audit.catalog import REFERENCE_KINDS, Rule, load_rules

LABELS = {
    "psrule": "PSRule for Azure",
    "aprl": "APRL",
    "checkov": "checkov",
    "azure_policy": "Azure Policy",
}
SECTIONS = (
    ("resilience", "Resilience: the storage account, locks and key vault"),
    ("hygiene", "Hygiene: what the walk finds in the workspace's storage"),
)


def _reference_cell(rule: Rule, kind: str) -> str:
    refs = rule.references.get(kind, ())
    return ", ".join(f"`{r}`" for r in refs) if refs else "—"


def _index(rules: tuple[Rule, ...]) -> list[str]:
    lines = ["| Id | Severity | Title |", "| --- | --- | --- |"]
    for r in rules:
        anchor = r.id.lower()
        lines.append(f"| [{r.id}](#{anchor}) | {r.severity.value} | {r.title} |")
    return lines


def _rule(rule: Rule) -> list[str]:
    lines = [
        f"### {rule.id}",
        "",
        f"**{rule.title}** · severity **{rule.severity.value}** · check `{rule.check}`",
        "",
        rule.rationale,
        "",
        "Remediation:",
        "",
        "```sh",
        rule.remediation,
        "```",
        "",
    ]
    if rule.notes:
        lines += [f"Note: {rule.notes}", ""]
    lines += ["| Tool | Matching id |", "| --- | --- |"]
    lines += [f"| {LABELS[k]} | {_reference_cell(rule, k)} |" for k in REFERENCE_KINDS]
    lines.append("")
    if rule.links:
        lines += [f"- <{url}>" for url in rule.links] + [""]
    return lines


def render_rules_markdown() -> str:
    rules = load_rules()
    lines = [
        "# Audit rule catalogue",
        "",
        "<!-- Generated from src/amlport/audit/rules.yaml by"
        " `python -m amlport.audit.docs > docs/audit-rules.md`; do not edit by hand. -->",
        "",
        "Every rule of `amlport audit` with its stable id, severity, why it matters, the az",
        "command that fixes it, and the matching rule of other tools where one exists (a match",
        "checks the same setting; where its pass criteria differ, the note says how). See",
        "[audit.md](audit.md) for how facts are collected and how results are reported.",
        "",
        *_index(rules),
        "",
    ]
    for category, heading in SECTIONS:
        lines += [f"## {heading}", ""]
        for rule in (r for r in rules if r.category == category):
            lines += _rule(rule)
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    sys.stdout.write(render_rules_markdown())


if __name__ == "__main__":
    main()
