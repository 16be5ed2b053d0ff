"""``v2-nyctaxi-nested``: a pipeline job with two pipeline components, as ``az ml`` uploads it.

Export → import → rescan gives an isomorphic lineage graph with the nested jobs and
bindings; every uploaded component is exported with its code snapshot, emitted as YAML that
``azure.ai.ml.load_component`` accepts and registered innermost first; ``--include data``
reports the data payload bytes it left out truthfully (issue 20, items 1, 2 and 5).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import networkx as nx
import pytest
from networkx.algorithms.isomorphism import categorical_edge_match, categorical_node_match

from amlport.bundle import Repository
from amlport.export import ExportRequest, run_export
from amlport.export.selection import DEFAULT_INCLUDE, INCLUDE_KINDS
from amlport.importers.azureml_assets import load_index
from amlport.importing import ImportRequest, run_import
from amlport.importing.engine import load_mapping
from amlport.lineage import LineageGraph, build_graph
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target
from amlport.walk import walk

HERE = Path(__file__).resolve().parent
NAME = "v2-nyctaxi-nested"
WS = HERE.parents[1] / "fixtures" / "workspaces" / NAME
BLOBSTORE = next(p for p in WS.iterdir() if p.name.startswith("azureml-blobstore-"))
EVERYTHING = frozenset(INCLUDE_KINDS)


def _graph(root: Path) -> LineageGraph:
    return build_graph(walk(LocalSource(root)))


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("nested")
    repo, target, emit = tmp / "repo", tmp / "target", tmp / "emit"
    exported = run_export(LocalSource(WS), repo, ExportRequest(include=EVERYTHING))
    assert int(exported.exit_code) == 0, exported.to_dict()
    mapping = load_mapping(HERE / "maps" / "qa.yaml")
    with open_target(str(target), descriptor=mapping.target) as t:
        result = run_import(repo, t, ImportRequest(mapping=mapping, emit_assets=emit))
    assert int(result.exit_code) == 0, result.to_dict()
    return {"repo": repo, "target": target, "emit": emit, "export": exported}


def _kinds(lg: LineageGraph) -> nx.MultiDiGraph:
    g = nx.MultiDiGraph()
    g.add_nodes_from((n, {"kind": d["kind"]}) for n, d in lg.g.nodes(data=True))
    g.add_edges_from(
        (u, v, {"kind": d["kind"], "port": d.get("port"), "input": d.get("input")})
        for u, v, d in lg.g.edges(data=True)
    )
    return g


def test_nested_graph_of_the_fixture() -> None:
    lg = _graph(WS)
    assert len(lg.nodes_of("pipeline")) == 1  # the two pipeline components are not jobs
    pipeline_components = [
        n for n in lg.nodes_of("component") if lg.g.nodes[n].get("spec_type") == "pipeline"
    ]
    assert sorted(lg.g.nodes[n]["label"] for n in pipeline_components) == [
        "data_pipeline",
        "train_pipeline",
    ]
    assert len(lg.edges_of("binds")) == 7  # 2 outer, 1 in data_pipeline, 4 in train_pipeline
    assert len(lg.edges_of("uses_component")) == 8  # every job names a file of the workspace


def test_nested_export_import_rescan_is_isomorphic(moved: dict[str, Any]) -> None:
    source, target = _graph(WS), _graph(moved["target"])
    assert nx.is_isomorphic(
        _kinds(source),
        _kinds(target),
        node_match=categorical_node_match("kind", None),
        edge_match=categorical_edge_match(["kind", "port", "input"], [None] * 3),
    )
    assert len(target.edges_of("binds")) == len(source.edges_of("binds")) == 7
    # Node ids are datastore-relative: the same ids, not only the same shape.
    assert set(target.g.nodes) == set(source.g.nodes)


def test_nested_every_uploaded_spec_and_code_file_survives(moved: dict[str, Any]) -> None:
    data = next(p for p in BLOBSTORE.glob("LocalUpload/*/data") if p.is_dir())
    want = {
        p.relative_to(BLOBSTORE).as_posix()
        for p in BLOBSTORE.rglob("*")
        if p.is_file() and data not in p.parents
    }
    restored = next(p for p in moved["target"].iterdir() if p.name.startswith("azureml-blob"))
    have = {p.relative_to(restored).as_posix() for p in restored.rglob("*") if p.is_file()}
    assert want <= have, sorted(want - have)
    # The local input nothing read (no run records) is reported, not silently dropped.
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    assert moved["export"].data_skipped_bytes == size > 0


def test_component_emitted_yaml_loads_and_registers_innermost_first(
    moved: dict[str, Any],
) -> None:
    ml = pytest.importorskip("azure.ai.ml")
    entries = load_index(moved["emit"])
    loaded = {}
    for kind, file in entries:
        if kind == "component":
            loaded[file.parent.name] = ml.load_component(str(file))
        elif kind == "pipeline":
            loaded["<job>"] = ml.load_job(str(file))
    assert {"data_pipeline", "train_pipeline", "prep_taxi_data", "score_taxi_model"} <= set(loaded)
    order = [f.parent.name for k, f in entries if k in ("component", "pipeline")]
    for outer, inner in (
        ("data_pipeline", "prep_taxi_data"),
        ("data_pipeline", "taxi_feature_engineering"),
        ("train_pipeline", "score_taxi_model"),
    ):
        assert order.index(inner) < order.index(outer)
    assert [k for k, _ in entries][-1] == "pipeline"
    train = loaded["train_pipeline"]
    assert str(train.jobs["score_job"].component) == "score_taxi_model:3"
    assert str(loaded["<job>"].jobs["data_pipeline"].component) == "data_pipeline@latest"
    # The code snapshot travels with its component.
    assert (moved["emit"] / "components" / "prep_taxi_data" / "prep.py").is_file()


def test_component_select_exports_it_with_its_code_only(tmp_path: Path) -> None:
    result = run_export(
        LocalSource(WS),
        tmp_path / "repo",
        ExportRequest(select=["component:score_taxi_model"], dry_run=True),
    )
    assert [(a.kind, a.name) for a in result.assets] == [("component", "score_taxi_model")]
    files = sorted(p.rsplit("/", 1)[-1] for p in result.assets[0].files)
    assert files == ["score.py", "score.yml"]


def test_component_include_data_reports_left_out_bytes_truthfully(tmp_path: Path) -> None:
    data = next(p for p in BLOBSTORE.glob("LocalUpload/*/data") if p.is_dir())
    size = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
    default = run_export(
        LocalSource(WS), tmp_path / "a", ExportRequest(include=DEFAULT_INCLUDE, dry_run=True)
    )
    assert default.data_skipped_bytes == size  # the uploaded input; the code travels
    only_models = run_export(
        LocalSource(WS), tmp_path / "b", ExportRequest(include=frozenset({"models"}), dry_run=True)
    )
    every = sum(p.stat().st_size for p in BLOBSTORE.rglob("*") if p.is_file())
    assert only_models.data_skipped_bytes == every  # nothing exported: every upload left out
    with_data = run_export(
        LocalSource(WS), tmp_path / "c", ExportRequest(include=EVERYTHING, dry_run=True)
    )
    assert with_data.data_skipped_bytes == size  # no longer "0 bytes" while an upload is out


def test_component_bundle_lists_component_assets(moved: dict[str, Any]) -> None:
    repo = Repository.open(moved["repo"])
    manifest = repo.load_snapshot(repo.list_snapshots()[-1].id)
    comps = {a.name: a for a in manifest.assets if a.kind == "component"}
    assert len(comps) == 8
    assert comps["data_pipeline"].attrs["spec_type"] == "pipeline"
    assert (
        comps["data_pipeline"].attrs["depth"] == 1 and comps["prep_taxi_data"].attrs["depth"] == 0
    )


def test_nested_pipeline_export_carries_the_components_it_names_recursively(
    tmp_path: Path,
) -> None:
    result = run_export(
        LocalSource(WS),
        tmp_path / "repo",
        ExportRequest(include=frozenset({"pipelines"}), dry_run=True),
    )
    names = sorted(a.name for a in result.assets if a.kind == "component")
    # score_taxi_model: named by train_pipeline as azureml:score_taxi_model@latest.
    assert names == [
        "compare_taxi_models",
        "data_pipeline",
        "predict_taxi_fares",
        "prep_taxi_data",
        "score_taxi_model",
        "taxi_feature_engineering",
        "train_linear_regression_model",
        "train_pipeline",
    ]
