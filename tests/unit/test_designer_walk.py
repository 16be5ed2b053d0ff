"""Designer realism (issue 20, item 0): the regenerated designer fixtures and the walker on
every real form of the designer evidence; edges either found or reported, never dropped.

Ids come from the deterministic generator (``fixtures/generate.py --print-ids``).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from fixturegen import designer_history as H
from fixturegen.designer import STEPS, PipelineIds
from helpers.walkfacts import WORKSPACES, scanned

from amlport.lineage import build_graph
from amlport.lineage.graph import loc_id, run_id
from amlport.model import findings as F
from amlport.model.inventory import Loc
from amlport.storage.local import LocalSource
from amlport.walk import walk
from amlport.walk.logs import read_log

PARENT = "a186e29d-388b-46bb-b111-726e328be005"
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
LINREG = "358b9613-5fe9-461a-8cee-f43f2d802079"
BLOB = "workspaceblobstore"
TABLE_FILES = {"data.dataset.parquet", "data.schema", "data.visualization", "data.metadata"}
IDS = PipelineIds.make("designer-autoprice", {"train_model": TRAIN})
# (consumer step, its input port, producer step or None for the dataset): the 8 edges.
EDGES = [(s.key, i.name, i.step) for s in STEPS for i in s.inputs]


def _consumed(lg, run: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {
        d.get("port")
        for _, _, d in lg.g.in_edges(run_id(run), data=True)
        if d["kind"] == "consumed"
    }


# --------------------------------------------------------------------------- the fixture


def test_designer_builtin_ports_have_the_module_host_shape() -> None:
    inv, _ = scanned("designer-autoprice")
    outs = [o for o in inv.outputs.values() if o.loc.path.startswith("azureml/")]
    assert len(outs) == 9
    for out in outs:
        assert "data_type.json" in out.files, out.loc  # on every port
        assert "data.metadata" in out.files, out.loc
        assert not any(f.startswith("_data.") for f in out.files), out.loc  # custom shape
        if out.format == "DataFrameDirectory":
            assert set(out.files) >= TABLE_FILES, out.loc
    untrained = inv.outputs[Loc(BLOB, f"azureml/{LINREG}/Untrained_model")]
    assert "data.ilearner" in untrained.files and "_data.pkl" not in untrained.files
    spec = WORKSPACES / "designer-autoprice" / inv.source.blobstore_container
    text = (spec / f"azureml/{TRAIN}/Trained_model/model_spec.yaml").read_text()
    assert text == "file_name: data.ilearner\nmodel_type: ILearnerDotNet\n"
    trained = WORKSPACES / "designer-autoprice" / "azureml" / f"ExperimentRun/dcid.{TRAIN}"
    assert {"score.py", "conda_env.yaml", "data.ilearner", "data.metadata"} <= {
        p.name for p in (trained / "trained_model_outputs").iterdir()
    }


def test_designer_runs_after_october_2021_are_common_runtime_only() -> None:
    inv, _ = scanned("designer-autoprice")
    steps = [inv.runs[c] for c in inv.runs[PARENT].children]
    assert {r.runtime for r in steps} == {"common"}
    assert all(r.started and r.started.startswith("2022-") for r in steps)
    hist, _ = scanned("designer-history")
    classic = {r.run_id for r in hist.runs.values() if r.runtime == "classic"}
    old = set(PipelineIds.make("designer-history/2021").runs.values())
    assert classic == old  # the classic runtime only in the 2021 run
    assert all(hist.runs[r].started.startswith("2021-") for r in classic)  # type: ignore[union-attr]


def test_designer_fixtures_use_the_real_global_dataset_account() -> None:
    for name in ("designer-autoprice", "designer-history"):
        for path in (WORKSPACES / name).rglob("*"):
            if path.is_file() and path.stat().st_size < 1_000_000:
                assert b"amlglobaldatasets" not in path.read_bytes(), path
    log = (
        WORKSPACES
        / "designer-history/azureml"
        / f"ExperimentRun/dcid.{PipelineIds.make('designer-history/2021').runs['select_columns']}"
    )
    text = next(log.glob("azureml-logs/55_*")).read_text()
    assert "Mounting globaldatasets container from mmstorageeastus account" in text


def test_designer_seven_module_graph_from_the_regenerated_fixture() -> None:
    inv, lg = scanned("designer-autoprice")
    assert len(lg.edges_of("parent_of")) == 7 and len(lg.edges_of("consumed")) == 8
    names = {inv.runs[c].module.rsplit(".", 1)[-1] for c in inv.runs[PARENT].children}  # type: ignore[union-attr]
    assert len(names) == 7 and all(
        inv.runs[c].module_evidence == "log" for c in inv.runs[PARENT].children
    )
    for consumer, port, producer in EDGES:
        assert port in _consumed(lg, IDS.runs[consumer]), (consumer, port, producer)
    assert inv.findings == []


def test_designer_untrained_learner_is_not_a_model() -> None:
    inv, lg = scanned("designer-autoprice")
    assert set(inv.models) == {Loc(BLOB, f"azureml/{TRAIN}/Trained_model")}
    assert loc_id("model", Loc(BLOB, f"azureml/{LINREG}/Untrained_model")) not in lg.g
    hist, _ = scanned("designer-history")
    assert not [m for m in hist.models.values() if m.loc.path.endswith("Untrained_model")]


# --------------------------------------------------------------------------- inferred lines


def _copy(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    shutil.copytree(WORKSPACES / "designer-autoprice", ws)
    return ws


def _rewrite(ws: Path, pattern: str, keep) -> None:  # type: ignore[no-untyped-def]
    for path in (ws / "azureml").rglob(pattern):
        text = path.read_text(encoding="utf-8")
        path.write_text("".join(x for x in text.splitlines(True) if keep(x)), encoding="utf-8")


def test_designer_edges_survive_without_the_mounting_uri_lines(tmp_path: Path) -> None:
    """Deleting the inferred ``Mounting URI … to …`` lines dropped step edges from 8 to 1."""
    ws = _copy(tmp_path)
    _rewrite(
        ws, "data-capability.log", lambda x: "Mounting URI" not in x and "Successfully" not in x
    )
    for wrapper in (ws / "azureml").rglob("execution-wrapper.log"):
        wrapper.unlink()
    inv = walk(LocalSource(ws))
    lg = build_graph(inv)
    assert len(lg.edges_of("consumed")) == 8
    for consumer, port, _ in EDGES:
        assert port in _consumed(lg, IDS.runs[consumer])
    # the module names: from the output ports for five steps, reported for the other two
    kids = [inv.runs[c] for c in inv.runs[PARENT].children]
    assert sum(1 for r in kids if r.module_evidence == "ports") == 5
    unknown = {r.run_id for r in kids if r.module is None}
    assert unknown == {IDS.runs["select_columns"], IDS.runs["linear_regression"]}
    assert all("its module" in inv.runs[r].unestablished for r in unknown)


def test_designer_without_inferred_lines_every_edge_is_found_or_reported(tmp_path: Path) -> None:
    """Only the verified lines left: the data capability's ``create dir for`` lines, the
    ``std_log.txt`` header, the executionlogs. Every edge is in the graph or reported."""
    ws = _copy(tmp_path)
    _rewrite(ws, "data-capability.log", lambda x: " create dir for " in x)
    _rewrite(ws, "std_log.txt", lambda x: not re.search(r"studio\.modulehost", x))
    for name in ("execution-wrapper.log", "lifecycler.log"):
        for path in (ws / "azureml").rglob(name):
            path.unlink()
    inv = walk(LocalSource(ws))
    lg = build_graph(inv)
    assert len(lg.edges_of("parent_of")) == 7
    assert len(lg.edges_of("produced")) == 9
    reported = {f.path for f in inv.findings if f.code == F.LINEAGE_NOT_ESTABLISHED}
    for consumer, port, _ in EDGES:
        run = inv.runs[IDS.runs[consumer]]
        if port in _consumed(lg, run.run_id):
            continue
        assert f"input {port}" in run.unestablished, (consumer, port, run.unestablished)
        assert any(run.run_id in p for p in reported)
    lin = inv.runs[IDS.runs["linear_regression"]]
    assert lin.unestablished == ["its module", "its inputs"]  # nothing says it has none
    assert inv.runs[PARENT].unestablished == []


# --------------------------------------------------------------------------- designer-history


def test_designer_wave_children_beyond_five_are_recovered() -> None:
    inv, lg = scanned("designer-history")
    wave = PipelineIds.make("designer-history/wave", steps=H.wave_steps())
    parent = inv.runs[wave.parent]
    assert set(parent.children) == set(wave.runs.values()) and len(parent.children) == 24
    for key, rid in wave.runs.items():
        run = inv.runs[rid]
        assert run.kind == "step_run" and run.parent_id == wave.parent, key
        assert run.node_id == wave.nodes[key], key  # beyond five: from its own logs
    assert len([1 for u, _, _ in lg.edges_of("parent_of") if u == run_id(wave.parent)]) == 24


def test_designer_children_found_in_their_own_logs_alone(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WORKSPACES / "designer-history", ws)
    wave = PipelineIds.make("designer-history/wave", steps=H.wave_steps())
    log = ws / "azureml" / f"ExperimentRun/dcid.{wave.parent}/logs/azureml/executionlogs.txt"
    lines = log.read_text().splitlines(True)
    log.write_text("".join(x for x in lines if "Completing processing" not in x))
    inv = walk(LocalSource(ws))
    assert set(inv.runs[wave.parent].children) == set(wave.runs.values())


def test_designer_local_orchestrator_lists_runs_without_node_ids() -> None:
    inv, _ = scanned("designer-history")
    old = PipelineIds.make("designer-history/2021")
    parent = inv.runs[old.parent]
    assert parent.kind == "pipeline_run" and set(parent.children) == set(old.runs.values())
    assert all(inv.runs[r].kind == "step_run" for r in old.runs.values())
    assert all(inv.runs[r].runtime == "classic" for r in old.runs.values())
    assert inv.runs[old.runs["train_model"]].experiment == "automobile-price-prediction"
    # classic ports come from $AZUREML_DATAREFERENCE_<port>; paths from module host lines
    train = inv.runs[old.runs["train_model"]]
    assert {i.port for i in train.inputs} == {"Untrained_model", "Dataset"}
    assert train.unestablished == []


def test_designer_rerun_reuses_steps() -> None:
    inv, lg = scanned("designer-history")
    first = PipelineIds.make("designer-history/2022")
    rerun = PipelineIds.make("designer-history/rerun", steps=H.rerun_steps())
    for key in H.REUSED:
        run = inv.runs[rerun.runs[key]]
        assert run.reused and run.reused_from == first.runs[key], key
        assert run.module == inv.runs[first.runs[key]].module and run.module_evidence == "reused"
        assert run.unestablished == []
    split = rerun.runs["split_data"]
    cleaned = Loc(BLOB, f"azureml/{first.runs['clean_missing_data']}/Cleaned_dataset")
    assert lg.g.has_edge(loc_id("output", cleaned), run_id(split))
    assert inv.runs[split].parameters["fraction-of-rows-in-the-first-output-dataset"] == "0.8"


def test_designer_kubernetes_mount_root_names_the_ports() -> None:
    inv, _ = scanned("designer-history")
    first = PipelineIds.make("designer-history/2022")
    score = inv.runs[first.runs["score_model"]]
    assert {i.port for i in score.inputs} == {"Trained_model", "Dataset"}
    assert "Trained_model" in score.ports_in


def test_designer_output_on_a_second_datastore_is_recorded_and_reported() -> None:
    inv, lg = scanned("designer-history")
    wave = PipelineIds.make("designer-history/wave", steps=H.wave_steps())
    loc = Loc("designer_models", f"azureml/{wave.runs['train_boosted']}/Trained_model")
    model = inv.models[loc]
    assert not model.exists and model.run_id == wave.runs["train_boosted"]
    assert [
        f
        for f in inv.findings
        if f.code == F.OTHER_DATASTORE and wave.runs["train_boosted"] in f.path
    ]
    assert lg.g.has_edge(loc_id("output", loc), run_id(wave.runs["score_boosted"]))
    assert lg.g.has_edge(run_id(wave.runs["train_boosted"]), loc_id("output", loc))


def test_designer_pre_mlflow_automl_model() -> None:
    inv, lg = scanned("designer-history")
    [model] = [m for m in inv.models.values() if m.format == "pre_mlflow"]
    assert model.run_id == H.AUTOML_RUN and model.loc.path.endswith("outputs/model.pkl")
    assert model.environment and model.environment.endswith("conda_env_v_1_0_0.yml")
    assert lg.g.has_edge(run_id(H.AUTOML_RUN), loc_id("model", model.loc))


def test_designer_history_reports_only_the_second_datastore() -> None:
    inv, _ = scanned("designer-history")
    assert {f.code for f in inv.findings} == {F.OTHER_DATASTORE}


# --------------------------------------------------------------------------- the log parser


def test_designer_log_forms_are_read() -> None:
    text = "\n".join(
        [
            "[2022-10-05 18:00:02Z] Submitting 7 runs, first five are: run-a,run_b.1",
            "[2022-10-05 18:05:02Z] Completing processing run id run-c.",
            "urldecode_invoker.py python -m azureml.studio.modulehost.module_invoker "
            "--module-name=azureml.studio.modules.x.y --dataset $AZURE_ML_INPUT_Dataset "
            "--results-dataset $AZURE_ML_OUTPUT_Results_dataset --mode=%22A+B%22",
            'INFO Binding Dataset: {"from": "azuremldatareference://azureml_globaldatasets/'
            'GenericCSV/Automobile_price_data_(Raw)", "environment_names": ["Dataset"]}',
            'INFO {"to": "azuremldatastore://workspaceblobstore/azureml/r1/Untrained_model", '
            '"register_dataset": {"properties": {"azureml.pipelineRunId": "p-1", '
            '"azureml.pipelineRun.moduleNodeId": "0a1b2c3d"}}}',
            "INFO create dir for /tmp/azureml/cr/j/0123abcd/cap/data-capability/wd/INPUT_Other",
            "[2022-10-05 18:06:00Z] azureml.reusedrunid: run-0",
        ]
    )
    facts = read_log(text)
    assert facts.children == [(None, "run-a"), (None, "run_b.1"), (None, "run-c")]
    assert facts.module == "azureml.studio.modules.x.y"
    assert facts.parameters == {"mode": "%22A+B%22"}
    assert facts.ports_in == ["Dataset", "Other"] and facts.ports_out == ["Results_dataset"]
    assert (
        "azureml_globaldatasets",
        "GenericCSV/Automobile_price_data_(Raw)",
        "Dataset",
    ) in facts.locations
    assert ("workspaceblobstore", "azureml/r1/Untrained_model", None) in facts.locations
    assert (facts.parent, facts.node_id) == ("p-1", "0a1b2c3d")
    assert (facts.reused, facts.reused_from) == (True, "run-0")
    assert (facts.started, facts.ended) == ("2022-10-05T18:00:02Z", "2022-10-05T18:06:00Z")


@pytest.mark.parametrize(
    "line",
    [
        "azuremldatastore://" * 20_000,
        "--a=" * 50_000,
        "$AZURE_ML_INPUT_" * 20_000,
        "[" * 100_000 + "azuremldatastore://ds/x]" + "]" * 100_000,
        "Completing processing run id " + "a" * 1024 + "\x00\x1b[31m",
        "azuremldatastore://ds/" + "../" * 1000 + "x",
    ],
)
def test_designer_hostile_log_lines_parse(line: str) -> None:
    facts = read_log(line + "\n" + line)  # linear: these end; nothing raises
    assert all(isinstance(p, str) for _, p, _ in facts.locations)


def test_designer_graph_nodes_carry_reuse_and_gaps(tmp_path: Path) -> None:
    _, lg = scanned("designer-history")
    rerun = PipelineIds.make("designer-history/rerun", steps=H.rerun_steps())
    first = PipelineIds.make("designer-history/2022")
    node = lg.g.nodes[run_id(rerun.runs["select_columns"])]
    assert node["reused_from"] == first.runs["select_columns"]
    ws = _copy(tmp_path)
    for path in (ws / "azureml").rglob("data-capability.log"):
        path.unlink()
    lg2 = build_graph(walk(LocalSource(ws)))
    train = lg2.g.nodes[run_id(TRAIN)]
    assert train["unestablished"] == "input Dataset,input Untrained_model"
