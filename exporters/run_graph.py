"""Pipeline runs (designer or v2) as a portable description: steps, modules, parameters,
ports and the edges between them, reconstructed from logs and output folders.

The description (``pipelines/<run>.yml``) is what a designer pipeline can be rebuilt from in
another workspace; the step runs' records and the model outputs travel as their own assets.
"""

from __future__ import annotations

from typing import Any

from amlport.exporters.base import AssetUnsupported, ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name
from amlport.lineage.designer import describe_pipeline, to_markdown
from amlport.model.inventory import Inventory, Run
from amlport.model.manifest import AssetEntry
from amlport.safeload import dump_yaml

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
        doc = describe(ctx.inventory, run)
        designer = any(s.get("module", "").startswith("azureml.studio") for s in doc["steps"])
        path = f"pipelines/{run.run_id}.yml"
        files = [path]
        extra: dict[str, Any] = {}
        if designer:  # the document a person rebuilds it from (docs/designer.md)
            doc["designer"] = describe_pipeline(ctx.inventory, run)
            markdown = f"pipelines/{run.run_id}.md"
            ctx.files.add_generated(markdown, to_markdown(doc["designer"]).encode("utf-8"))
            files.append(markdown)
            extra["designer_document"] = markdown
        data = dump_yaml(doc)
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


def describe(inv: Inventory, run: Run) -> dict[str, Any]:
    producers = {str(o.loc): (o.run_id, o.port) for o in inv.outputs.values()}
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
