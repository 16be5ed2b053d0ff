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
from amlport.errors import ExitCode
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importers import azureml_assets as assets
from amlport.storage.local import LocalSource

pytest.importorskip("azure.ai.ml")
pytestmark = pytest.mark.azurite

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "v2-lendingclub"
QA = ar.TargetWorkspace(
    "22222222-3333-4444-5555-666666666666",
    "rg-lc-qa",
    "mlw-lc-qa",
    "stlcqatarget01",
    "azureml-blobstore-lcqa0001",
    "lc-qa-artifacts",
)
SUB, RG, WS, WORKSPACE, WS_ID, TARGET = QA.sub, QA.rg, QA.ws, QA.workspace, QA.ws_id, QA.target


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("lendingclub") / "repo"
    run_export(LocalSource(FIXTURE), path, ExportRequest(include=frozenset(INCLUDE_KINDS)))
    return path


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    return QA.write_map(tmp_path / "lc.yaml")


@pytest.fixture
def registry(
    arm: ar.ReplayServer, azurite: az.Azurite, monkeypatch: pytest.MonkeyPatch
) -> Iterator[ar.AssetRegistry]:
    monkeypatch.setenv("AZUREML_DEV_URL_MFE", arm.url)
    monkeypatch.setattr(assets, "_default_credential", ar.FixedToken)
    blob = azurite.target
    reg = ar.AssetRegistry(WS_ID, ar.UploadStore(blob.url, blob.name, blob.key))
    reg.install(arm)
    # A job submission reads the workspace (its location, for the job's services).
    deployment = ar.Deployment(SUB, RG, TARGET["account"], WS, "0" * 32, ())
    arm.serve("GET", WS_ID, deployment.workspace_body())
    yield reg


def import_(
    repo: Path, map_file: Path, tmp: Path, *extra: str, live: bool = True
) -> tuple[int, str]:
    args = ["import", str(repo), "--to", str(tmp / "target"), "--map", str(map_file)]
    args += ["--emit-assets", str(tmp / "emitted"), *extra]
    args += ["--workspace", WORKSPACE] if live else []
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    return res.exit_code, res.stderr


def seed_built_environments(
    repo: Path, map_file: Path, tmp: Path, reg: ar.AssetRegistry
) -> list[str]:
    """Emit the folder (no --workspace), then register, as already there, the environments
    built from a local context: their upload goes to the default datastore at
    ``https://<account>.blob.<cloud suffix>``, which the replay cannot send to Azurite (design
    record 0006). Returns their names."""
    assert import_(repo, map_file, tmp, live=False)[0] == 0
    seeded = []
    for kind, file in assets.load_index(tmp / "emitted"):
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        if kind == "environment" and "build" in doc:
            build = {"contextUri": f"https://example.invalid/{doc['name']}/context"}
            reg.seed("environments", doc["name"], str(doc["version"]), {"build": build})
            seeded.append(str(doc["name"]))
    return seeded


def after_ws(path: str) -> list[str]:
    return path[len(WS_ID) + 1 :].split("/")


def test_components_and_pipeline_register_with_their_code_then_re_run_is_a_no_op(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry, azurite: az.Azurite
) -> None:
    seeded = seed_built_environments(repo, map_file, tmp_path, registry)
    assert "lendingclub-env" in seeded  # the components' environment (azureml:…@latest)
    code, err = import_(repo, map_file, tmp_path)
    assert code == 0, err
    assert "\x1b" not in err  # azure-ai-ml's colour codes stay off the terminal
    entries = assets.load_index(tmp_path / "emitted")
    components = [f for k, f in entries if k == "component"]
    assert len(components) == 8 and [k for k, _ in entries].count("pipeline") == 1
    assert err.count("live: create component ") == 8
    assert err.count("live: create pipeline amlport-") == 1
    assert err.count("live: skip environment ") == len(seeded)

    # Dependency order on the wire: environments, data, models, then code before the
    # components that use it, then the pipeline's anonymous components and the job, last.
    kinds = [after_ws(p)[0] for p in registry.puts]
    first = {k: kinds.index(k) for k in ("codes", "components", "jobs")}
    assert all(k in ("environments", "data", "models") for k in kinds[: first["codes"]])
    assert first["codes"] < first["components"] and kinds[-1] == "jobs" == kinds[first["jobs"]]
    # One upload: every other component found the code by its hash, as the service answers.
    assert kinds.count("codes") == 1 and len(registry.pending) == 1
    code_path = next(p for p in registry.puts if after_ws(p)[0] == "codes")
    code_version = registry.versions[ar._norm(code_path)]["properties"]
    # The code went to the SAS URI the replay handed out: a container on Azurite.
    container = code_version["codeUri"].split("/")[-2]
    assert code_version["codeUri"].startswith(azurite.target.url + "/code-")
    blobs = {
        b.name for b in azurite.target.service_client().get_container_client(container).list_blobs()
    }
    assert {"src/split.py", "src/train_lr.py"} <= blobs
    # The registered component's spec (echoed) points at that code and the environment.
    split = registry.versions[ar._norm(f"{WS_ID}/components/split/versions/2")]["properties"]
    assert split["componentSpec"]["code"] == f"azureml:{code_path}"
    assert split["componentSpec"]["environment"].endswith(
        "/environments/lendingclub-env/versions/3"
    )

    registry.puts.clear()
    registry.pending.clear()
    code, err = import_(repo, map_file, tmp_path)
    assert code == 0, err
    assert registry.puts == [] and registry.pending == []  # a second run registers nothing
    assert err.count("live: skip ") == len(entries) and "live: create" not in err


def test_a_component_version_registered_elsewhere_is_not_re_registered_nor_uploaded(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry
) -> None:
    """A component name:version already in the workspace is skipped before any upload
    (registered versions are immutable; the service expands specs, so name:version is the
    key), and the rest still registers."""
    seed_built_environments(repo, map_file, tmp_path, registry)
    env = f"azureml:{WS_ID}/environments/other-env/versions/1"
    spec = {"name": "split", "version": "2", "type": "command", "command": "echo elsewhere"}
    registry.seed("components", "split", "2", {"componentSpec": {**spec, "environment": env}})
    code, err = import_(repo, map_file, tmp_path)
    assert code == 0, err
    assert "live: skip component split:2" in err
    assert f"{WS_ID}/components/split/versions/2" not in registry.puts
    assert err.count("live: create component ") == 7


def test_a_failing_registration_is_one_line_and_a_failed_import(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry, arm: ar.ReplayServer
) -> None:
    """The service refusing the code upload (here: no blob store behind startPendingUpload)
    stops the registration with one line naming the file, no traceback."""
    seed_built_environments(repo, map_file, tmp_path, registry)
    registry.uploads = None
    code, err = import_(repo, map_file, tmp_path)
    assert code == ExitCode.ERROR, err
    assert "components/" in err and "ReplayNoUploadStore" in err and "Traceback" not in err
    assert not any(after_ws(p)[0] == "components" for p in registry.puts)
