"""Serialise a lineage graph: node-link JSON, GraphML, DOT, Mermaid, OpenLineage.

All outputs are deterministic (sorted nodes and edges) so they can be diffed and kept as
golden files. DOT and Mermaid are written here rather than through pydot/pygraphviz: both
are a few lines of text and neither library is otherwise needed.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from amlport import __version__
from amlport.model.workspace import WorkspaceDescriptor

if TYPE_CHECKING:  # networkx and the graph are imported where a graph is rendered: the CLI
    from amlport.lineage.graph import LineageGraph  # reads FORMATS at every start

FORMATS = ("json", "graphml", "dot", "mermaid", "openlineage")
PRODUCER = f"https://github.com/amlport/amlport/tree/v{__version__}"
OPENLINEAGE_SCHEMA = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
RUN_KINDS = ("pipeline_run", "step_run", "run")


def to_json(lg: LineageGraph, _: WorkspaceDescriptor) -> str:
    return json.dumps(lg.to_node_link(), indent=2, sort_keys=True) + "\n"


def to_graphml(lg: LineageGraph, _: WorkspaceDescriptor) -> str:
    import networkx as nx

    buf = io.BytesIO()
    g = nx.MultiDiGraph()
    for n, d in sorted(lg.g.nodes(data=True)):
        g.add_node(n, **d)
    for u, v, d in sorted(lg.g.edges(data=True), key=lambda e: (e[0], e[1], e[2]["kind"])):
        g.add_edge(u, v, **d)
    nx.write_graphml(g, buf, encoding="utf-8")
    return buf.getvalue().decode("utf-8")


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(lg: LineageGraph, _: WorkspaceDescriptor) -> str:
    lines = ["digraph lineage {", "  rankdir=LR;", "  node [shape=box, fontsize=10];"]
    for n, d in sorted(lg.g.nodes(data=True)):
        label = f"{d['label']}\\n({d['kind']})"
        lines.append(
            f"  {_dot_quote(n)} [label={_dot_quote(label)}, kind={_dot_quote(d['kind'])}];"
        )
    for u, v, d in _sorted_edges(lg):
        attrs = ", ".join(f"{k}={_dot_quote(str(val))}" for k, val in sorted(d.items()))
        lines.append(
            f"  {_dot_quote(u)} -> {_dot_quote(v)} [label={_dot_quote(d['kind'])}, {attrs}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"


MERMAID_SHAPES = {
    "pipeline_run": ("[[", "]]"),
    "step_run": ("[", "]"),
    "run": ("[", "]"),
    "output": ("[(", ")]"),
    "data": ("[(", ")]"),
    "model": ("{{", "}}"),
    "environment": ("([", "])"),
    "pipeline": ("[[", "]]"),
    "component": ("[/", "/]"),
}


def _mermaid_text(text: str) -> str:
    return text.replace('"', "#quot;")


def to_mermaid(lg: LineageGraph, _: WorkspaceDescriptor) -> str:
    ids = {n: f"n{i}" for i, n in enumerate(sorted(lg.g.nodes))}
    lines = ["flowchart LR"]
    for n, d in sorted(lg.g.nodes(data=True)):
        left, right = MERMAID_SHAPES.get(d["kind"], ("[", "]"))
        lines.append(f'  {ids[n]}{left}"{_mermaid_text(d["label"])}<br/><i>{d["kind"]}</i>"{right}')
    for u, v, d in _sorted_edges(lg):
        label = d["kind"] + (f": {d['port']}" if d.get("port") else "")
        lines.append(f'  {ids[u]} -->|"{_mermaid_text(label)}"| {ids[v]}')
    return "\n".join(lines) + "\n"


def _sorted_edges(lg: LineageGraph) -> list[tuple[str, str, dict[str, Any]]]:
    return sorted(lg.g.edges(data=True), key=lambda e: (e[0], e[1], sorted(e[2].items())))


# A run's end state (walk/runtimes.py) -> the OpenLineage event that reports it.
END_EVENTS = {"completed": "COMPLETE", "failed": "FAIL", "canceled": "ABORT"}
EVENT_ORDER = ("START", "COMPLETE", "FAIL", "ABORT", "OTHER")


def to_openlineage(lg: LineageGraph, desc: WorkspaceDescriptor) -> str:
    """The run events of every run, with its consumed and produced datasets (JSON lines),
    in time order.

    Each run gets the events its logs support (``walk/runtimes.py``): ``START`` at the time it
    started, and ``COMPLETE``, ``FAIL`` or ``ABORT`` at the time it ended. A run whose logs
    say neither (a v2 command job keeps only what the script printed) gets one ``OTHER``
    event at the time of this export: the lineage is known, its run cycle is not, and no time
    is made up for it. Dataset namespaces follow the OpenLineage naming spec for Azure Blob
    Storage (``wasbs://<container>@<account>.dfs.<suffix>``, name = path).
    """
    job_ns = f"azureml://{desc.workspace or desc.account}"
    now = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    events: list[tuple[str, int, str, dict[str, Any]]] = []
    for n in sorted(n for n in lg.g if lg.g.nodes[n]["kind"] in RUN_KINDS):
        d = lg.g.nodes[n]
        base = _run_event_body(lg, n, desc, job_ns)
        cycle = []
        if d.get("started"):
            cycle.append(("START", str(d["started"])))
        end = END_EVENTS.get(str(d.get("status")))
        if end and d.get("ended"):
            cycle.append((end, str(d["ended"])))
        for event_type, at in cycle or [("OTHER", now)]:
            event = {"eventType": event_type, "eventTime": at, **base}
            events.append((at, EVENT_ORDER.index(event_type), n, event))
    events.sort(key=lambda e: (_instant(e[0]), e[1], e[2]))
    lines = [json.dumps(e[3], sort_keys=True) for e in events]
    return "\n".join(lines) + ("\n" if lines else "")


def _run_event_body(
    lg: LineageGraph, n: str, desc: WorkspaceDescriptor, job_ns: str
) -> dict[str, Any]:
    """What every event of one run carries: producer, run, job, datasets, parent facet."""
    d = lg.g.nodes[n]
    body: dict[str, Any] = {
        "producer": PRODUCER,
        "schemaURL": OPENLINEAGE_SCHEMA,
        "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job_ns}/{d['run_id']}"))},
        "job": {"namespace": job_ns, "name": d.get("module") or d["run_id"]},
        "inputs": sorted(
            (_dataset(lg, u, desc) for u, _, k in lg.g.in_edges(n, data="kind") if k == "consumed"),
            key=lambda x: x["name"],
        ),
        "outputs": sorted(
            (
                _dataset(lg, v, desc)
                for _, v, k in lg.g.out_edges(n, data="kind")
                if k == "produced"
            ),
            key=lambda x: x["name"],
        ),
    }
    parent = [u for u, _, k in lg.g.in_edges(n, data="kind") if k == "parent_of"]
    if parent:
        pd = lg.g.nodes[parent[0]]
        body["run"]["facets"] = {
            "parent": {
                "_producer": PRODUCER,
                "_schemaURL": "https://openlineage.io/spec/facets/1-0-1/ParentRunFacet.json",
                "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{job_ns}/{pd['run_id']}"))},
                "job": {"namespace": job_ns, "name": pd.get("module") or pd["run_id"]},
            }
        }
    return body


def _instant(stamp: str) -> datetime:
    """An event time (``…Z``) as an aware datetime, for ordering."""
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _dataset(lg: LineageGraph, node: str, desc: WorkspaceDescriptor) -> dict[str, str]:
    datastore, _, path = str(lg.g.nodes[node].get("path", "")).partition("/")
    container = desc.container_of(datastore)
    if container is None:
        return {"namespace": f"azureml://datastores/{datastore}", "name": path}
    return {"namespace": f"wasbs://{container}@{desc.account}.dfs.{desc.endpoint}", "name": path}


WRITERS: dict[str, Callable[[LineageGraph, WorkspaceDescriptor], str]] = {
    "json": to_json,
    "graphml": to_graphml,
    "dot": to_dot,
    "mermaid": to_mermaid,
    "openlineage": to_openlineage,
}


def render(lg: LineageGraph, fmt: str, desc: WorkspaceDescriptor) -> str:
    return WRITERS[fmt](lg, desc)
