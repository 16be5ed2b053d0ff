"""The lineage graph over an inventory, its queries and its serialisations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlport.lineage.graph import EDGE_KINDS, NODE_KINDS, LineageGraph, build_graph

__all__ = ["EDGE_KINDS", "NODE_KINDS", "LineageGraph", "build_graph"]


def __getattr__(name: str) -> Any:
    """The graph (networkx, the walk's parsers) is imported on first use: ``formats`` is
    read at every CLI start for its names."""
    if name in __all__:
        from amlport.lineage import graph

        return getattr(graph, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
