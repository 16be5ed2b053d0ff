"""Lineage serialisations: golden JSON and Mermaid, GraphML round trip, DOT, OpenLineage."""

from __future__ import annotations

import io
import json
import os
import uuid

import networkx as nx
import pytest
from helpers.walkfacts import REPO, scanned

from amlport.lineage.formats import FORMATS, render
from amlport.lineage.graph import EDGE_KINDS, NODE_KINDS

GOLDEN = REPO / "tests" / "golden"
UPDATE = os.environ.get("AMLPORT_UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden file {path}; run with AMLPORT_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize(("fmt", "ext"), [("json", "json"), ("mermaid", "mmd")])
def test_designer_autoprice_golden(fmt: str, ext: str) -> None:
    inv, lg = scanned("designer-autoprice")
    _golden(f"designer-autoprice.lineage.{ext}", render(lg, fmt, inv.source))


@pytest.mark.parametrize("name", ["designer-autoprice", "v2-lendingclub", "sdk-bikeshare", "messy"])
def test_graphml_loads_back_with_kind_everywhere(name: str) -> None:
    inv, lg = scanned(name)
    back = nx.read_graphml(io.BytesIO(render(lg, "graphml", inv.source).encode()))
    assert back.number_of_nodes() == lg.g.number_of_nodes()
    assert back.number_of_edges() == lg.g.number_of_edges()
    assert {d["kind"] for _, d in back.nodes(data=True)} <= set(NODE_KINDS)
    assert all("kind" in d for _, d in back.nodes(data=True))
    assert {d["kind"] for _, _, d in back.edges(data=True)} <= set(EDGE_KINDS)
    assert all("kind" in d for _, _, d in back.edges(data=True))


def test_json_is_node_link_and_reloads() -> None:
    inv, lg = scanned("v2-lendingclub")
    data = json.loads(render(lg, "json", inv.source))
    back = nx.node_link_graph(data, edges="links")
    assert set(back.nodes) == set(lg.g.nodes)


def test_dot_quotes_every_id() -> None:
    inv, lg = scanned("messy")
    text = render(lg, "dot", inv.source)
    assert text.startswith("digraph lineage {") and text.rstrip().endswith("}")
    edge_lines = [line for line in text.splitlines() if " -> " in line]
    assert len(edge_lines) == lg.g.number_of_edges()
    assert any("données brutes (v2).csv" in line for line in text.splitlines())


def test_openlineage_events_per_run_with_parent_facets() -> None:
    inv, lg = scanned("designer-autoprice")
    events = [json.loads(line) for line in render(lg, "openlineage", inv.source).splitlines()]
    assert len({e["run"]["runId"] for e in events}) == len(inv.runs)
    for ev in events:  # times and states: tests/unit/test_openlineage_events.py
        assert ev["eventType"] in ("START", "COMPLETE", "FAIL", "ABORT", "OTHER")
        assert ev["producer"] and ev["schemaURL"]
        uuid.UUID(ev["run"]["runId"])
    children = {e["run"]["runId"] for e in events if "parent" in e["run"].get("facets", {})}
    assert len(children) == 7
    train = next(e for e in events if e["job"]["name"].endswith("train_generic_model"))
    assert [o["name"].rsplit("/", 1)[-1] for o in train["outputs"]] == ["Trained_model"]
    assert all(o["namespace"].startswith("wasbs://azureml-blobstore-") for o in train["outputs"])


def test_every_format_renders_every_fixture() -> None:
    for name in ("designer-autoprice", "v2-lendingclub", "sdk-bikeshare", "messy"):
        inv, lg = scanned(name)
        for fmt in FORMATS:
            assert render(lg, fmt, inv.source).strip(), (name, fmt)


@pytest.mark.parametrize("name", ["designer-autoprice", "sdk-bikeshare", "v2-lendingclub"])
def test_node_link_of_some_nodes_equals_that_of_their_subgraph(name: str) -> None:
    """A backup's lineage is read through a view of the chosen nodes (no copy of the
    graph at 100k blobs); it is the node-link of the copied subgraph, and all nodes give
    the whole graph's."""
    _, lg = scanned(name)
    every = sorted(lg.g.nodes)
    some = every[: len(every) // 2]
    assert lg.to_node_link(some) == lg.subgraph(some).to_node_link()
    assert lg.to_node_link(some)["links"]  # the half has edges: the check says something
    assert lg.to_node_link(every) == lg.to_node_link()
