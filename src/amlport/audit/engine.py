"""The rule engine: run each selected rule's check over the facts and the walk's inventory.

Contract of a check (``CheckFn``): given the rule and a ``CheckContext``, return at least one
``Outcome``. A check whose fact is unknown returns ``not_checked`` with the fact's reason; it
never returns ``pass`` for something it could not read. A check that raises is a bug: the
engine reports it as ``not_checked`` ("internal error") rather than hiding the rule.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from amlport.audit.catalog import Rule
from amlport.audit.facts import Facts
from amlport.errors import ExitCode
from amlport.model.findings import Severity
from amlport.model.inventory import Inventory
from amlport.secrets import redact

log = logging.getLogger(__name__)
REPORT_SCHEMA = "amlport.audit/1"  # one spelling for every --json (docs/json.md)


class State(str, Enum):
    PASS = "pass"
    FAIL = "fail"
    NOT_CHECKED = "not_checked"


@dataclass(frozen=True)
class Outcome:
    state: State
    message: str
    path: str | None = None  # container/blob, for findings about one object in the storage
    resource: str | None = None  # an Azure resource id or name, for settings
    note: str | None = None
    evidence: str | None = None  # where the fact came from (arm:…, data plane: …, walk)
    values: Mapping[str, str] = field(default_factory=dict)  # extra remediation placeholders


def passed(message: str, **kw: Any) -> Outcome:
    return Outcome(State.PASS, message, **kw)


def failed(message: str, **kw: Any) -> Outcome:
    return Outcome(State.FAIL, message, **kw)


def not_checked(reason: str, **kw: Any) -> Outcome:
    return Outcome(State.NOT_CHECKED, f"not checked: {reason}", **kw)


@dataclass
class CheckContext:
    facts: Facts
    inventory: Inventory | None
    no_inventory_reason: str = "no SOURCE given: hygiene rules read the workspace's storage"


CheckFn = Callable[[Rule, CheckContext], list[Outcome]]


@dataclass(frozen=True)
class Result:
    rule: Rule
    outcome: Outcome
    remediation: str

    @property
    def state(self) -> State:
        return self.outcome.state

    @property
    def severity(self) -> Severity:
        return self.rule.severity

    def to_dict(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "rule_id": self.rule.id,
            "title": self.rule.title,
            "category": self.rule.category,
            "severity": self.rule.severity.value,
            "state": o.state.value,
            "message": o.message,
            "path": o.path,
            "resource": o.resource,
            "note": o.note,
            "evidence": o.evidence,
            "remediation": self.remediation if o.state is not State.PASS else None,
        }


@dataclass
class Target:
    """What was audited (for the report header); never holds a credential."""

    source: str | None = None
    account: str | None = None
    workspace: str | None = None
    arm: str | None = None
    data_plane: str = "not checked"


@dataclass
class AuditReport:
    results: list[Result]
    rules: list[Rule]
    target: Target
    warnings: list[str] = field(default_factory=list)

    def by_state(self, state: State) -> list[Result]:
        return [r for r in self.results if r.state is state]

    def summary(self) -> dict[str, Any]:
        counts = Counter(r.state.value for r in self.results)
        fails = Counter(r.severity.value for r in self.by_state(State.FAIL))
        return {
            "rules": len(self.rules),
            "pass": counts.get("pass", 0),
            "fail": counts.get("fail", 0),
            "not_checked": counts.get("not_checked", 0),
            "fail_by_severity": {s.value: fails.get(s.value, 0) for s in reversed(Severity)},
        }

    def exit_code(self, fail_on: Severity, *, strict: bool = False) -> ExitCode:
        """0 clean, 1 failures below ``fail_on``, 5 a failure at or above it.

        With ``strict``, a rule that could not be checked counts as failed at its severity.
        """
        counted = [State.FAIL, State.NOT_CHECKED] if strict else [State.FAIL]
        hits = [r for r in self.results if r.state in counted]
        if not hits:
            return ExitCode.OK
        if any(r.severity.rank >= fail_on.rank for r in hits):
            return ExitCode.POLICY
        return ExitCode.WARNINGS


SEVERITY_ORDER = {s: -s.rank for s in Severity}
STATE_ORDER = {State.FAIL: 0, State.NOT_CHECKED: 1, State.PASS: 2}


def sort_key(r: Result) -> tuple[int, int, str, str, str]:
    o = r.outcome
    return (
        STATE_ORDER[o.state],
        SEVERITY_ORDER[r.severity],
        r.rule.id,
        o.path or "",
        o.resource or "",
    )


def evaluate(
    rules: Iterable[Rule],
    ctx: CheckContext,
    checks: Mapping[str, CheckFn],
    *,
    target: Target | None = None,
) -> AuditReport:
    rule_list = list(rules)
    results: list[Result] = []
    placeholders = ctx.facts.placeholders()
    for rule in rule_list:
        for outcome in _run(rule, ctx, checks):
            text = render_remediation(rule.remediation, {**placeholders, **outcome.values})
            results.append(Result(rule, outcome, text))
    results.sort(key=sort_key)
    return AuditReport(results, rule_list, target or Target(), list(ctx.facts.warnings))


def _run(rule: Rule, ctx: CheckContext, checks: Mapping[str, CheckFn]) -> list[Outcome]:
    check = checks.get(rule.check)
    if check is None:
        return [not_checked(f"internal error: no check named {rule.check!r}")]
    try:
        outcomes = check(rule, ctx)
    except Exception as exc:  # a bug in one check must not hide the other rules
        log.exception("audit check %s failed", rule.check)
        return [not_checked(f"internal error in check {rule.check}: {redact(str(exc))[:200]}")]
    return outcomes or [not_checked(f"internal error: check {rule.check} returned nothing")]


def render_remediation(template: str, values: Mapping[str, str]) -> str:
    """Fill ``{name}`` placeholders; unknown names are left as they are."""
    out = template
    for key, value in values.items():
        out = out.replace("{" + key + "}", value)
    return out
