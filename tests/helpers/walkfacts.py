"""Helpers shared by the walker/lineage suites: scan a fixture workspace once per session."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from amlport.lineage import LineageGraph, build_graph
from amlport.model.inventory import Inventory
from amlport.storage.local import LocalSource
from amlport.walk import walk

REPO = Path(__file__).resolve().parents[2]
WORKSPACES = REPO / "fixtures" / "workspaces"


@cache
def scanned(name: str) -> tuple[Inventory, LineageGraph]:
    inv = walk(LocalSource(WORKSPACES / name))
    return inv, build_graph(inv)
