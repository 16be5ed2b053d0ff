"""The installed command: exit codes, one-line errors, JSON output, lineage selection."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"


def test_scan_designer_prints_summary_and_exits_0() -> None:
    res = amlport("scan", str(WS / "designer-autoprice"))
    assert res.returncode == 0, res.stderr
    assert "a186e29d-388b-46bb-b111-726e328be005" in res.stdout
    assert "train_generic_model" in res.stdout and "ilearner" in res.stdout
    assert "No findings." in res.stdout


def test_scan_messy_exits_1_and_names_every_defect_without_traceback() -> None:
    res = amlport("scan", str(WS / "messy"))
    assert res.returncode == 1
    assert "Traceback" not in res.stdout + res.stderr
    for part in (
        "messy_a_pointer_target_missing",
        "messy_b_pointer_with_sas",
        "messy_c_secrets_in_logs",
        "messy-d-legacy-v1",
        "messy_e_empty_output_producer",
        "messy_g_latin1_log",
        "messy_h_pointer_invalid_json",
        "messy_i_mlmodel_invalid_yaml",
        "messy-dangling-binding",
    ):
        assert part in res.stdout, part
    assert "sig=" not in res.stdout and "AccountKey=" not in res.stdout


def test_scan_json_and_output_file(tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    res = amlport("scan", str(WS / "v2-lendingclub"), "--json", "-o", str(out))
    assert res.returncode == 0, res.stderr
    printed = json.loads(res.stdout)
    assert printed == json.loads(out.read_text(encoding="utf-8"))
    assert printed["schema"] == "amlport.scan/1"
    assert printed["inventory"]["counts"]["pipelines"] == 1


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("scan", "/nonexistent/workspace"), "does not exist"),
        (("lineage", str(WS / "messy"), "--format", "png"), "unknown --format"),
        (("lineage", str(WS / "messy"), "--node", "no-such-node"), "no lineage node"),
        (("lineage", str(WS / "messy"), "--upstream", "--downstream"), "exclude each other"),
    ],
)
def test_bad_input_is_one_line_exit_2(args: tuple[str, ...], needle: str) -> None:
    res = amlport(*args)
    assert res.returncode == 2
    assert needle in res.stderr
    assert "Traceback" not in res.stderr


def test_debug_shows_the_traceback() -> None:
    res = amlport("--debug", "scan", "/nonexistent/workspace")
    assert res.returncode == 2 and "Traceback" in res.stderr


def test_lineage_upstream_of_train_model_graphml(tmp_path: Path) -> None:
    out = tmp_path / "up.graphml"
    res = amlport(
        "lineage",
        str(WS / "designer-autoprice"),
        "--node",
        TRAIN,
        "--upstream",
        "--format",
        "graphml",
        "-o",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    g = nx.read_graphml(out)
    runs = {d["run_id"] for _, d in g.nodes(data=True) if d["kind"] == "step_run"}
    # Train Model derives from Select Columns → Clean → Split and from Linear Regression.
    assert TRAIN in runs and len(runs) == 5
    assert not any(d.get("label") == "score_generic_module" for _, d in g.nodes(data=True))


def test_lineage_downstream_reaches_score_and_evaluate() -> None:
    res = amlport("lineage", str(WS / "designer-autoprice"), "--node", TRAIN, "--downstream")
    labels = {n["label"] for n in json.loads(res.stdout)["nodes"]}
    assert {"score_generic_module", "evaluate_generic_module", "Trained_model"} <= labels
    assert "split_data" not in labels


def test_help_explains_commands() -> None:
    res = amlport("--help")
    assert res.returncode == 0
    assert "scan" in res.stdout and "lineage" in res.stdout and "Exit codes" in res.stdout
