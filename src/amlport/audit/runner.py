"""Run an audit: merge the facts, select the rules, evaluate them, return the report.

Pure over its inputs: the caller (the CLI) opens the source, walks it, collects the data-plane
facts and reads the ``--arm`` folder, then hands everything here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from amlport.audit import checks_hygiene, checks_resilience
from amlport.audit.catalog import load_rules, select_rules
from amlport.audit.dataplane import NO_SOURCE_REASON
from amlport.audit.engine import AuditReport, CheckContext, CheckFn, Target, evaluate
from amlport.audit.facts import ControlPlane, DataPlane, Facts, merge
from amlport.model.inventory import Inventory
from amlport.plugins import Registry

# Every check a rule may name (rules.yaml ``check:``), by name; a name in both modules is
# refused (the dict merge it replaced let the second silently win).
CHECKS: Registry[CheckFn] = Registry("audit check")
for _name, _check in [*checks_resilience.CHECKS.items(), *checks_hygiene.CHECKS.items()]:
    CHECKS.add(_name, _check)


@dataclass
class AuditRequest:
    """Inputs of one audit. Evolve by adding defaulted fields."""

    inventory: Inventory | None = None
    data_plane: DataPlane = field(default_factory=lambda: DataPlane.not_checked(NO_SOURCE_REASON))
    control_plane: ControlPlane = field(default_factory=ControlPlane)
    source_label: str | None = None
    only: Sequence[str] = ()
    skip: Sequence[str] = ()


def run_audit(request: AuditRequest) -> AuditReport:
    rules = select_rules(load_rules(), request.only, request.skip)
    inv = request.inventory
    containers = inv.source.containers if inv is not None else ()
    facts = merge(request.data_plane, request.control_plane, containers=containers)
    ctx = CheckContext(facts=facts, inventory=inv)
    return evaluate(rules, ctx, CHECKS, target=_target(request, facts))


def _target(request: AuditRequest, facts: Facts) -> Target:
    inv = request.inventory
    ws = facts.workspace.value if facts.workspace.known else None
    workspace = (inv.source.workspace if inv else None) or (ws.name if ws else None)
    return Target(
        source=request.source_label,
        account=facts.account,
        workspace=workspace,
        arm=request.control_plane.label,
        data_plane=_data_plane_status(request.data_plane),
    )


def _data_plane_status(dp: DataPlane) -> str:
    if dp.sku.known or dp.blob_soft_delete.known:
        return "checked"
    return f"not checked: {dp.sku.reason}"


def audit_walk(inventory: Inventory) -> AuditReport:
    """The rules a walk alone decides (the hygiene checks over ``inventory``), with no
    data-plane or control-plane call: what ``diff`` compares between two sides."""
    walked = [r for r in load_rules() if r.check in checks_hygiene.CHECKS]
    ctx = CheckContext(
        facts=merge(
            DataPlane.not_checked(NO_SOURCE_REASON),
            ControlPlane(),
            containers=inventory.source.containers,
        ),
        inventory=inventory,
    )
    return evaluate(walked, ctx, CHECKS)
