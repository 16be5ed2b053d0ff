"""v2 YAML from the real public corpus: every file parses; pipelines become graph nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlport.lineage import build_graph
from amlport.model import findings as F
from amlport.model.pinning import image_pinned, is_unpinned_ref
from amlport.storage.local import LocalSource
from amlport.walk import walk
from amlport.walk.specs import parse_conda, spec_kind

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO / "fixtures" / "corpus" / "azureml-examples"
BASICS = "specs/cli/jobs/pipelines-with-components/basics"


@pytest.fixture(scope="module")
def empty_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ws")
    (root / "azureml-blobstore-00000000-0000-0000-0000-000000000000").mkdir()
    (root / "azureml").mkdir()
    return root


@pytest.fixture(scope="module")
def corpus_graph(empty_ws: Path):  # type: ignore[no-untyped-def]
    if not CORPUS.is_dir():
        pytest.fail(f"the shared corpus is missing at {CORPUS}")
    inv = walk(LocalSource(empty_ws), specs=CORPUS)
    return inv, build_graph(inv)


def test_every_corpus_file_is_recognised(corpus_graph) -> None:  # type: ignore[no-untyped-def]
    inv, _ = corpus_graph
    yaml_files = [p for p in CORPUS.rglob("*") if p.suffix in (".yml", ".yaml")]
    recognised = (
        len(inv.pipelines)
        + len(inv.components)
        + len(inv.assets)
        + sum(1 for e in inv.environments.values() if e.path)
    )
    assert inv.unknown == {}
    assert inv.findings == []
    assert recognised == len(yaml_files)
    assert len(inv.models) == len(list(CORPUS.rglob("MLmodel")))


def test_pipeline_jobs_and_bindings(corpus_graph) -> None:  # type: ignore[no-untyped-def]
    _, lg = corpus_graph
    pipe = f"pipeline:{BASICS}/3b_pipeline_with_data/pipeline.yml"
    jobs = {v for _, v, k in lg.g.out_edges(pipe, data="kind") if k == "parent_of"}
    assert jobs == {
        f"component:{BASICS}/3b_pipeline_with_data/pipeline.yml#component_{x}" for x in "abc"
    }
    binds = [
        (u.rsplit("#", 1)[1], v.rsplit("#", 1)[1], d["port"])
        for u, v, d in lg.edges_of("binds")
        if "3b_pipeline_with_data" in u
    ]
    assert binds == [
        ("component_a", "component_b", "component_a_output"),
        ("component_b", "component_c", "component_b_output"),
    ]


def test_job_resolves_its_component_file_and_environment(corpus_graph) -> None:  # type: ignore[no-untyped-def]
    _, lg = corpus_graph
    job = f"component:{BASICS}/3b_pipeline_with_data/pipeline.yml#component_a"
    assert lg.g.nodes[job]["definition"] == f"{BASICS}/3b_pipeline_with_data/componentA.yml"
    envs = [v for _, v, k in lg.g.out_edges(job, data="kind") if k == "uses_environment"]
    assert len(envs) == 1


def test_dangling_binding_is_reported_not_crashed(empty_ws: Path) -> None:
    inv = walk(LocalSource(empty_ws), specs=REPO / "fixtures" / "specs" / "dangling-binding")
    [finding] = [f for f in inv.findings if f.code == F.DANGLING_BINDING]
    assert finding.path == "specs/pipeline.yml"
    assert "componentA" in finding.message and "component_b" in finding.message
    lg = build_graph(inv)
    assert [d["port"] for _, _, d in lg.edges_of("binds")] == ["component_b_output"]


@pytest.mark.parametrize(
    ("doc", "kind"),
    [
        (
            {"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json"},
            "pipeline",
        ),
        ({"type": "pipeline", "jobs": {}}, "pipeline"),
        (
            {"$schema": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json"},
            "component",
        ),
        ({"name": "x", "command": "python a.py", "inputs": {}}, "component"),
        ({"$schema": "http://azureml/sdk-2-0/Schedule.json"}, "schedule"),
        ({"name": "env", "image": "python:3.11"}, "environment"),
        ({"name": "c", "channels": ["conda-forge"], "dependencies": ["python=3.11"]}, "conda"),
        ({"hello": "world"}, None),
        (["not", "a", "mapping"], None),
    ],
)
def test_spec_kind(doc: object, kind: str | None) -> None:
    assert spec_kind(doc) == kind


def test_pinning_rules() -> None:
    assert is_unpinned_ref("azureml:lendingclub-env@latest")
    assert is_unpinned_ref("azureml://registries/azureml/environments/sklearn-1.0/labels/latest")
    assert not is_unpinned_ref("azureml:lendingclub-env:3")
    assert image_pinned("mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:20230101.v1")
    assert image_pinned("python@sha256:" + "a" * 64)
    assert not image_pinned("pytorch/pytorch:latest")
    assert not image_pinned("python")
    env = parse_conda(
        {"dependencies": ["python=3.8", "pip", {"pip": ["mlflow", "pandas==2.0.3"]}]}, "e", "p"
    )
    assert env.unpinned == ["mlflow"]
    assert not env.pinned
