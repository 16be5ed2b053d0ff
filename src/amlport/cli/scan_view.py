"""Rich rendering of a scan: counts, run tree, models, findings.

Printed through a ``SafeConsole``: strings are shown as they are (never markup), styled
pieces are ``Text`` from ``terminal.styled``/``terminal.line``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from amlport.cli.terminal import line, styled
from amlport.lineage.graph import LineageGraph
from amlport.model.findings import Severity
from amlport.model.inventory import Inventory, Run

MAX_ROOT_RUNS = 40
SEVERITY_STYLE = {"high": "bold red", "medium": "yellow", "low": "cyan", "info": "dim"}


def scan_report(
    inv: Inventory, lg: LineageGraph, described: str, *, retries: int = 0
) -> dict[str, Any]:
    """The ``--json`` document of ``amlport scan``. ``retries``: storage calls retried."""
    return {
        "schema": "amlport.scan/1",
        "location": described,
        "retries": retries,
        "inventory": inv.to_dict(),
        "graph": {
            "nodes": dict(sorted(Counter(k for _, k in lg.g.nodes(data="kind")).items())),
            "edges": dict(sorted(Counter(k for _, _, k in lg.g.edges(data="kind")).items())),
        },
    }


def render_scan(console: Console, inv: Inventory, lg: LineageGraph, described: str) -> None:
    desc = inv.source
    console.print(line(("amlport scan", "bold"), f" {described}"))
    ws = " / ".join(x for x in (desc.subscription_id, desc.resource_group, desc.workspace) if x)
    console.print(
        line(
            "account ",
            (desc.account, "bold"),
            f"  containers {', '.join(desc.containers)}" + (f"  workspace {ws}" if ws else ""),
        )
    )
    console.print(_counts_table(inv, lg))
    console.print(_run_tree(inv))
    if inv.models:
        console.print(_models_table(inv))
    if inv.environments:
        console.print(_environments_table(inv))
    console.print(_findings_table(inv) if inv.findings else styled("No findings.", "green"))


def _counts_table(inv: Inventory, lg: LineageGraph) -> Table:
    t = Table(title="Inventory", title_justify="left")
    t.add_column("kind")
    t.add_column("count", justify="right")
    for kind, n in inv.counts().items():
        t.add_row(kind.replace("_", " "), str(n))
    t.add_row("size (bytes)", f"{inv.bytes:,}")
    t.add_row("graph nodes / edges", f"{lg.g.number_of_nodes()} / {lg.g.number_of_edges()}")
    return t


def _run_label(run: Run) -> Text:
    parts: list[str] = [run.kind]
    if run.module:
        parts.append(run.module.rsplit(".", 1)[-1])
    if run.node_id:
        parts.append(f"node {run.node_id}")
    parts.append(run.runtime)
    label = line((run.run_id, "bold"), "  " + "  ".join(parts))
    if not run.exists:
        label.append_text(line("  ", ("no run record", "red")))
    return label


def _run_tree(inv: Inventory) -> Tree:
    tree = Tree(styled("Runs", "bold"))
    roots = sorted(
        (r for r in inv.runs.values() if r.parent_id is None or r.parent_id not in inv.runs),
        key=lambda r: (r.kind != "pipeline_run", r.run_id),
    )
    for run in roots[:MAX_ROOT_RUNS]:
        _add_run(tree, inv, run, depth=0)
    if len(roots) > MAX_ROOT_RUNS:
        tree.add(f"… {len(roots) - MAX_ROOT_RUNS} more top-level runs (see --json)")
    return tree


def _add_run(parent: Tree, inv: Inventory, run: Run, depth: int) -> None:
    branch = parent.add(_run_label(run))
    if depth > 8:
        return
    for child in sorted(run.children):
        if child in inv.runs:
            _add_run(branch, inv, inv.runs[child], depth + 1)


def _models_table(inv: Inventory) -> Table:
    t = Table(title="Models", title_justify="left")
    for col in ("location", "format", "run", "portable", "pointer / deployment"):
        t.add_column(col, overflow="fold")
    for m in sorted(inv.models.values(), key=lambda m: m.loc):
        portable = (
            styled("yes", "green") if m.portable else line(("no", "yellow"), f" ({m.portability})")
        )
        extra = ", ".join(x for x in (m.pointer, m.deployment_files) if x) or "-"
        t.add_row(str(m.loc), m.format, m.run_id or "-", portable, extra)
    return t


def _environments_table(inv: Inventory) -> Table:
    t = Table(title="Environments", title_justify="left")
    for col in ("id", "kind", "image", "pinned"):
        t.add_column(col, overflow="fold")
    for e in sorted(inv.environments.values(), key=lambda e: e.env_id):
        pinned = (
            styled("yes", "") if e.pinned else line(("no", "yellow"), f" {', '.join(e.unpinned)}")
        )
        t.add_row(e.env_id, e.kind, e.image or "-", pinned)
    return t


def _findings_table(inv: Inventory) -> Table:
    t = Table(title=f"Findings ({len(inv.findings)})", title_justify="left")
    for col in ("severity", "code", "path", "message"):
        t.add_column(col, overflow="fold")
    order = sorted(inv.findings, key=lambda f: (-f.severity.rank, f.code, f.path))
    for f in order:
        style = SEVERITY_STYLE[f.severity.value]
        t.add_row(styled(f.severity.value, style), f.code, f.path, f.message)
    return t


def exit_code_for(inv: Inventory) -> int:
    """0 clean; 1 when anything at or above LOW was found."""
    return 1 if any(f.severity.rank >= Severity.LOW.rank for f in inv.findings) else 0
