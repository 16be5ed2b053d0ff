"""Run records: everything under ``ExperimentRun/dcid.<run>/`` (logs redacted and rewritten,
small artifacts, pointers) and, for legacy v1 runs, the ``azureml/<run>/`` working directory.
"""

from __future__ import annotations

from amlport.exporters.base import AssetUnsupported, ExportContext, ExportItem
from amlport.model.manifest import AssetEntry


class RunRecordExporter:
    name = "run_records"
    kinds = ("run",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        return item.kind == "run"

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        run = ctx.inventory.runs.get(item.node.removeprefix("run:"))
        if run is None or not run.exists:
            raise AssetUnsupported(f"{item.node} has no run record in storage")
        src = ctx.source
        files = ctx.files.add_folder(src.artifact_container, f"ExperimentRun/dcid.{run.run_id}")
        if run.runtime == "legacy_workdir":
            files += ctx.files.add_folder(src.blobstore_container, f"azureml/{run.run_id}")
        return AssetEntry(
            kind="run",
            name=run.run_id,
            id=item.node,
            files=sorted(set(files)),
            v2_yaml=None,
            portable=True,
            requires=[f"run:{run.parent_id}"]
            if run.parent_id and f"run:{run.parent_id}" in ctx.selected
            else [],
            attrs={
                "run_kind": run.kind,
                "runtime": run.runtime,
                "module": run.module,
                "node_id": run.node_id,
                "parent_id": run.parent_id,
                "children": run.children,
                "parameters": run.parameters,
            },
        )
