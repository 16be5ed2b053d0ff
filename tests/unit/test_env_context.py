"""Environments carry what they are built from and nothing else, and identical environments
are exported and emitted once.

The project is laid out as ``az ml job create`` uploads it: ``LocalUpload/<hash>/<folder>/``
with the environment YAML at the project root beside its conda file and the project's code and
data. Seven MLflow models of sdk-bikeshare carry identical ``conda.yaml`` files.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml

from amlport.bundle import Repository
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importers.azureml_assets import AzureMLAssetsImporter, load_index
from amlport.importers.base import ImportContext
from amlport.importing.engine import import_rules, load_mapping
from amlport.lineage import build_graph
from amlport.model.manifest import AssetEntry, Manifest
from amlport.storage.local import LocalSource
from amlport.walk import walk
from amlport.walk.environments import resolve

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
UPLOAD = "LocalUpload/5f0c1e9a2b7d4c6e8a1f3b5d7c9e0a24/taxi-project"
ENV_SCHEMA = "https://azuremlschemas.azureedge.net/latest/environment.schema.json"
CONDA = """name: taxi
channels:
  - conda-forge
dependencies:
  - python=3.10.13
  - pip=23.3.1
  - pip:
      - mlflow==2.9.2
      - scikit-learn==1.3.2
"""
TARGET = {
    "account": "stqatarget01",
    "endpoint": "core.windows.net",
    "subscription_id": "11111111-2222-3333-4444-555555555555",
    "resource_group": "rg-ml-qa",
    "workspace": "mlw-qa",
    "containers": {"blobstore": "azureml-blobstore-qa000001", "artifacts": "qa-artifacts"},
    "datastores": {"qablob": "azureml-blobstore-qa000001", "qaartifacts": "qa-artifacts"},
}


def _blobstore(root: Path) -> Path:
    (found,) = root.glob("azureml-blobstore-*")
    return found


def _project(tmp_path: Path) -> Path:
    """sdk-bikeshare plus an uploaded project whose environment YAML sits at its root."""
    root = tmp_path / "ws"
    shutil.copytree(WS / "sdk-bikeshare", root)
    project = _blobstore(root) / UPLOAD
    (project / "src").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "environment.yml").write_text(
        yaml.safe_dump(
            {
                "$schema": ENV_SCHEMA,
                "name": "taxi-env",
                "version": "2",
                "image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:20231106.v1",
                "conda_file": "conda.yaml",
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    (project / "conda.yaml").write_text(CONDA, encoding="utf-8")
    (project / "src" / "train.py").write_text("print('train')\n", encoding="utf-8")
    (project / "data" / "trips.csv").write_bytes(b"a,b\n1,2\n" * 40_000)  # 320 KB of data
    return root


def _export(root: Path, repo: Path) -> Manifest:
    run_export(LocalSource(root), repo, ExportRequest(include=frozenset(INCLUDE_KINDS)))
    store = Repository.open(repo)
    return store.load_snapshot(store.list_snapshots()[-1].id)


def _envs(manifest: Manifest) -> list[AssetEntry]:
    return [a for a in manifest.assets if a.kind == "environment"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Manifest]:
    tmp = tmp_path_factory.mktemp("env")
    root = _project(tmp)
    repo = tmp / "repo"
    return root, repo, _export(root, repo)


def test_the_walk_folds_the_conda_file_into_its_environment(tmp_path: Path) -> None:
    inv = walk(LocalSource(_project(tmp_path)))
    yml = next(e for e in inv.environments.values() if e.name == "taxi-env")
    conda = inv.environments[yml.env_id.rsplit("/", 1)[0] + "/conda.yaml"]
    assert conda.part_of == yml.env_id
    assert yml.needs == [conda.path]
    nodes = build_graph(inv).nodes_of("environment")
    assert f"environment:{yml.env_id}" in nodes and f"environment:{conda.env_id}" not in nodes


def test_an_environment_at_a_project_root_carries_only_its_files(
    exported: tuple[Path, Path, Manifest],
) -> None:
    _, _, manifest = exported
    (env,) = [a for a in _envs(manifest) if a.name == "taxi-env"]
    assert sorted(f.rsplit("/", 1)[-1] for f in env.files) == ["conda.yaml", "environment.yml"]
    size = sum(manifest.file(f).size for f in env.files)  # type: ignore[union-attr]
    assert size < 1000  # not the project's 320 KB of code and data
    # ...and its conda file is not an environment a second time
    assert not [a for a in _envs(manifest) if a.id.endswith(f"{UPLOAD}/conda.yaml")]


def test_identical_model_environments_are_one(exported: tuple[Path, Path, Manifest]) -> None:
    _, _, manifest = exported
    models = [a for a in manifest.assets if a.kind == "model"]
    assert len(models) == 7
    used = Counter(r for m in models for r in m.requires if r.startswith("environment:"))
    assert len(used) == 1 and sum(used.values()) == 7
    mlflow_envs = [a for a in _envs(manifest) if "ExperimentRun" in a.id]
    assert [a.id for a in mlflow_envs] == list(used)


def test_identical_environments_are_emitted_once(
    exported: tuple[Path, Path, Manifest], tmp_path: Path
) -> None:
    _, repo, _ = exported
    map_file = tmp_path / "qa.yaml"
    datastores = {"workspaceblobstore": "qablob", "workspaceartifactstore": "qaartifacts"}
    map_file.write_text(yaml.safe_dump({"target": TARGET, "datastores": datastores}))
    store = Repository.open(repo)
    manifest = store.load_snapshot(store.list_snapshots()[-1].id)
    mapping = load_mapping(map_file)
    ctx = ImportContext(
        store, manifest, mapping, import_rules(manifest, mapping), lambda _: None, "fail"
    )
    ctx.gate.open()
    importer = AzureMLAssetsImporter(tmp_path / "out")
    for action in importer.plan(ctx):
        importer.apply(action, ctx)
    envs = [f for kind, f in load_index(tmp_path / "out") if kind == "environment"]
    assert len(envs) == 2  # the project's environment and the one MLflow environment
    taxi = next(f for f in envs if "taxi-env" in f.as_posix())
    assert sorted(p.name for p in taxi.parent.rglob("*") if p.is_file()) == [
        "conda.yaml",
        "environment.yml",
    ]
    ml = pytest.importorskip("azure.ai.ml")
    for file in envs:
        ml.load_environment(file)  # the conda file it names is beside it


def test_a_conda_file_above_the_yaml_is_carried_and_resolves(tmp_path: Path) -> None:
    root = _project(tmp_path)
    project = _blobstore(root) / UPLOAD
    (project / "envs").mkdir()
    env = yaml.safe_load((project / "environment.yml").read_text())
    env["conda_file"] = "../conda.yaml"
    (project / "envs" / "environment.yml").write_text(yaml.safe_dump(env), encoding="utf-8")
    (project / "environment.yml").unlink()
    manifest = _export(root, tmp_path / "repo")
    (asset,) = [a for a in _envs(manifest) if a.name == "taxi-env"]
    assert sorted(f.split(UPLOAD + "/", 1)[1] for f in asset.files) == [
        "conda.yaml",
        "envs/environment.yml",
    ]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("conda.yaml", "c/p/conda.yaml"),
        ("../x.yml", "c/x.yml"),
        ("./ctx", "c/p/ctx"),
        ("../../../etc/passwd", None),  # out of the container
        ("..", None),  # the container itself
        ("/etc/passwd", None),
        ("azureml:conda-env:1", None),
        ("https://example.com/conda.yml", None),
        ("a\x1bb.yml", None),
        ("a\\b.yml", None),
        ("", None),
    ],
)
def test_references_resolve_inside_the_container_only(ref: str, expected: str | None) -> None:
    assert resolve("c/p", ref) == expected


def test_a_build_context_is_carried_as_its_folder(tmp_path: Path) -> None:
    root = _project(tmp_path)
    project = _blobstore(root) / UPLOAD
    (project / "docker").mkdir()
    (project / "docker" / "Dockerfile").write_text("FROM python:3.10.13-slim\n", encoding="utf-8")
    (project / "docker" / "requirements.txt").write_text("mlflow==2.9.2\n", encoding="utf-8")
    (project / "environment.yml").write_text(
        yaml.safe_dump({"$schema": ENV_SCHEMA, "name": "taxi-env", "build": {"path": "docker"}}),
        encoding="utf-8",
    )
    manifest = _export(root, tmp_path / "repo")
    (asset,) = [a for a in _envs(manifest) if a.name == "taxi-env"]
    assert sorted(f.split(UPLOAD + "/", 1)[1] for f in asset.files) == [
        "docker/Dockerfile",
        "docker/requirements.txt",
        "environment.yml",
    ]
    assert not [a for a in _envs(manifest) if a.id.endswith("docker/Dockerfile")]
