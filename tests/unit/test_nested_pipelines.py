"""Pipeline components are pipelines: their jobs, bindings and ``component:`` references are
lineage, recursively (issue 20, item 1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlport.lineage import build_graph
from amlport.lineage.graph import LineageGraph
from amlport.model import findings as F
from amlport.model.inventory import Inventory
from amlport.storage.local import LocalSource
from amlport.walk import walk
from amlport.walk.linker import component_ref
from amlport.walk.specs import spec_kind

S = "https://azuremlschemas.azureedge.net/latest"
REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "fixtures" / "corpus" / "azureml-examples"


def _ws(root: Path) -> Path:
    (root / "azureml-blobstore-00000000-0000-0000-0000-000000000000").mkdir(parents=True)
    (root / "azureml").mkdir()
    return root


def _scan(tmp_path: Path, files: dict[str, str]) -> tuple[Inventory, LineageGraph]:
    specs = tmp_path / "project"
    for name, text in files.items():
        path = specs / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    inv = walk(LocalSource(_ws(tmp_path / "ws")), specs=specs)
    return inv, build_graph(inv)


def _out(lg: LineageGraph, node: str, kind: str) -> set[str]:
    return {v for _, v, k in lg.g.out_edges(node, data="kind") if k == kind}


PIPELINE = f"""$schema: {S}/pipelineJob.schema.json
type: pipeline
display_name: nyc_taxi_data_regression
jobs:
  data_pipeline:
    type: pipeline
    component: ./data_pipeline/data_pipeline.yml
    inputs:
      raw_data: ${{{{parent.inputs.pipeline_raw_data}}}}
  train_pipeline:
    type: pipeline
    component: ./train_pipeline/train_pipeline.yml
    inputs:
      train_data: ${{{{parent.jobs.data_pipeline.outputs.train_data}}}}
"""
DATA_PIPELINE = f"""$schema: {S}/pipelineComponent.schema.json
type: pipeline
name: data_pipeline
jobs:
  prep_job:
    type: command
    component: ./prep_src/prep.yml
  transform_job:
    type: command
    component: ./transform_src/transform.yml
    inputs:
      clean_data: ${{{{parent.jobs.prep_job.outputs.prep_data}}}}
      other: ${{{{parent.jobs.missing_job.outputs.x}}}}
"""
TRAIN_PIPELINE = f"""$schema: {S}/pipeline_component.schema.json
type: pipeline
name: train_pipeline
jobs:
  train_job:
    type: command
    component: azureml:train_linear_regression_model:1
  predict_job:
    type: command
    component: azureml:predict_taxi_fares@latest
    inputs:
      model_input: ${{{{parent.jobs.train_job.outputs.model_output}}}}
  score_job:
    type: command
    component: azureml://registries/azureml/components/score_taxi/versions/2
  external_job:
    type: command
    component: azureml://registries/azureml/components/not_here/labels/latest
"""


def _component(name: str, version: str | None = "1", code: str = ".") -> str:
    head = f"$schema: {S}/commandComponent.schema.json\nname: {name}\n"
    if version is not None:
        head += f"version: {version}\n"
    body = f"type: command\ncode: {code}\ncommand: python x.py\n"
    return head + body + "outputs:\n  o:\n    type: uri_folder\n"


PROJECT = {
    "pipeline.yml": PIPELINE,
    "data_pipeline/data_pipeline.yml": DATA_PIPELINE,
    "data_pipeline/prep_src/prep.yml": _component("prep_taxi_data"),
    "data_pipeline/transform_src/transform.yml": _component("taxi_feature_engineering"),
    "train_pipeline/train_pipeline.yml": TRAIN_PIPELINE,
    "train_pipeline/train_src/train.yml": _component("train_linear_regression_model"),
    "train_pipeline/predict_src/predict.yml": _component("predict_taxi_fares", "1"),
    "train_pipeline/predict_src_v2/predict.yml": _component("predict_taxi_fares", "2"),
    "train_pipeline/score_src/score.yml": _component("score_taxi", "2"),
}
P = "specs"


@pytest.mark.parametrize(
    ("schema", "kind"),
    [
        ("pipelineComponent.schema.json", "pipeline_component"),
        ("pipeline_component.schema.json", "pipeline_component"),
        ("pipelineJob.schema.json", "pipeline"),
        ("commandComponent.schema.json", "component"),
        ("parallelComponent.schema.json", "component"),
        ("commandJob.schema.json", "command_job"),
        ("environment.schema.json", "environment"),
        ("data.schema.json", "data"),
    ],
)
def test_schema_is_matched_exactly_not_by_substring(schema: str, kind: str) -> None:
    doc = {"$schema": f"{S}/{schema}", "type": "pipeline", "jobs": {}}
    assert spec_kind(doc) == kind
    # The component SDK's spelling (…/jsonschema/CommandComponent.json) is the same name.
    if schema.endswith("Component.schema.json"):
        sdk = {"$schema": f"https://componentsdk.azureedge.net/jsonschema/{schema[:-12]}.json"}
        assert spec_kind(sdk) == kind


def test_a_schema_that_only_contains_a_kind_is_not_that_kind() -> None:
    doc = {"$schema": f"{S}/mypipelinecomponentish.schema.json", "name": "x", "image": "y"}
    assert spec_kind(doc) == "environment"  # by shape, not by the substring "component"


def test_corpus_pipeline_component_is_a_component_with_jobs(tmp_path: Path) -> None:
    folder = CORPUS / "cli" / "assets" / "component"
    inv = walk(LocalSource(_ws(tmp_path / "ws")), specs=folder)
    comp = inv.components[f"{P}/pipeline.yml"]
    assert comp.type == "pipeline" and set(comp.jobs) == {"hello_job", "world_job"}
    assert f"{P}/pipeline.yml" not in inv.pipelines
    lg = build_graph(inv)
    assert _out(lg, f"component:{P}/pipeline.yml", "parent_of") == {
        f"component:{P}/pipeline.yml#hello_job",
        f"component:{P}/pipeline.yml#world_job",
    }


def test_nested_jobs_bindings_and_component_edges(tmp_path: Path) -> None:
    inv, lg = _scan(tmp_path, PROJECT)
    assert set(inv.pipelines) == {f"{P}/pipeline.yml"}
    data, train = f"{P}/data_pipeline/data_pipeline.yml", f"{P}/train_pipeline/train_pipeline.yml"
    assert inv.components[data].type == inv.components[train].type == "pipeline"
    outer = f"pipeline:{P}/pipeline.yml"
    assert _out(
        lg, f"{outer.replace('pipeline:', 'component:')}#data_pipeline", "uses_component"
    ) == {f"component:{data}"}
    assert _out(lg, f"component:{data}", "parent_of") == {
        f"component:{data}#prep_job",
        f"component:{data}#transform_job",
    }
    binds = [(u, v, d["port"], d["input"]) for u, v, d in lg.edges_of("binds")]
    assert (
        f"component:{data}#prep_job",
        f"component:{data}#transform_job",
        "prep_data",
        "clean_data",
    ) in binds
    uses = {u.rsplit("#", 1)[1]: v for u, v, _ in lg.edges_of("uses_component")}
    assert uses["prep_job"] == f"component:{P}/data_pipeline/prep_src/prep.yml"
    assert uses["train_job"] == f"component:{P}/train_pipeline/train_src/train.yml"
    assert uses["predict_job"] == f"component:{P}/train_pipeline/predict_src_v2/predict.yml"
    assert uses["score_job"] == f"component:{P}/train_pipeline/score_src/score.yml"
    assert "external_job" not in uses  # a registry component not in this workspace
    assert uses["train_pipeline"] == f"component:{train}"
    dangling = [f for f in inv.findings if f.code == F.DANGLING_BINDING]
    assert len(dangling) == 1 and "missing_job" in dangling[0].message
    assert dangling[0].path.endswith("data_pipeline/data_pipeline.yml")
    # An export of the pipeline carries the component files it names, recursively.
    closure = lg.closure([f"{outer.replace('pipeline:', 'component:')}#data_pipeline"])
    assert f"component:{P}/data_pipeline/prep_src/prep.yml" in closure


def test_pipeline_without_schema_named_as_component_is_not_a_top_level_job(
    tmp_path: Path,
) -> None:
    inner = "type: pipeline\nname: inner\njobs:\n  a:\n    type: command\n    component: ./c.yml\n"
    alone = "type: pipeline\njobs:\n  a:\n    type: command\n    component: ./c.yml\n"
    outer = "type: pipeline\njobs:\n  nest:\n    type: pipeline\n    component: file:./inner.yml\n"
    inv, lg = _scan(
        tmp_path,
        {"outer.yml": outer, "inner.yml": inner, "alone.yml": alone, "c.yml": _component("c")},
    )
    assert set(inv.pipelines) == {f"{P}/outer.yml", f"{P}/alone.yml"}
    assert inv.components[f"{P}/inner.yml"].type == "pipeline"
    assert _out(lg, f"component:{P}/inner.yml#a", "uses_component") == {f"component:{P}/c.yml"}


def test_pipeline_job_schema_named_as_component_stays_a_job_but_is_linked(tmp_path: Path) -> None:
    outer = "type: pipeline\njobs:\n  nest:\n    type: pipeline\n    component: ./inner.yml\n"
    inner = f"$schema: {S}/pipelineJob.schema.json\ntype: pipeline\njobs: {{}}\n"
    inv, lg = _scan(tmp_path, {"outer.yml": outer, "inner.yml": inner})
    assert set(inv.pipelines) == {f"{P}/outer.yml", f"{P}/inner.yml"}
    assert _out(lg, f"component:{P}/outer.yml#nest", "uses_component") == {
        f"pipeline:{P}/inner.yml"
    }


def test_code_snapshot_resolution_when_the_relative_file_is_not_uploaded(tmp_path: Path) -> None:
    """``az ml`` uploads each ``code: .`` folder as LocalUpload/<hash>/<folder>/; the pipeline
    file names ``./prep_src/prep.yml`` relative to itself, which is not where it landed."""
    h1, h2, h3 = "a" * 32, "b" * 32, "c" * 32
    pipe = (
        "type: pipeline\njobs:\n  prep:\n    type: command\n    component: ./prep_src/prep.yml\n"
        "  twice:\n    type: command\n    component: ./twice_src/t.yml\n"
    )
    _, lg = _scan(
        tmp_path,
        {
            f"LocalUpload/{h1}/nyc/pipeline.yml": pipe,
            f"LocalUpload/{h2}/prep_src/prep.yml": _component("prep"),
            f"LocalUpload/{h2}/twice_src/t.yml": _component("t"),
            f"LocalUpload/{h3}/twice_src/t.yml": _component("t"),
        },
    )
    uses = {u.rsplit("#", 1)[1]: v for u, v, _ in lg.edges_of("uses_component")}
    assert uses == {"prep": f"component:{P}/LocalUpload/{h2}/prep_src/prep.yml"}  # twice: ambiguous


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("azureml:prep:3", ("prep", "3")),
        ("azureml:prep@latest", ("prep", None)),
        ("azureml:prep", ("prep", None)),
        ("azureml://registries/azureml/components/prep/versions/3", ("prep", "3")),
        ("azureml://registries/azureml/components/prep/labels/default", ("prep", None)),
        (
            "azureml:/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices"
            "/workspaces/w/components/prep/versions/3",
            ("prep", "3"),
        ),
        ("azureml://registries/azureml/environments/sklearn/versions/1", None),
        ("azureml:a:b:c", None),
    ],
)
def test_component_reference_forms(ref: str, expected: tuple[str, str | None] | None) -> None:
    assert component_ref(ref) == expected


def test_hostile_references_and_names(tmp_path: Path) -> None:
    long = "n" * 1024
    selfref = (
        "type: pipeline\nname: loop\njobs:\n  me:\n    type: pipeline\n    component: ./loop.yml\n"
    )
    a = "type: pipeline\njobs:\n  b:\n    type: pipeline\n    component: ./b.yml\n"
    b = "type: pipeline\njobs:\n  a:\n    type: pipeline\n    component: ./a.yml\n"
    climb = (
        "type: pipeline\njobs:\n  x:\n    type: command\n    component: ../../../../etc/x.yml\n"
        f"  '[y]':\n    type: command\n    component: 'azureml:{long}:1'\n"
        '  z:\n    type: command\n    component: "azureml:[z]\\x07@latest"\n'
    )
    _, lg = _scan(
        tmp_path,
        {
            "loop.yml": selfref,
            "a.yml": a,
            "b.yml": b,
            "climb.yml": climb,
            "long.yml": _component(long),
        },
    )
    assert lg.closure([f"pipeline:{P}/climb.yml"])  # no crash, terminates
    uses = {(u.rsplit("/", 1)[1], v) for u, v, _ in lg.edges_of("uses_component")}
    assert ("climb.yml#[y]", f"component:{P}/long.yml") in uses
    assert not any(u.startswith(("climb.yml#x", "climb.yml#z", "loop.yml")) for u, _ in uses)
    # a and b name each other: each is the other's component; a cycle the graph survives.
    assert ("a.yml#b", f"component:{P}/b.yml") in uses and (
        "b.yml#a",
        f"component:{P}/a.yml",
    ) in uses
    assert lg.closure([f"component:{P}/a.yml#b"]) >= {
        f"component:{P}/b.yml",
        f"component:{P}/a.yml#b",
    }
