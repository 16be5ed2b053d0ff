"""Designer models: the port folder (``data.ilearner`` + ``data_type.json``, or a ModelDirectory),
its ``Trained_model`` pointer and the run's ``trained_model_outputs/`` deployment files.

They load only with the designer runtime, so the v2 YAML registers them as ``custom_model``
and both the YAML and the manifest mark them non-portable.
"""

from __future__ import annotations

from amlport.exporters.base import AssetUnsupported, ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name, dump, relative, yaml_path
from amlport.model.manifest import AssetEntry

DESIGNER_FORMATS = ("ilearner", "model_directory")


class DesignerModelExporter:
    name = "designer_model"
    kinds = ("model",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        model = ctx.graph.g.nodes.get(item.node, {})
        return item.kind == "model" and model.get("format") in (*DESIGNER_FORMATS, "unknown")

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        model = ctx.model(item.node)
        if not model.exists:
            raise AssetUnsupported(
                f"model folder {model.loc} is missing (pointer {model.pointer}); nothing to export"
            )
        container = ctx.container_of(model.loc.datastore)
        files = ctx.files.add_folder(container, model.loc.path)
        if model.pointer:
            pointer_container, _, pointer_name = model.pointer.partition("/")
            files.append(ctx.files.add_blob(pointer_container, pointer_name))
        if model.deployment_files:
            dep_container, _, dep_prefix = model.deployment_files.partition("/")
            files += ctx.files.add_folder(dep_container, dep_prefix)
        port = model.loc.path.rsplit("/", 1)[-1]
        name = ctx.claim("model", asset_name(port, (model.run_id or "")[:8]), item.node)
        folder = ctx.files.bundle_path(container, model.loc.path)
        spec = yaml_path("model", name)
        body = {
            "name": name,
            "version": "1",
            "type": "custom_model",
            "path": relative(spec, folder),
            "description": (
                f"Designer {model.format} model exported by amlport from {model.loc}; "
                "needs the Azure ML designer runtime to load (not portable)"
            ),
            "tags": {
                "amlport.source": str(model.loc),
                "amlport.format": model.format,
                "amlport.portable": "false",
                **({"amlport.source_run": model.run_id} if model.run_id else {}),
            },
        }
        ctx.files.add_generated(spec, dump("model", body))
        return AssetEntry(
            kind="model",
            name=name,
            id=item.node,
            files=sorted(set(files)),
            v2_yaml=spec,
            portable=False,
            requires=ctx.requires(item.node),
            attrs={
                "format": model.format,
                "run_id": model.run_id,
                "folder": folder,
                "pointer": model.pointer,
                "deployment_files": model.deployment_files,
                "portability": model.portability,
            },
        )
