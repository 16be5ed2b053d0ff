"""v2 pipelines kept as YAML (in a code upload or under ``--specs``): the pipeline file, the
component files and environments it references, and the folder they live in (code snapshot).
"""

from __future__ import annotations

import posixpath

from amlport.exporters.base import ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name
from amlport.model.manifest import AssetEntry


class PipelineExporter:
    name = "pipeline"
    kinds = ("pipeline",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        return item.kind == "pipeline" and item.node.startswith("pipeline:")

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        spec = ctx.inventory.pipelines[item.node.removeprefix("pipeline:")]
        container, _, blob = spec.path.partition("/")
        folder = _project_folder(blob)
        files = ctx.files.add_folder(container, folder) if folder else []
        files.append(ctx.files.add_blob(container, blob))
        jobs = {
            name: {
                "component": job.component,
                "definition": job.definition,
                "environment": job.environment,
                "bindings": [list(b) for b in job.bindings],
            }
            for name, job in sorted(spec.jobs.items())
        }
        return AssetEntry(
            kind="pipeline",
            name=asset_name(spec.name or posixpath.basename(folder) or "pipeline"),
            id=item.node,
            files=sorted(set(files)),
            v2_yaml=ctx.files.bundle_path(container, blob),
            portable=True,
            requires=ctx.requires(item.node),
            attrs={"spec_type": "v2_pipeline_job", "jobs": jobs},
        )


def _project_folder(blob: str) -> str:
    """The code snapshot a pipeline file belongs to: ``LocalUpload/<hash>`` (or its folder)."""
    parts = blob.split("/")
    if parts[0] in ("LocalUpload", "az-ml-artifacts", "UI") and len(parts) > 2:
        return "/".join(parts[:2])
    return posixpath.dirname(blob)
