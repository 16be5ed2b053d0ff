"""Which items an export carries: the roots asked for, expanded through the lineage graph.

Roots are every asset of the ``--include`` kinds, or the ``--select KIND:NAME`` matches.
Each root brings its closure (``LineageGraph.closure``: what it derives from, what it points
to, the environments and component files it uses); a pipeline also brings its steps and the
models they logged, a pipeline component its jobs. A component file is an asset of its own
(``components``): its YAML and its ``code:`` snapshot. Data payloads (uploads a run read,
run outputs that are not model folders) come only with ``data``; upload folders that are
nobody's input or code are reported as left out (``export/engine.py``), and ``backup``'s
catch-all keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from amlport.errors import UsageError
from amlport.export.kinds import DEFAULT_INCLUDE as DEFAULT_INCLUDE
from amlport.export.kinds import INCLUDE_KINDS
from amlport.export.kinds import parse_include as parse_include
from amlport.exporters.base import ExportItem
from amlport.lineage.graph import LineageGraph
from amlport.model.inventory import Inventory

RUN_KINDS = ("pipeline_run", "step_run", "run")


@dataclass
class Selection:
    items: list[ExportItem]
    roots: list[str]
    nodes: set[str]  # every node the export covers (the lineage subgraph it records)
    data_skipped: dict[str, int] = field(default_factory=dict)  # node -> bytes left out


def select(
    inv: Inventory, lg: LineageGraph, select: list[str], include: frozenset[str]
) -> Selection:
    roots = _roots_from_select(lg, select) if select else _roots_from_include(inv, lg, include)
    # One walk from every root at once: the closure of a union is the union of the closures,
    # and one closure per root re-walked the shared ancestors of each (quadratic: 30 s of a
    # 100k-blob backup).
    nodes = lg.closure(expand_all(lg, roots))
    items: list[ExportItem] = []
    skipped: dict[str, int] = {}
    model_folders = {v for u, v, k in lg.g.edges(data="kind") if k == "points_to" and u in nodes}
    for node in sorted(nodes - model_folders):
        found = _items(inv, lg, node, data="data" in include or node in roots)
        items += found
        if not found and lg.g.nodes[node]["kind"] in ("output", "data"):
            skipped[node] = int(lg.g.nodes[node].get("size", 0))
    return Selection(sorted(items), sorted(roots), nodes, skipped)


def _is_root(include: frozenset[str], data: dict[str, object]) -> bool:
    """Is a node an asset of one of the included kinds (and present in storage)?"""
    kind, exists = data["kind"], data.get("exists", True)
    return (
        ("components" in include and _is_component_file(data))
        or ("models" in include and kind == "model" and bool(exists))
        or ("pipelines" in include and kind in ("pipeline", "pipeline_run"))
        or ("environments" in include and kind == "environment" and bool(data.get("path")))
        or ("runs" in include and kind in RUN_KINDS and bool(exists))
    )


def _roots_from_include(inv: Inventory, lg: LineageGraph, include: frozenset[str]) -> list[str]:
    roots = [node for node, data in lg.g.nodes(data=True) if _is_root(include, data)]
    if "data" in include:
        roots += [f"output:{loc}" for loc, out in inv.outputs.items() if out.exists]
        roots += lg.nodes_of("data")
    return sorted(set(roots))


def _roots_from_select(lg: LineageGraph, wanted: list[str]) -> list[str]:
    roots: list[str] = []
    for text in wanted:
        kind, sep, name = text.partition(":")
        if not sep or kind not in INCLUDE_KINDS.values():
            raise UsageError(
                f"--select {text!r} is not KIND:NAME",
                hint=f"KIND is one of {', '.join(INCLUDE_KINDS.values())}; NAME an id, the end "
                "of one (a run id, a folder) or a label, as 'amlport lineage' shows them",
            )
        matches = [n for n in lg.find(name) if node_kind_matches(lg, n, kind)]
        if not matches:
            raise UsageError(
                f"--select {text!r} matches nothing",
                hint="list candidates with 'amlport scan --json'",
            )
        roots += matches
    return sorted(set(roots))


def node_kind_matches(lg: LineageGraph, node: str, kind: str) -> bool:
    """Whether ``node`` is of the ``--select`` KIND ``kind`` (export's and restore's)."""
    node_kind = lg.g.nodes[node]["kind"]
    return {
        "model": node_kind == "model",
        "pipeline": node_kind in ("pipeline", "pipeline_run"),
        "environment": node_kind == "environment",
        "run": node_kind in RUN_KINDS,
        "data": node_kind in ("data", "output"),
        "component": _is_component_file(lg.g.nodes[node]),
    }[kind]


def _is_component_file(data: dict[str, object]) -> bool:
    """A component file (a job of a pipeline is a ``component`` node too, without a path)."""
    return data["kind"] == "component" and bool(data.get("path"))


def expand_all(lg: LineageGraph, roots: list[str]) -> set[str]:
    """The roots, and what each pipeline (or pipeline component) among them brings: its
    steps (jobs) and the models they logged (one walk, shared by all the roots)."""
    todo = [r for r in roots if lg.g.nodes[r]["kind"] in ("pipeline", "pipeline_run", "component")]
    walked = set(todo)  # apart from ``nodes``: a root below a pipeline is walked through too
    nodes = set(roots)
    while todo:
        n = todo.pop()
        for _, child, kind in lg.g.out_edges(n, data="kind"):
            if kind in ("parent_of", "logged_model") and child not in walked:
                walked.add(child)
                nodes.add(child)
                todo.append(child)
    return nodes


def _items(inv: Inventory, lg: LineageGraph, node: str, *, data: bool) -> list[ExportItem]:
    """The items a node stands for (a pipeline run is both a pipeline and a run record)."""
    attrs = lg.g.nodes[node]
    kind, label, exists = attrs["kind"], str(attrs["label"]), bool(attrs.get("exists", True))
    if kind == "model" and exists:
        return [ExportItem("model", node, label)]
    if kind == "environment" and attrs.get("path"):
        return [ExportItem("environment", node, label)]
    if kind == "pipeline":
        return [ExportItem("pipeline", node, label)]
    if _is_component_file(attrs):
        return [ExportItem("component", node, label)]
    if kind in RUN_KINDS and exists:
        run = [ExportItem("run", node, label)]
        return [ExportItem("pipeline", node, label), *run] if kind == "pipeline_run" else run
    if kind in ("output", "data") and data and _has_payload(inv, lg, node):
        return [ExportItem("data", node, label)]
    return []


def _has_payload(inv: Inventory, lg: LineageGraph, node: str) -> bool:
    if lg.g.nodes[node]["kind"] == "output":
        return bool(lg.g.nodes[node].get("exists", True))
    datastore = str(lg.g.nodes[node].get("path", "")).split("/", 1)[0]
    return inv.source.container_of(datastore) is not None
