"""``amlport lineage --impact NODE``: what a change to this data or model would affect, from the
command line (issue 20, item 4), and the nested pipeline graph as the command prints it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.cliutil import amlport

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"  # designer-autoprice: Train Model


def _nodes(stdout: str) -> list[dict[str, Any]]:
    doc = json.loads(stdout)
    graph = doc.get("lineage", doc) if isinstance(doc, dict) else doc
    if "nodes" not in graph:  # the --json contract's envelope, whatever it names its body
        graph = next(v for v in doc.values() if isinstance(v, dict) and "nodes" in v)
    return list(graph["nodes"])


def test_nested_impact_of_a_designer_run_is_what_derives_from_it() -> None:
    res = amlport("lineage", str(WS / "designer-autoprice"), "--impact", TRAIN)
    assert res.returncode == 0, res.stderr
    labels = {n["label"] for n in _nodes(res.stdout)}
    assert {"score_generic_module", "evaluate_generic_module", "Trained_model"} <= labels
    assert "split_data" not in labels  # upstream of the node: not affected by its change


def test_nested_impact_excludes_node_and_names_unknown_nodes() -> None:
    res = amlport("lineage", str(WS / "designer-autoprice"), "--impact", "no-such-node")
    assert res.returncode == 2 and "no lineage node" in res.stderr
    both = amlport("lineage", str(WS / "designer-autoprice"), "--impact", TRAIN, "--node", TRAIN)
    assert both.returncode == 2 and "--impact" in both.stderr


def test_nested_lineage_shows_pipeline_components_and_their_bindings() -> None:
    res = amlport("lineage", str(WS / "v2-nyctaxi-nested"), "--format", "mermaid")
    assert res.returncode == 0, res.stderr
    for label in ("data_pipeline", "train_pipeline", "prep_job", "score_job"):
        assert label in res.stdout, label
