"""MLflow model folders (``MLmodel`` + files): portable, registered as ``mlflow_model``."""

from __future__ import annotations

from amlport.exporters.base import AssetUnsupported, ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name, dump, relative, yaml_path
from amlport.model.manifest import AssetEntry


class MlflowModelExporter:
    name = "mlflow_model"
    kinds = ("model",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        model = ctx.graph.g.nodes.get(item.node, {})
        return item.kind == "model" and model.get("format") == "mlflow"

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        model = ctx.model(item.node)
        container = ctx.container_of(model.loc.datastore)
        files = ctx.files.add_folder(container, model.loc.path)
        if not files:
            raise AssetUnsupported(f"model folder {model.loc} holds no files")
        name = ctx.claim(
            "model", asset_name(model.loc.path.rsplit("/", 1)[-1], model.run_id or ""), item.node
        )
        folder = ctx.files.bundle_path(container, model.loc.path)
        spec = yaml_path("model", name)
        tags = {"amlport.source": str(model.loc), "amlport.format": "mlflow"}
        if model.run_id:
            tags["amlport.source_run"] = model.run_id
        body = {
            "name": name,
            "version": "1",
            "type": "mlflow_model",
            "path": relative(spec, folder),
            "description": f"MLflow model exported by amlport from {model.loc}",
            "tags": tags,
        }
        ctx.files.add_generated(spec, dump("model", body))
        return AssetEntry(
            kind="model",
            name=name,
            id=item.node,
            files=files,
            v2_yaml=spec,
            portable=True,
            requires=ctx.requires(item.node),
            attrs={
                "format": "mlflow",
                "flavors": model.flavors,
                "run_id": model.run_id,
                "folder": folder,
                # The MLmodel's signature as the walk summarised it (part -> "name: type").
                **({"signature": model.signature} if model.signature else {}),
            },
        )
