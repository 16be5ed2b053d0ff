"""``--register-mlflow``: MLflow models of a real export registered in a real ``mlflow server``.

Idempotency (a re-run registers nothing), provenance tags on run and version, the dev → qa →
prod chain (a snapshot of QA, whose import records hold the dev hop, registered for prod),
and that what was registered loads as an MLflow model again.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers.cliutil import amlport

from amlport.bundle import Repository
from amlport.export import ExportRequest, run_export
from amlport.importers.base import ImportAction, ImportContext
from amlport.importers.mlflow_registry import (
    DIGEST_TAG,
    MlflowRegistryError,
    MlflowRegistryImporter,
    folder_digest,
    folder_files,
)
from amlport.importing import ImportRequest, run_import
from amlport.importing.engine import import_rules, load_mapping
from amlport.model.manifest import FileEntry, Manifest
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target

REPO_ROOT = Path(__file__).resolve().parents[2]
WS = REPO_ROOT / "fixtures" / "workspaces"
DEV_ACCOUNT = "stbikesharesdk4417"
TAGS = (
    "amlport.source_account",
    "amlport.source_workspace",
    "amlport.source_run",
    "amlport.snapshot",
    DIGEST_TAG,
    "amlport.provenance",
)


def _target(account: str, workspace: str, guid: str) -> dict[str, Any]:
    blob = f"azureml-blobstore-{guid}"
    return {
        "account": account,
        "subscription_id": "11111111-2222-3333-4444-555555555555",
        "resource_group": f"rg-{workspace}",
        "workspace": workspace,
        "containers": {"blobstore": blob, "artifacts": "azureml"},
        "datastores": {"stageblob": blob, "stageartifacts": "azureml"},
    }


def _write_map(path: Path, target: dict[str, Any], renames: dict[str, str] | None = None) -> Path:
    doc = {
        "target": target,
        "datastores": {
            "workspaceblobstore": "stageblob",
            "workspaceartifactstore": "stageartifacts",
        },
        "assets": renames or {},
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _latest(repo: Path) -> tuple[Repository, Manifest]:
    store = Repository.open(repo)
    return store, store.load_snapshot(store.list_snapshots()[-1].id)


def _context(repo: Path, map_file: Path) -> ImportContext:
    store, manifest = _latest(repo)
    mapping = load_mapping(map_file)
    ctx = ImportContext(store, manifest, mapping, import_rules(manifest, mapping), print, "fail")
    ctx.gate.open()  # validated: these tests apply (the write guard is created closed)
    return ctx


def _mlflow_models(manifest: Manifest) -> list[Any]:
    return [a for a in manifest.assets if a.kind == "model" and a.attrs.get("format") == "mlflow"]


def _run(importer: MlflowRegistryImporter, ctx: ImportContext) -> list[ImportAction]:
    return [importer.apply(a, ctx) for a in importer.plan(ctx)]


@pytest.fixture(scope="module")
def dev_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("dev") / "repo"
    run_export(LocalSource(WS / "sdk-bikeshare"), repo, ExportRequest())
    return repo


@pytest.fixture
def client(mlflow_server: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlflow.tracking import MlflowClient

    # Anything that falls back to the default URIs must talk to the test server, never
    # create ./mlflow.db in the working directory.
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", mlflow_server)
    return MlflowClient(mlflow_server, registry_uri=mlflow_server)


def _versions(client: Any, name: str) -> list[Any]:
    return list(client.search_model_versions(f"name = '{name}'"))


@pytest.mark.mlflow
def test_every_mlflow_model_registered_once_with_provenance(
    dev_repo: Path, mlflow_server: str, client: Any, tmp_path: Path
) -> None:
    ctx = _context(dev_repo, _write_map(tmp_path / "qa.yaml", _target("stqa01", "mlw-qa", "q1")))
    models = _mlflow_models(ctx.manifest)
    assert len(models) == 7
    importer = MlflowRegistryImporter(mlflow_server)
    first = _run(importer, ctx)
    assert Counter(a.action for a in first) == {"create": len(models)}, [a.to_dict() for a in first]

    for asset in models:
        [mv] = _versions(client, asset.name)
        digest = folder_digest(
            folder_files(ctx.manifest, asset.attrs["folder"]), asset.attrs["folder"]
        )
        assert set(TAGS) <= set(mv.tags)
        assert mv.tags[DIGEST_TAG] == digest
        assert mv.tags["amlport.source_run"] == asset.attrs["run_id"]
        assert mv.tags["amlport.source_account"] == DEV_ACCOUNT
        assert mv.tags["amlport.source_workspace"] == "mlw-bikeshare-dev"
        assert mv.tags["amlport.snapshot"] == ctx.snapshot_id
        hops = json.loads(mv.tags["amlport.provenance"])
        assert [(h["account"], h["snapshot"]) for h in hops] == [(DEV_ACCOUNT, ctx.snapshot_id)]
        run = client.get_run(mv.run_id)
        assert {k: run.data.tags[k] for k in TAGS} == {k: mv.tags[k] for k in TAGS}
        assert run.info.status == "FINISHED"
        assert "MLmodel" in {
            f.path.rsplit("/", 1)[-1] for f in client.list_artifacts(mv.run_id, "model")
        }

    again = _run(importer, ctx)  # a fresh plan: everything is there
    assert Counter(a.action for a in again) == {"skip": len(models)}
    assert all(len(_versions(client, a.name)) == 1 for a in models)

    stale = MlflowRegistryImporter(mlflow_server).plan(ctx)
    stale[0].action = "create"  # a plan made before the first run finished (resumed import)
    outcome = MlflowRegistryImporter(mlflow_server).apply(stale[0], ctx)
    assert outcome.action == "skip" and len(_versions(client, models[0].name)) == 1


@pytest.mark.mlflow
def test_registered_model_loads_from_the_registry(
    dev_repo: Path, mlflow_server: str, client: Any, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.models import Model

    renames = {"model-frosty_rocket_9hd3c6vqla": "bikeshare-loadable"}
    map_file = _write_map(tmp_path / "m.yaml", _target("stqa02", "mlw-qa2", "q2"), renames)
    ctx = _context(dev_repo, map_file)
    _run(MlflowRegistryImporter(mlflow_server), ctx)
    [mv] = _versions(client, "bikeshare-loadable")
    uri = client.get_model_version_download_uri("bikeshare-loadable", mv.version)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=uri, dst_path=str(tmp_path / "dl"), tracking_uri=mlflow_server
    )
    model = Model.load(local)
    assert {"python_function", "sklearn"} <= set(model.flavors)
    assert model.run_id == "frosty_rocket_9hd3c6vqla"  # the MLmodel is the exported one
    [asset] = [a for a in _mlflow_models(ctx.manifest) if a.name in renames]
    exported = folder_files(ctx.manifest, asset.attrs["folder"])
    assert sorted(p.name for p in Path(local).iterdir()) == sorted(
        f.path.rsplit("/", 1)[-1] for f in exported
    )


@pytest.mark.mlflow
def test_dev_qa_prod_provenance_keeps_both_hops(
    dev_repo: Path, mlflow_server: str, client: Any, tmp_path: Path
) -> None:
    # dev -> qa: a real storage restore, whose import record the QA export reads back
    qa_map = load_mapping(_write_map(tmp_path / "qa.yaml", _target("stqa03", "mlw-qa3", "q3")))
    with open_target(str(tmp_path / "qa"), descriptor=qa_map.target) as target:
        assert int(run_import(dev_repo, target, ImportRequest(mapping=qa_map)).exit_code) == 0
    qa_repo = tmp_path / "qa-repo"
    run_export(LocalSource(tmp_path / "qa"), qa_repo, ExportRequest())
    _, qa_manifest = _latest(qa_repo)
    assert [h["account"] for h in qa_manifest.provenance] == [DEV_ACCOUNT]

    # qa -> prod registry, through the import engine (--register-mlflow)
    renames = {a.name: f"prod-{a.name}" for a in _mlflow_models(qa_manifest)}
    prod_map = load_mapping(
        _write_map(tmp_path / "prod.yaml", _target("stprod1", "mlw-prod", "p1"), renames)
    )
    request = ImportRequest(mapping=prod_map, register_mlflow=mlflow_server)
    with open_target(str(tmp_path / "prod"), descriptor=prod_map.target) as target:
        result = run_import(qa_repo, target, request)
    mlflow_actions = [a for a in result.actions if a.importer == "mlflow"]
    assert Counter(a.action for a in mlflow_actions) == {"create": 7}, result.to_dict()

    for new_name in renames.values():
        [mv] = _versions(client, new_name)
        hops = json.loads(mv.tags["amlport.provenance"])
        assert [h["account"] for h in hops] == [DEV_ACCOUNT, "stqa03"]
        assert [h["workspace"] for h in hops] == ["mlw-bikeshare-dev", "mlw-qa3"]
        assert hops[1]["snapshot"] == qa_manifest.snapshot_id == mv.tags["amlport.snapshot"]
        assert mv.tags["amlport.source_account"] == "stqa03"


def test_unreachable_server_is_one_line_exit_2(dev_repo: Path, tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    from helpers import mlflowserver

    uri = f"http://127.0.0.1:{mlflowserver.free_port()}"  # nothing listens there
    map_file = _write_map(tmp_path / "qa.yaml", _target("stqa04", "mlw-qa4", "q4"))
    with pytest.raises(MlflowRegistryError, match="cannot reach the MLflow tracking server"):
        MlflowRegistryImporter(uri).plan(_context(dev_repo, map_file))
    res = amlport(
        "import", str(dev_repo), "--to", str(tmp_path / "t"), "--map", str(map_file),
        "--register-mlflow", uri.replace("http://", "http://user:secret@"),
    )  # fmt: skip
    assert res.returncode == 2, res.stdout + res.stderr
    assert "cannot reach the MLflow tracking server" in res.stderr
    assert "Traceback" not in res.stderr and "secret" not in res.stderr
    assert not (tmp_path / "t" / "azureml" / "ExperimentRun").exists()  # planned, not applied


def test_folder_digest_depends_on_content_not_location() -> None:
    def entry(path: str, digest: str) -> FileEntry:
        return FileEntry(path=path, digest="sha256:" + digest * 64, size=1)

    a = [entry("files/ds/run1/model/MLmodel", "a"), entry("files/ds/run1/model/m.pkl", "b")]
    b = [entry("files/other/x/model/m.pkl", "b"), entry("files/other/x/model/MLmodel", "a")]
    c = [entry("files/ds/run1/model/MLmodel", "a"), entry("files/ds/run1/model/m.pkl", "c")]
    assert folder_digest(a, "files/ds/run1/model") == folder_digest(b, "files/other/x/model")
    assert folder_digest(a, "files/ds/run1/model") != folder_digest(c, "files/ds/run1/model")
    assert folder_digest(a, "files/ds/run1/model").startswith("sha256:")
