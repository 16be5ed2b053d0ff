"""Live registration of components through azure-ai-ml's real ``MLClient`` against the ARM
replay, their code uploaded to the SAS URI the replay hands out, on Azurite: the
``v2-lendingclub`` fixture exported, then imported with ``--workspace``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import armreplay as ar
import azurite as az
import pytest
import yaml
from typer.testing import CliRunner

from amlport.cli.app import app
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importers import azureml_assets as assets
from amlport.storage.local import LocalSource

pytest.importorskip("azure.ai.ml")
pytestmark = pytest.mark.azurite

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "v2-lendingclub"
SUB, RG, WS = "22222222-3333-4444-5555-666666666666", "rg-lc-qa", "mlw-lc-qa"
WORKSPACE = f"{SUB}/{RG}/{WS}"
WS_ID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/{ar.WS_PROVIDER}/{WS}"
TARGET = {
    "account": "stlcqatarget01",
    "endpoint": "core.windows.net",
    "subscription_id": SUB,
    "resource_group": RG,
    "workspace": WS,
    "containers": {"blobstore": "azureml-blobstore-lcqa0001", "artifacts": "lc-qa-artifacts"},
    "datastores": {"qablob": "azureml-blobstore-lcqa0001", "qaartifacts": "lc-qa-artifacts"},
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lendingclub") / "repo"
    run_export(LocalSource(FIXTURE), path, ExportRequest(include=frozenset(INCLUDE_KINDS)))
    return path


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    doc = {
        "target": TARGET,
        "datastores": {"workspaceblobstore": "qablob", "workspaceartifactstore": "qaartifacts"},
    }
    path = tmp_path / "lc.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def registry(
    arm: ar.ReplayServer, azurite: az.Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ar.AssetRegistry]:
    monkeypatch.setenv("AZUREML_DEV_URL_MFE", arm.url)
    monkeypatch.setattr(assets, "_default_credential", ar.FixedToken)
    blob = azurite.target
    reg = ar.AssetRegistry(WS_ID, ar.UploadStore(blob.url, blob.name, blob.key))
    reg.install(arm)
    yield reg


def import_(repo: Path, map_file: Path, tmp: Path, *extra: str, live: bool = True) -> tuple[int, str]:
    args = ["import", str(repo), "--to", str(tmp / "target"), "--map", str(map_file)]
    args += ["--emit-assets", str(tmp / "emitted"), *extra]
    args += ["--workspace", WORKSPACE] if live else []
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    return res.exit_code, res.stderr


def seed_built_environments(repo: Path, map_file: Path, tmp: Path, reg: ar.AssetRegistry) -> int:
    """Register, as already there, the environments built from a local context: their upload
    goes to the default datastore at ``https://<account>.blob.<cloud suffix>``, which the
    replay cannot send to Azurite (design record 0006)."""
    assert import_(repo, map_file, tmp, live=False)[0] == 0
    seeded = 0
    for kind, file in assets.load_index(tmp / "emitted"):
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        if kind == "environment" and "build" in doc:
            build = {"contextUri": f"https://example.invalid/{doc['name']}", "dockerfilePath": "Dockerfile"}
            reg.seed("environments", doc["name"], str(doc["version"]), {"build": build})
            seeded += 1
    return seeded


def test_components_register_with_their_code_then_re_run_is_a_no_op(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry, arm: ar.ReplayServer
) -> None:
    print(seed_built_environments(repo, map_file, tmp_path, registry))
    code, err = import_(repo, map_file, tmp_path)
    print(err)
    print([f"{s.method} {s.path}?{s.query}" for s in arm.seen])
    print(arm.unexpected)
    assert code == 0, err
