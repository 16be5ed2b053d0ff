"""Component files (command, pipeline and other v2 components) with their ``code:`` snapshot.

A component ``az ml`` uploaded sits in ``LocalUpload/<hash>/<folder>/``: with ``code: .`` that
folder is its code; ``code: ../src`` names another folder of the same snapshot. The exporter
carries the YAML and that folder (never more than the snapshot it sits in, never a container
root) and records, for a pipeline component, its jobs and the components they name (so the
import can re-register components in dependency order and re-point ``component:``).
"""

from __future__ import annotations

import posixpath

from amlport.exporters.base import ExportContext, ExportItem
from amlport.exporters.v2yaml import asset_name
from amlport.model.inventory import ComponentSpec, Inventory
from amlport.model.manifest import AssetEntry

MAX_DEPTH = 64  # nesting deeper than this is reported as this (a cycle, or a hostile file)


class ComponentExporter:
    name = "component"
    kinds = ("component",)

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool:
        return item.kind == "component" and _spec_id(item) in ctx.inventory.components

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry:
        comp = ctx.inventory.components[_spec_id(item)]
        container, _, blob = comp.path.partition("/")
        folder = code_folder(blob, comp.code)
        files = ctx.files.add_folder(container, folder) if folder else []
        files.append(ctx.files.add_blob(container, blob))
        jobs = {
            name: {
                "component": job.component,
                "definition": job.definition,
                "bindings": [list(b) for b in job.bindings],
            }
            for name, job in sorted(comp.jobs.items())
        }
        used = sorted(
            f"component:{j.definition}"
            for j in comp.jobs.values()
            if j.definition in ctx.inventory.components
        )
        stem = posixpath.splitext(posixpath.basename(blob))[0]
        return AssetEntry(
            kind="component",
            name=ctx.claim("component", asset_name(comp.name or stem), item.node),
            id=item.node,
            files=sorted(set(files)),
            v2_yaml=ctx.files.bundle_path(container, blob),
            portable=True,
            requires=sorted(set(ctx.requires(item.node)) | {u for u in used if u in ctx.selected}),
            attrs={
                "spec_type": comp.type,
                "version": comp.version,
                "code": ctx.files.bundle_path(container, folder) if folder else None,
                "jobs": jobs,
                "depth": depth(ctx.inventory, comp.spec_id),
            },
        )


def _spec_id(item: ExportItem) -> str:
    return item.node.removeprefix("component:")


def code_folder(blob: str, code: str | None) -> str | None:
    """The folder to carry with a component file: its ``code:`` resolved against the file's
    folder, kept inside the ``LocalUpload/<hash>/`` snapshot it sits in (a code folder
    outside it was not uploaded with it); None for no ``code:``, a URI, or a container root."""
    if not code or "://" in code or code.startswith(("azureml:", "/", "\\")):
        return None
    folder = posixpath.normpath(posixpath.join(posixpath.dirname(blob), code))
    if folder in (".", "") or folder.startswith("../") or folder == "..":
        return None
    parts = blob.split("/")
    if parts[0] in ("LocalUpload", "az-ml-artifacts") and len(parts) > 2:
        snapshot = "/".join(parts[:2])
        if not (folder + "/").startswith(snapshot + "/") or folder == snapshot:
            return None
    return folder


def depth(inv: Inventory, spec_id: str, seen: frozenset[str] = frozenset()) -> int:
    """0 for a component whose jobs name no component file; else 1 + the deepest it names:
    the order ``register.sh`` registers them in (a cycle counts as ``MAX_DEPTH``)."""
    comp: ComponentSpec | None = inv.components.get(spec_id)
    if comp is None or not comp.jobs:
        return 0
    if spec_id in seen or len(seen) >= MAX_DEPTH:
        return MAX_DEPTH
    inner = [
        depth(inv, j.definition, seen | {spec_id})
        for j in comp.jobs.values()
        if j.definition in inv.components and j.definition != spec_id
    ]
    return min(MAX_DEPTH, 1 + max(inner, default=0))
