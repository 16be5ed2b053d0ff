"""Facts about the fixture workspaces that the walker and lineage graph must get right.

Ids come from the deterministic generator (fixtures/generate.py); the expectations are the
reference's facts (storage layout §2 to §3, §7), not the walker's output copied back.
"""

from __future__ import annotations

import pytest
from helpers.walkfacts import scanned

from amlport.lineage.graph import loc_id, run_id
from amlport.model import findings as F
from amlport.model.inventory import Loc

PARENT = "a186e29d-388b-46bb-b111-726e328be005"
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
SCORE = "71bb6577-f2c4-4651-8da0-c4e84d6d5df0"
SELECT = "9685b608-758d-4fa0-9c7b-d1120ca5f596"
DESIGNER_STEPS = {
    "09deaf1f-e093-4b54-9e6e-4207b4b2e500",
    "358b9613-5fe9-461a-8cee-f43f2d802079",
    "3f1d0303-1269-415e-8444-925241881589",
    SCORE,
    SELECT,
    TRAIN,
    "d3cfccaf-c844-452a-b732-2dcb56ec623a",
}
TRAINED = Loc("workspaceblobstore", f"azureml/{TRAIN}/Trained_model")


def test_designer_parent_has_exactly_seven_children() -> None:
    inv, lg = scanned("designer-autoprice")
    parent = inv.runs[PARENT]
    assert parent.kind == "pipeline_run"
    assert set(parent.children) == DESIGNER_STEPS
    assert all(inv.runs[c].kind == "step_run" and inv.runs[c].node_id for c in DESIGNER_STEPS)
    kids = {v for _, v, k in lg.g.out_edges(run_id(PARENT), data="kind") if k == "parent_of"}
    assert kids == {run_id(s) for s in DESIGNER_STEPS}


def test_designer_runtimes_include_classic_and_common() -> None:
    # A 2022 designer run is common-runtime throughout; the classic runtime is in the 2021 run
    # of designer-history (issue 20: the classic step in a 2022 run was an anachronism).
    inv, _ = scanned("designer-autoprice")
    assert inv.runs[SELECT].runtime == "common"
    assert inv.runs[TRAIN].runtime == "common"
    history, _ = scanned("designer-history")
    assert {r.runtime for r in history.runs.values()} >= {"classic", "common"}


def test_trained_model_pointer_resolves_to_the_ilearner_folder() -> None:
    inv, lg = scanned("designer-autoprice")
    [pointer] = [p for p in inv.pointers if p.port == "Trained_model"]
    assert pointer.path == f"azureml/ExperimentRun/dcid.{TRAIN}/Trained_model"
    assert pointer.target == TRAINED and not pointer.has_sas
    out = inv.outputs[TRAINED]
    assert out.format == "ILearner"
    assert {"data.ilearner", "data_type.json"} <= set(out.files)
    model = inv.models[TRAINED]
    assert (model.format, model.portable, model.pointer) == ("ilearner", False, pointer.path)
    assert model.deployment_files == f"azureml/ExperimentRun/dcid.{TRAIN}/trained_model_outputs"
    assert lg.g.has_edge(loc_id("model", TRAINED), loc_id("output", TRAINED))


def test_score_model_consumed_the_trained_model() -> None:
    _, lg = scanned("designer-autoprice")
    edges = lg.g.get_edge_data(loc_id("output", TRAINED), run_id(SCORE))
    assert [d["kind"] for d in edges.values()] == ["consumed"]
    assert run_id(TRAIN) in lg.upstream(run_id(SCORE))
    assert run_id(SCORE) in lg.impact(loc_id("model", TRAINED))


def test_dataset_node_has_no_run() -> None:
    inv, lg = scanned("designer-autoprice")
    data = lg.nodes_of("data")
    assert len(data) == 1 and "azureml_globaldatasets" in data[0]
    assert not any(k == "produced" for _, _, k in lg.g.in_edges(data[0], data="kind"))
    assert inv.findings == []


def test_every_mlmodel_run_id_links_to_its_run() -> None:
    for name in ("v2-lendingclub", "sdk-bikeshare", "designer-autoprice"):
        inv, lg = scanned(name)
        for model in inv.models.values():
            if model.format != "mlflow":
                continue
            assert model.run_id in inv.runs and inv.runs[model.run_id].exists, model.loc
            assert lg.g.has_edge(run_id(model.run_id), loc_id("model", model.loc))


def test_register_best_model_depends_on_all_three_sweeps() -> None:
    inv, lg = scanned("v2-lendingclub")
    sweeps = {r.run_id for r in inv.runs.values() if any(c.endswith("_0") for c in r.children)}
    assert len(sweeps) == 3
    [register] = [
        r
        for r in inv.runs.values()
        if len([i for i in r.inputs if i.loc.path.endswith("model_output")]) == 3
    ]
    upstream = lg.upstream(run_id(register.run_id))
    assert {run_id(s) for s in sweeps} <= upstream
    pipeline_jobs = next(iter(inv.pipelines.values())).jobs
    binds_into = {
        src
        for src, dst, _ in [
            (u.rsplit("#")[1], v.rsplit("#")[1], d) for u, v, d in lg.edges_of("binds")
        ]
        if dst == "register_best_model"
    }
    assert {"train_lr", "train_lightgbm", "train_tensorflow"} <= binds_into <= set(pipeline_jobs)


def test_v2_output_without_azureml_segment_is_an_output() -> None:
    inv, _ = scanned("v2-lendingclub")
    bare = [o for o in inv.outputs.values() if not o.loc.path.startswith("azureml/")]
    assert bare and all(o.run_id in inv.runs for o in bare)


def test_bikeshare_jobs_consumed_the_uploaded_csv() -> None:
    inv, lg = scanned("sdk-bikeshare")
    [csv] = [n for n in lg.nodes_of("data") if n.endswith("daily-bike-share.csv")]
    consumers = {v for _, v, k in lg.g.out_edges(csv, data="kind") if k == "consumed"}
    assert len(consumers) == 6
    assert any(u.kind == "LocalUpload" for u in inv.uploads.values())


MESSY_EXPECTED = {
    F.DANGLING_POINTER: "dcid.messy_a_pointer_target_missing/Trained_model",
    F.SAS_IN_POINTER: "dcid.messy_b_pointer_with_sas/Trained_model",
    F.SECRET_IN_FILE: "dcid.messy_c_secrets_in_logs/",
    F.LEGACY_WORKDIR: "azureml/messy-d-legacy-v1_",
    F.MISSING_OUTPUT: "azureml/messy_e_empty_output_producer/champion_model",
    F.NON_UTF8_TEXT: "dcid.messy_g_latin1_log/",
    F.DANGLING_BINDING: "messy-dangling-binding/pipeline.yml",
}


@pytest.mark.parametrize(("code", "path_part"), sorted(MESSY_EXPECTED.items()))
def test_each_messy_defect_is_reported_with_its_path(code: str, path_part: str) -> None:
    inv, _ = scanned("messy")
    assert [f for f in inv.findings if f.code == code and path_part in f.path], code


@pytest.mark.parametrize(
    "path_part", ["dcid.messy_h_pointer_invalid_json/Trained_model", "messy_i_mlmodel_invalid_yaml"]
)
def test_messy_malformed_files_are_findings(path_part: str) -> None:
    inv, _ = scanned("messy")
    assert [f for f in inv.findings if f.code == F.MALFORMED_FILE and path_part in f.path]


def test_messy_unicode_names_are_inventoried() -> None:
    inv, lg = scanned("messy")
    assert any("données brutes (v2).csv" in n for n in lg.nodes_of("data"))
    assert any(o.port == "Cleaned data" for o in inv.outputs.values())


def test_messy_secret_values_never_reach_the_inventory() -> None:
    inv, lg = scanned("messy")
    text = repr(inv.to_dict()) + repr(lg.to_node_link())
    assert "AccountKey=" not in text and "sig=" not in text
