"""The lineage graph over an inventory, its queries and its serialisations."""

from amlport.lineage.graph import EDGE_KINDS, NODE_KINDS, LineageGraph, build_graph

__all__ = ["EDGE_KINDS", "NODE_KINDS", "LineageGraph", "build_graph"]
