"""``select`` walks the closure of all its roots at once (issue 18: one closure per root was
quadratic at 100k blobs); the nodes it selects are those of one closure per root."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from amlport.export import selection as S
from amlport.lineage import LineageGraph, build_graph
from amlport.model.inventory import Inventory
from amlport.storage.local import LocalSource
from amlport.walk import walk

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"


def _one_closure_per_root(inv: Inventory, lg: LineageGraph, include: frozenset[str]) -> set[str]:
    """The selection as it was computed before: a pipeline root expanded on its own, then
    one closure per root."""
    nodes: set[str] = set()
    for root in S._roots_from_include(inv, lg, include):
        expanded, todo = {root}, [root]
        if lg.g.nodes[root]["kind"] not in ("pipeline", "pipeline_run", "component"):
            todo = []
        while todo:
            n = todo.pop()
            for _, child, kind in lg.g.out_edges(n, data="kind"):
                if kind in ("parent_of", "logged_model") and child not in expanded:
                    expanded.add(child)
                    todo.append(child)
        nodes |= lg.closure(expanded)
    return nodes


@pytest.mark.parametrize("name", ["designer-history", "v2-nyctaxi-nested", "messy"])
def test_selection_is_the_union_of_the_roots_closures(name: str) -> None:
    inv = walk(LocalSource(WS / name))
    lg = build_graph(inv)
    kinds = list(S.INCLUDE_KINDS)
    for size in range(1, len(kinds) + 1):
        for combo in itertools.combinations(kinds, size):
            include = frozenset(combo)
            chosen = S.select(inv, lg, [], include)
            assert chosen.nodes == _one_closure_per_root(inv, lg, include), combo
