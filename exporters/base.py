"""The exporter contract (Velero's item-action shape).

An ``Exporter`` turns one selected item (a model, environment, pipeline, component, run or
data asset) into an ``AssetEntry`` of the bundle manifest:

- ``accepts(item, ctx)`` says whether this exporter handles the item (format, kind);
- ``export(item, ctx)`` puts every byte through ``ctx.files`` (never anything else: no direct
  writes, no storage clients of its own), may add generated files (a v2 YAML), and returns the
  manifest entry. It MUST NOT write to the source; it reads only through ``ctx.files``.
- It raises ``AssetUnsupported`` to skip an item with a reason (reported as a warning).

Idempotency: exporting the same item twice adds the same files once (``ctx.files`` dedupes by
source blob and by content).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from amlport.errors import AmlportError
from amlport.lineage.graph import LineageGraph
from amlport.model.inventory import Inventory, Model
from amlport.model.manifest import AssetEntry
from amlport.model.workspace import WorkspaceDescriptor

T = TypeVar("T")

KINDS = ("model", "environment", "pipeline", "component", "run", "data")


class AssetUnsupported(AmlportError):
    """This exporter cannot export the item; the export goes on without it."""


@dataclass(frozen=True, order=True)
class ExportItem:
    kind: str  # one of KINDS
    node: str  # lineage node id, or a spec id for --specs files
    name: str


class FileSink(Protocol):
    """Where exporters put bytes. Paths returned are bundle paths (``files/<ds>/<path>``)."""

    def add_folder(self, container: str, prefix: str) -> list[str]: ...

    def add_blob(self, container: str, name: str) -> str: ...

    def add_generated(self, bundle_path: str, data: bytes) -> str: ...

    def bundle_path(self, container: str, name: str) -> str: ...


@dataclass
class ExportContext:
    inventory: Inventory
    graph: LineageGraph
    files: FileSink
    warn: Callable[[str], None]
    selected: set[str] = field(default_factory=set)  # node ids of every item in this export
    _names: dict[tuple[str, str], str] = field(default_factory=dict)  # (kind, name) -> node
    # maps over the whole inventory, built once per export (not once per item): see ``memo``
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False, compare=False)

    def claim(self, kind: str, name: str, node: str) -> str:
        """A name no other asset of this kind has in this bundle (sweep trials share run-id
        prefixes, environments share file names): the second comer gets a hash of its node."""
        owner = self._names.setdefault((kind, name), node)
        if owner == node:
            return name
        unique = f"{name}-{hashlib.sha256(node.encode()).hexdigest()[:8]}"
        self._names[(kind, unique)] = node
        return unique

    @property
    def source(self) -> WorkspaceDescriptor:
        return self.inventory.source

    def memo(self, key: Hashable, build: Callable[[], T]) -> T:
        """``build()`` once per export and ``key``: for a map over the whole inventory that
        every item of a kind looks things up in (a map per item made planning quadratic:
        docs/design/0007-repository-format-2.md). The key names the map and the size of what
        it is built from, so a map is built again if the inventory grew."""
        if key not in self._memo:
            self._memo[key] = build()
        return self._memo[key]

    def model(self, node: str) -> Model:
        models = self.inventory.models
        found = self.memo(("models", len(models)), lambda: _models_by_node(models)).get(node)
        if found is None:
            raise AssetUnsupported(f"{node} is not a model of this workspace")
        return found

    def requires(self, node: str) -> list[str]:
        """Selected assets this one needs: its environments and the runs that made it."""
        g = self.graph.g
        out = [v for _, v, k in g.out_edges(node, data="kind") if k == "uses_environment"]
        out += [
            u for u, _, k in g.in_edges(node, data="kind") if k in ("logged_model", "parent_of")
        ]
        return sorted(n for n in out if n in self.selected)

    def container_of(self, datastore: str) -> str:
        container = self.source.container_of(datastore)
        if container is None:
            raise AssetUnsupported(f"datastore {datastore!r} is not in this workspace's storage")
        return container


def _models_by_node(models: dict[Any, Model]) -> dict[str, Model]:
    """Node id (``model:<loc>``) → model; the first of any two with the same id, as the
    linear search this replaces returned."""
    index: dict[str, Model] = {}
    for loc, model in models.items():
        index.setdefault(f"model:{loc}", model)
    return index


class Exporter(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def kinds(self) -> tuple[str, ...]: ...

    def accepts(self, item: ExportItem, ctx: ExportContext) -> bool: ...

    def export(self, item: ExportItem, ctx: ExportContext) -> AssetEntry: ...
