"""Rich rendering of a scan: counts, run tree, models, findings.

Printed through a ``SafeConsole``: strings are shown as they are (never markup), styled
pieces are ``Text`` from ``terminal.styled``/``terminal.line``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich.console import Console
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
    """The ``--json`` document of ``amlport scan`` (``common.emit_json`` adds ``schema`` and
    ``exit_code``). ``retries``: storage calls retried."""
    return {
        "location": described,
        "retries": retries,
        "inventory": inv.to_dict(),
        "graph": {
            "nodes": dict(sorted(Counter(k for _, k in lg.g.nodes(data="kind")).items())),
            "edges": dict(sorted(Counter(k for _, _, k in lg.g.edges(data="kind")).items())),
        },
    }


def render_scan(console: Console, inv: Inventory, lg: LineageGraph, described: str) -> None:
    """Summary first (counts, findings count), then the run tree, models, environments and
    findings: tables on a terminal, plain lines in a pipe or log (``common.show_table``)."""
    from amlport.cli.common import show_table

    desc = inv.source
    console.print(line(("amlport scan", "bold"), f" {described}"), soft_wrap=True)
    ws = " / ".join(x for x in (desc.subscription_id, desc.resource_group, desc.workspace) if x)
    console.print(
        line(
            "account ",
            (desc.account, "bold"),
            f"  containers {', '.join(desc.containers)}" + (f"  workspace {ws}" if ws else ""),
        ),
        soft_wrap=True,
    )
    counts = [[kind.replace("_", " "), str(n)] for kind, n in inv.counts().items()]
    counts += [
        ["size (bytes)", f"{inv.bytes:,}"],
        ["graph nodes / edges", f"{lg.g.number_of_nodes()} / {lg.g.number_of_edges()}"],
    ]
    show_table("Inventory", [("kind", "text"), ("count", "num")], counts, console=console)
    _print_runs(console, inv)
    if inv.models:
        show_table(
            "Models",
            [("location", "path"), ("format", "text"), ("run", "id"), ("portable", "text"),
             ("signature", "text"), ("pointer / deployment", "path")],
            [
                [str(m.loc), m.format, m.run_id or "-",
                 "yes" if m.portable else f"no ({m.portability})",
                 signature_text(m.signature),
                 ", ".join(x for x in (m.pointer, m.deployment_files) if x) or "-"]
                for m in sorted(inv.models.values(), key=lambda m: m.loc)
            ],
            console=console,
        )  # fmt: skip
    if inv.environments:
        show_table(
            "Environments",
            [("id", "path"), ("kind", "text"), ("image", "path"), ("pinned", "text")],
            [
                [e.env_id, e.kind, e.image or "-",
                 "yes" if e.pinned else f"no {', '.join(e.unpinned)}".rstrip()]
                for e in sorted(inv.environments.values(), key=lambda e: e.env_id)
            ],
            console=console,
        )  # fmt: skip
    if not inv.findings:
        console.print(styled("No findings.", "green"))
        return
    order = sorted(inv.findings, key=lambda f: (-f.severity.rank, f.code, f.path))
    show_table(
        f"Findings ({len(inv.findings)})",
        [("severity", "text"), ("code", "id"), ("path", "path"), ("message", "text")],
        [
            [styled(f.severity.value, SEVERITY_STYLE[f.severity.value]), f.code, f.path, f.message]
            for f in order
        ],
        console=console,
    )


def signature_text(signature: dict[str, list[str]] | None) -> str:
    """``inputs: a: double, b: long -> outputs: double`` (the first four of each part)."""
    if not signature:
        return "-"
    parts = []
    for part, entries in signature.items():
        shown = ", ".join(entries[:4]) + (f", … ({len(entries)})" if len(entries) > 4 else "")
        parts.append(f"{part}: {shown}")
    return " -> ".join(parts)


def _print_runs(console: Console, inv: Inventory) -> None:
    """The run tree: drawn on a terminal, indented lines (nothing wrapped) elsewhere."""
    if console.is_terminal:
        console.print(_run_tree(inv))
        return
    console.print("Runs")
    roots = _roots(inv)

    def add(run: Run, depth: int) -> None:
        console.print(line("  " * (depth + 1)) + _run_label(run), soft_wrap=True)
        if depth > 8:
            return
        for child in sorted(run.children):
            if child in inv.runs:
                add(inv.runs[child], depth + 1)

    for run in roots[:MAX_ROOT_RUNS]:
        add(run, 0)
    if len(roots) > MAX_ROOT_RUNS:
        console.print(f"  and {len(roots) - MAX_ROOT_RUNS} more top-level runs (see --json)")


def _roots(inv: Inventory) -> list[Run]:
    return sorted(
        (r for r in inv.runs.values() if r.parent_id is None or r.parent_id not in inv.runs),
        key=lambda r: (r.kind != "pipeline_run", r.run_id),
    )


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
    roots = _roots(inv)
    for run in roots[:MAX_ROOT_RUNS]:
        _add_run(tree, inv, run, depth=0)
    if len(roots) > MAX_ROOT_RUNS:
        tree.add(f"and {len(roots) - MAX_ROOT_RUNS} more top-level runs (see --json)")
    return tree


def _add_run(parent: Tree, inv: Inventory, run: Run, depth: int) -> None:
    branch = parent.add(_run_label(run))
    if depth > 8:
        return
    for child in sorted(run.children):
        if child in inv.runs:
            _add_run(branch, inv, inv.runs[child], depth + 1)


def exit_code_for(inv: Inventory) -> int:
    """0 clean; 1 when anything at or above LOW was found."""
    return 1 if any(f.severity.rank >= Severity.LOW.rank for f in inv.findings) else 0
