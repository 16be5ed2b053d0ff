"""Data payloads (only with ``--include data``): uploads and run outputs, with a v2 data asset."""

from __future__ import annotations

from amlport.exporters.base import AssetUnsupported, ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name, dump, relative, yaml_path
from amlport.model.inventory import Loc
from amlport.model.manifest import AssetEntry


class DataExporter:
    name = "data"
    kinds = ("data",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        return item.kind == "data"

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        kind, _, rest = item.node.partition(":")
        datastore, _, path = rest.partition("/")
        loc = Loc(datastore, path)
        if kind == "output" and not ctx.inventory.outputs.get(loc, None):
            raise AssetUnsupported(f"{item.node} is not an output of this workspace")
        container = ctx.container_of(datastore)
        files = ctx.files.add_folder(container, path)
        if not files:
            raise AssetUnsupported(f"{loc} holds no blobs")
        single = len(files) == 1 and files[0] == ctx.files.bundle_path(container, path)
        name = ctx.claim(
            "data",
            asset_name(path.rsplit("/", 1)[-1], path.split("/")[1] if "/" in path else ""),
            item.node,
        )
        spec = yaml_path("data", name)
        body = {
            "name": name,
            "version": "1",
            "type": "uri_file" if single else "uri_folder",
            "path": relative(spec, ctx.files.bundle_path(container, path)),
            "description": f"Data exported by amlport from {loc}",
        }
        ctx.files.add_generated(spec, dump("data", body))
        return AssetEntry(
            kind="data",
            name=name,
            id=item.node,
            files=files,
            v2_yaml=spec,
            portable=True,
            requires=[],
            attrs={"location": str(loc)},
        )
