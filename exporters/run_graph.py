"""Pipeline runs (designer or v2) as a portable description: steps, modules, parameters,
ports and the edges between them, reconstructed from logs and output folders.

The description (``pipelines/<run>.yml``) is what a designer pipeline can be rebuilt from in
another workspace; the step runs' records and the model outputs travel as their own assets.
"""

from __future__ import annotations

from typing import Any

from amlport.exporters import plain_yaml
from amlport.exporters.base import AssetUnsupported, ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name
from amlport.lineage.designer import describe_pipeline, outputs_by_owner, to_markdown
from amlport.model.inventory import Inventory, Output, Run
from amlport.model.manifest import AssetEntry

FORMAT = "amlport.pipeline-run/1"


class RunGraphExporter:
    name = "run_graph"
    kinds = ("pipeline",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        return item.kind == "pipeline" and item.node.startswith("run:")

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        run = ctx.inventory.runs.get(item.node.removeprefix("run:"))
        if run is None or not run.children:
            raise AssetUnsupported(f"{item.node} is not a pipeline run")
        inv = ctx.inventory
        # the maps over all outputs, built once per export (once per pipeline was quadratic)
        size = len(inv.outputs)
        producers = ctx.memo(("run_graph.producers", size), lambda: producers_of(inv))
        doc = describe(inv, run, producers)
        designer = any(s.get("module", "").startswith("azureml.studio") for s in doc["steps"])
        path = f"pipelines/{run.run_id}.yml"
        files = [path]
        extra: dict[str, Any] = {}
        if designer:  # the document a person rebuilds it from (docs/designer.md)
            outputs: dict[str, list[Output]] = ctx.memo(
                ("designer.outputs_by_owner", size), lambda: outputs_by_owner(inv)
            )
            doc["designer"] = describe_pipeline(inv, run, outputs)
            markdown = f"pipelines/{run.run_id}.md"
            ctx.files.add_generated(markdown, to_markdown(doc["designer"]).encode("utf-8"))
            files.append(markdown)
            extra["designer_document"] = markdown
        data = plain_yaml.dump(doc)  # dump_yaml's bytes, mostly without its representer
        ctx.files.add_generated(path, data)
        return AssetEntry(
            kind="pipeline",
            name=asset_name("pipeline-run", run.run_id),
            id=item.node,
            files=files,
            v2_yaml=None,
            portable=not designer,
            requires=sorted(f"run:{c}" for c in run.children if f"run:{c}" in ctx.selected),
            attrs={
                "spec_type": "designer_pipeline_run" if designer else "pipeline_run",
                "description": path,
                "steps": len(doc["steps"]),
                **extra,
            },
        )


def producers_of(inv: Inventory) -> dict[str, tuple[str | None, str]]:
    """Output location → (the run that made it, its port); the last output of a location
    wins."""
    return {str(o.loc): (o.run_id, o.port) for o in inv.outputs.values()}


def describe(
    inv: Inventory, run: Run, producers: dict[str, tuple[str | None, str]] | None = None
) -> dict[str, Any]:
    """``producers`` is ``producers_of(inv)`` (an export passes the one it built once)."""
    if producers is None:
        producers = producers_of(inv)
    steps = [_step(inv.runs[c], producers) for c in sorted(run.children) if c in inv.runs]
    edges = [
        {
            "from_step": inp["from_step"],
            "from_port": inp["from_port"],
            "to_step": step["run_id"],
            "to_port": inp["port"],
        }
        for step in steps
        for inp in step["inputs"]
        if inp.get("from_step")
    ]
    return {
        "format": FORMAT,
        "pipeline_run": run.run_id,
        "runtime": run.runtime,
        "steps": steps,
        "edges": edges,
    }


def _step(run: Run, producers: dict[str, tuple[str | None, str]]) -> dict[str, Any]:
    inputs = []
    for ref in run.inputs:
        producer = producers.get(str(ref.loc))
        entry: dict[str, Any] = {"port": ref.port, "location": str(ref.loc)}
        if producer:
            entry["from_step"], entry["from_port"] = producer
        inputs.append(entry)
    return {
        "run_id": run.run_id,
        "node_id": run.node_id,
        "module": run.module or "",
        "parameters": dict(sorted(run.parameters.items())),
        "runtime": run.runtime,
        "inputs": inputs,
    }
