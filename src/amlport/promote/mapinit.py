"""``amlport map init SOURCE``: the map template for a live workspace, so a first promotion
needs no export first. The source is walked and planned as ``promote`` plans it (every kind,
no selection); the template is the one ``map init REPO`` writes (importing/mapinit.py)."""

from __future__ import annotations

from amlport.export.engine import plan_assets
from amlport.export.selection import DEFAULT_INCLUDE, select
from amlport.export.writer import BundleWriter
from amlport.importing.mapinit import template_of
from amlport.lineage import build_graph
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.base import Source
from amlport.walk import walk_with_listing


def source_template(source: Source) -> str:
    inv, listing = walk_with_listing(source)  # adopts the identity record the source keeps
    lg = build_graph(inv)
    chosen = select(inv, lg, [], DEFAULT_INCLUDE)
    rules = RewriteRules(direction="export", source=Identity.from_descriptor(inv.source))
    writer = BundleWriter(source, listing, rules)
    assets, _skipped = plan_assets(inv, lg, chosen, writer)
    with_files = {
        inv.source.datastore_of(b.container) or b.container for b in writer.blobs.values()
    }
    label = f"workspace {inv.source.account}/{inv.source.workspace or '-'} (a scan)"
    return template_of(inv.source.to_dict(), with_files, [(a.kind, a.name) for a in assets], label)
