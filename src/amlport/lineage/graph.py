"""A lineage graph (networkx ``MultiDiGraph``) built from an inventory.

Edge direction follows the reference, from the thing referring to the thing referred to
where that is how storage records it, and from producer to consumer for data:

- ``parent_of``        pipeline_run → step_run, sweep → trial, pipeline → job
- ``produced``         run → output
- ``consumed``         output | data → run                     (attribute ``port``)
- ``points_to``        model → output                          (pointer file, or folder holding it)
- ``logged_model``     run → model
- ``uses_environment`` model | component → environment
- ``binds``            job component A → job component B       (attributes ``port``, ``input``)
- ``uses_component``   job → the component (or pipeline) file its ``component:`` names

A pipeline component is a ``component`` node (``spec_type`` ``pipeline``) that is
``parent_of`` its own jobs, recursively, exactly as a pipeline job is.

``upstream`` is everything a node derives from; ``closure`` adds what those nodes point to
and the environments and component files they use, which is what an export must carry (and
not what merely points to or uses them).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from amlport.model.inventory import Inventory, JobSpec, Loc, Run
from amlport.walk import environments
from amlport.walk.linker import environment_id

NODE_KINDS = (
    "pipeline_run",
    "step_run",
    "run",
    "output",
    "model",
    "environment",
    "data",
    "component",
    "pipeline",
)
EDGE_KINDS = (
    "parent_of",
    "produced",
    "consumed",
    "points_to",
    "logged_model",
    "uses_environment",
    "binds",
    "uses_component",
)
FORWARD_DEPENDENCIES = ("points_to", "uses_environment", "uses_component")
# Nodes whose loss breaks something downstream (what ``impact`` reports).
IMPACTED_KINDS = ("pipeline_run", "step_run", "run", "model", "output", "component", "pipeline")


def run_id(rid: str) -> str:
    return f"run:{rid}"


def loc_id(kind: str, loc: Loc) -> str:
    return f"{kind}:{loc}"


class LineageGraph:
    def __init__(self, graph: nx.MultiDiGraph | None = None) -> None:
        self.g: nx.MultiDiGraph = graph if graph is not None else nx.MultiDiGraph()

    # -- building --------------------------------------------------------------------------
    def add_node(self, nid: str, kind: str, label: str, /, **attrs: Any) -> None:
        clean = {k: _scalar(v) for k, v in attrs.items() if v is not None and v != []}
        if nid in self.g:
            self.g.nodes[nid].update(clean)
            return
        self.g.add_node(nid, kind=kind, label=label, **clean)

    def add_edge(self, src: str, dst: str, kind: str, /, **attrs: Any) -> None:
        if src not in self.g or dst not in self.g:
            raise KeyError(f"edge {kind} {src} -> {dst} names a missing node")
        clean = {k: _scalar(v) for k, v in attrs.items() if v is not None}
        for data in self.g.get_edge_data(src, dst, default={}).values():
            if data.get("kind") == kind and all(data.get(k) == v for k, v in clean.items()):
                return
        self.g.add_edge(src, dst, kind=kind, **clean)

    # -- queries ----------------------------------------------------------------------------
    def _require(self, node: str) -> None:
        if node not in self.g:
            raise KeyError(node)

    def upstream(self, node: str) -> set[str]:
        self._require(node)
        return set(nx.ancestors(self.g, node))

    def downstream(self, node: str) -> set[str]:
        self._require(node)
        return set(nx.descendants(self.g, node))

    def impact(self, node: str) -> set[str]:
        """What breaks if ``node`` is lost: downstream runs, models, outputs and specs."""
        return {n for n in self.downstream(node) if self.g.nodes[n]["kind"] in IMPACTED_KINDS}

    def closure(self, nodes: Iterable[str]) -> set[str]:
        """Everything needed to carry ``nodes`` elsewhere: ancestors plus what they point to."""
        todo = list(nodes)
        seen: set[str] = set()
        while todo:
            n = todo.pop()
            if n in seen:
                continue
            self._require(n)
            seen.add(n)
            # What points to or uses a node is not what it needs: a component exported on its
            # own does not bring every pipeline that names it, nor an environment every
            # component built on it.
            todo.extend(
                u
                for u, _, kind in self.g.in_edges(n, data="kind")
                if kind not in FORWARD_DEPENDENCIES
            )
            # A pipeline component is made of its jobs: carrying it carries them.
            holds_jobs = self.g.nodes[n]["kind"] == "component"
            todo.extend(
                dst
                for _, dst, kind in self.g.out_edges(n, data="kind")
                if kind in FORWARD_DEPENDENCIES or (holds_jobs and kind == "parent_of")
            )
        return seen

    def subgraph(self, nodes: Iterable[str]) -> LineageGraph:
        return LineageGraph(self.g.subgraph(set(nodes)).copy())

    def nodes_of(self, kind: str) -> list[str]:
        return sorted(n for n, k in self.g.nodes(data="kind") if k == kind)

    def edges_of(self, kind: str) -> list[tuple[str, str, dict[str, Any]]]:
        return sorted(
            ((u, v, d) for u, v, d in self.g.edges(data=True) if d["kind"] == kind),
            key=lambda e: (e[0], e[1], sorted(e[2].items())),
        )

    def find(self, text: str) -> list[str]:
        """Nodes whose id equals ``text``, ends with it, or whose label equals it."""
        if text in self.g:
            return [text]
        return sorted(
            n
            for n, label in self.g.nodes(data="label")
            if n.endswith(":" + text) or n.endswith("/" + text) or label == text
        )

    def to_node_link(self, nodes: Iterable[str] | None = None) -> dict[str, Any]:
        """The graph as node-link JSON; ``nodes``: of the subgraph of these only, read
        through a view (``subgraph(nodes).to_node_link()`` copies the graph first: at 100k
        blobs a backup's whole graph, ~30 MB, the run's high-water mark)."""
        g = self.g if nodes is None else self.g.subgraph(set(nodes))
        listed = [{"id": n, **dict(sorted(d.items()))} for n, d in sorted(g.nodes(data=True))]
        links = sorted(
            (
                {"source": u, "target": v, **dict(sorted(d.items()))}
                for u, v, d in g.edges(data=True)
            ),
            key=lambda e: (e["source"], e["target"], e["kind"], str(sorted(e.items()))),
        )
        return {"directed": True, "multigraph": True, "nodes": listed, "links": links}


def _scalar(value: Any) -> Any:
    """GraphML keeps str/int/float/bool only: join lists, stringify the rest."""
    if isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (list, tuple, set)):
        return ",".join(sorted(str(v) for v in value))
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in sorted(value.items()))
    return str(value)


# -- building from an inventory ---------------------------------------------------------------
def build_graph(inv: Inventory) -> LineageGraph:
    lg = LineageGraph()
    _add_runs(lg, inv)
    _add_outputs(lg, inv)
    _add_environments(lg, inv)
    _add_models(lg, inv)
    _add_inputs(lg, inv)
    _add_specs(lg, inv)
    return lg


def _run_label(run: Run) -> str:
    if run.module:
        return run.module.rsplit(".", 1)[-1]
    return run.run_id


def _add_runs(lg: LineageGraph, inv: Inventory) -> None:
    for run in inv.runs.values():
        lg.add_node(
            run_id(run.run_id),
            run.kind,
            _run_label(run),
            run_id=run.run_id,
            runtime=run.runtime,
            node_id=run.node_id,
            module=run.module,
            parameters=run.parameters or None,
            exists=run.exists,
            status=run.status,  # started / ended / status: from its logs (walk/runtimes.py)
            started=run.started,
            ended=run.ended,
            reused_from=run.reused_from,  # designer facts (walk/designer.py)
            unestablished=run.unestablished,  # edges its logs do not establish
        )
    for run in inv.runs.values():
        for child in run.children:
            lg.add_edge(run_id(run.run_id), run_id(child), "parent_of")


def _add_outputs(lg: LineageGraph, inv: Inventory) -> None:
    for out in inv.outputs.values():
        nid = loc_id("output", out.loc)
        lg.add_node(
            nid,
            "output",
            out.port,
            format=out.format,
            files=len(out.files),
            size=out.size,
            exists=out.exists,
            path=str(out.loc),
        )
        if out.run_id and out.run_id in inv.runs:
            lg.add_edge(run_id(out.run_id), nid, "produced", port=out.port)


def _add_environments(lg: LineageGraph, inv: Inventory) -> None:
    copies: dict[str, int] = {}
    for env in inv.environments.values():
        if env.same_as:
            copies[env.same_as] = copies.get(env.same_as, 1) + 1
    for env in inv.environments.values():
        if not environments.listed(env):
            continue  # a file of a v2 environment, or a copy of an identical one
        lg.add_node(
            f"environment:{env.env_id}",
            "environment",
            env.name or env.env_id,
            env_kind=env.kind,
            image=env.image,
            pinned=env.pinned,
            path=env.path,
            copies=copies.get(env.env_id),  # identical conda files it stands for
            context=env.context,
        )


def _add_models(lg: LineageGraph, inv: Inventory) -> None:
    for model in inv.models.values():
        nid = loc_id("model", model.loc)
        lg.add_node(
            nid,
            "model",
            model.loc.path.rsplit("/", 1)[-1],
            format=model.format,
            portable=model.portable,
            flavors=model.flavors,
            exists=model.exists,
            pointer=model.pointer,
            run_id=model.run_id,
            path=str(model.loc),
            **_signature_attrs(model.signature),
        )
        if model.run_id and model.run_id in inv.runs:
            lg.add_edge(run_id(model.run_id), nid, "logged_model")
        if model.environment and model.environment in inv.environments:
            lg.add_edge(nid, f"environment:{model.environment}", "uses_environment")
        parts = model.loc.path.split("/")
        for depth in range(len(parts), 0, -1):  # the output folder holding the model, if any
            holder = Loc(model.loc.datastore, "/".join(parts[:depth]))
            if holder in inv.outputs:
                lg.add_edge(nid, loc_id("output", holder), "points_to")
                break


def _signature_attrs(signature: dict[str, list[str]] | None) -> dict[str, str]:
    """``signature_inputs`` etc.: the entries in their order, ``; ``-separated (a tensor's
    shape holds commas, and GraphML keeps scalars only)."""
    return {f"signature_{part}": "; ".join(entries) for part, entries in (signature or {}).items()}


def _add_inputs(lg: LineageGraph, inv: Inventory) -> None:
    for run in inv.runs.values():
        for ref in run.inputs:
            if ref.target_kind == "output" and ref.loc in inv.outputs:
                src = loc_id("output", ref.loc)
            else:
                src = loc_id("data", ref.loc)
                lg.add_node(
                    src, "data", ref.loc.path.rstrip("/").rsplit("/", 1)[-1], path=str(ref.loc)
                )
            lg.add_edge(src, run_id(run.run_id), "consumed", port=ref.port)


def _add_specs(lg: LineageGraph, inv: Inventory) -> None:
    for comp in inv.components.values():
        nid = f"component:{comp.spec_id}"
        lg.add_node(
            nid,
            "component",
            comp.name or comp.spec_id,
            spec_type=comp.type,
            version=comp.version,
            path=comp.path,
        )
        _uses_env(lg, inv, nid, comp.environment)
    for spec in inv.pipelines.values():
        pid = f"pipeline:{spec.spec_id}"
        lg.add_node(pid, "pipeline", spec.name or spec.spec_id.rsplit("/", 1)[-1], path=spec.path)
    for comp in inv.components.values():
        _add_jobs(lg, inv, f"component:{comp.spec_id}", comp.spec_id, comp.jobs)
    for spec in inv.pipelines.values():
        _add_jobs(lg, inv, f"pipeline:{spec.spec_id}", spec.spec_id, spec.jobs)


def _add_jobs(
    lg: LineageGraph, inv: Inventory, parent: str, spec_id: str, jobs: dict[str, JobSpec]
) -> None:
    """A pipeline's (or pipeline component's) jobs: ``parent_of``, ``binds``, and
    ``uses_component`` to the file each job's ``component:`` names (walk/linker.py)."""
    for job in jobs.values():
        jid = f"component:{spec_id}#{job.name}"
        lg.add_node(
            jid,
            "component",
            job.name,
            component=job.component,
            job_type=job.type,
            definition=job.definition,
        )
        lg.add_edge(parent, jid, "parent_of")
        _uses_env(lg, inv, jid, job.environment)
        if job.definition in inv.components:
            lg.add_edge(jid, f"component:{job.definition}", "uses_component")
        elif job.definition in inv.pipelines:
            lg.add_edge(jid, f"pipeline:{job.definition}", "uses_component")
    for job in jobs.values():
        for input_name, source_job, output in job.bindings:
            if source_job in jobs:
                lg.add_edge(
                    f"component:{spec_id}#{source_job}",
                    f"component:{spec_id}#{job.name}",
                    "binds",
                    port=output,
                    input=input_name,
                )


def _uses_env(lg: LineageGraph, inv: Inventory, node: str, ref: str | None) -> None:
    env = environment_id(inv, ref)
    if env is not None:
        lg.add_edge(node, f"environment:{env}", "uses_environment")
