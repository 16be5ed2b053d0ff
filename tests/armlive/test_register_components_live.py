"""Live registration of components and of environments with a build context through
azure-ai-ml's real ``MLClient`` against the ARM replay: the components' code uploaded to the
SAS URI the replay hands out (on Azurite), the build contexts to the workspace's default
datastore at ``https://<account>.blob.<the cloud's storage suffix>`` (an Azurite over TLS,
``tls_azurite``). The ``v2-lendingclub`` fixture exported, then imported with
``--workspace``."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import armreplay as ar
from helpers import azurite as az

from amlport.errors import ExitCode
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importers import azureml_assets as assets
from amlport.storage.local import LocalSource

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
def map_file(tmp_path: Path, tls_azurite: az.Azurite) -> Path:
    """The map file; its target's storage suffix (``target.endpoint``) is the TLS Azurite's,
    so the registration's custom cloud uploads build contexts there."""
    qa = dataclasses.replace(QA, endpoint=ar.storage_suffix(tls_azurite))
    return qa.write_map(tmp_path / "lc.yaml")


@pytest.fixture
def registry(
    arm: ar.ReplayServer,
    azurite: az.Azurite,
    tls_azurite: az.Azurite,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ar.AssetRegistry]:
    monkeypatch.setattr(assets, "_default_credential", ar.FixedToken)
    ar.resolve_replay_names(monkeypatch)
    blob = azurite.target
    account = tls_azurite.accounts[QA.account]
    store = ar.BlobDatastore(
        "workspaceblobstore",
        account.name,
        QA.blobstore,
        ar.storage_suffix(tls_azurite),
        account.key,
    )
    with account.service_client() as admin:  # the target's blobstore container exists
        if not admin.get_container_client(QA.blobstore).exists():
            admin.create_container(QA.blobstore)
    reg = ar.AssetRegistry(WS_ID, ar.UploadStore(blob.url, blob.name, blob.key), store)
    reg.install(arm)
    # A job submission reads the workspace (its location, for the job's services).
    deployment = ar.Deployment(SUB, RG, TARGET["account"], WS, "0" * 32, ())
    arm.serve("GET", WS_ID, deployment.workspace_body())
    yield reg


def built_environments(emitted: Path) -> dict[str, str]:
    """name -> version of the emitted environments built from a local context."""
    out = {}
    for kind, file in assets.load_index(emitted):
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
        if kind == "environment" and "build" in doc:
            out[str(doc["name"])] = str(doc["version"])
    return out


def seed_built_environments(
    repo: Path, map_file: Path, tmp: Path, reg: ar.AssetRegistry
) -> list[str]:
    """Emit the folder (no --workspace), then register, as already there, the environments
    built from a local context (for the tests about components: no build context upload).
    Returns their names."""
    assert QA.import_assets(repo, map_file, tmp, live=False)[0] == 0
    built = built_environments(tmp / "emitted")
    for name, version in built.items():
        build = {"contextUri": f"https://example.invalid/{name}/context"}
        reg.seed("environments", name, version, {"build": build})
    return list(built)


def after_ws(path: str) -> list[str]:
    return path[len(WS_ID) + 1 :].split("/")


def test_environments_components_and_pipeline_register_with_their_uploads_then_re_run_is_a_no_op(
    repo: Path,
    map_file: Path,
    tmp_path: Path,
    registry: ar.AssetRegistry,
    azurite: az.Azurite,
    tls_azurite: az.Azurite,
) -> None:
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == 0, err
    assert "\x1b" not in err  # azure-ai-ml's colour codes stay off the terminal
    entries = assets.load_index(tmp_path / "emitted")
    components = [f for k, f in entries if k == "component"]
    assert len(components) == 8 and [k for k, _ in entries].count("pipeline") == 1
    assert err.count("live: create component ") == 8
    assert err.count("live: create pipeline amlport-") == 1
    built = built_environments(tmp_path / "emitted")
    assert "lendingclub-env" in built  # the components' environment (azureml:…@latest)

    # Each build context went to the default datastore, found through the custom cloud's
    # storage suffix: https://<account>.blob.core.replay.test:<port>/<container>/LocalUpload/…
    assert registry.secrets_listed  # the account key came from listSecrets
    blobstore = tls_azurite.accounts[QA.account].service_client().get_container_client(QA.blobstore)
    uploaded = {b.name for b in blobstore.list_blobs()}
    base = f"https://{QA.account}.blob.{ar.storage_suffix(tls_azurite)}/{QA.blobstore}/"
    for name, version in built.items():
        assert f"live: create environment {name}:{version}" in err
        stored = registry.versions[ar._norm(f"{WS_ID}/environments/{name}/versions/{version}")]
        context = stored["properties"]["build"]["contextUri"]
        assert context.startswith(base + "LocalUpload/"), context
        folder = context[len(base) :].rstrip("/")
        assert any(b.startswith(folder + "/") for b in uploaded), (folder, sorted(uploaded))

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
    registry.secrets_listed.clear()
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == 0, err
    # A second run registers nothing, uploads no code and reads no datastore key.
    assert registry.puts == [] and registry.pending == [] and registry.secrets_listed == []
    assert err.count("live: skip ") == len(entries) and "live: create" not in err


def test_a_component_version_registered_elsewhere_is_a_conflict_not_an_upload(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry
) -> None:
    """A component name:version already in the workspace with another command is a conflict
    (registered versions are immutable; a job naming split:2 would run the other command),
    found before any upload; the rest still registers. With --on-conflict skip it is left
    alone and the import exits 1."""
    seed_built_environments(repo, map_file, tmp_path, registry)
    env = f"azureml:{WS_ID}/environments/other-env/versions/1"
    spec = {"name": "split", "version": "2", "type": "command", "command": "echo elsewhere"}
    registry.seed("components", "split", "2", {"componentSpec": {**spec, "environment": env}})
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == ExitCode.PARTIAL, err
    assert "live: conflict component split:2" in err
    assert f"{WS_ID}/components/split/versions/2" not in registry.puts
    assert err.count("live: create component ") == 7
    code, err = QA.import_assets(repo, map_file, tmp_path, "--on-conflict", "skip")
    assert code == ExitCode.WARNINGS, err
    assert f"{WS_ID}/components/split/versions/2" not in registry.puts


def test_a_failing_registration_is_one_line_and_a_failed_import(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry, arm: ar.ReplayServer
) -> None:
    """The service refusing the code upload (here: no blob store behind startPendingUpload)
    stops the registration with one line naming the file, no traceback."""
    seed_built_environments(repo, map_file, tmp_path, registry)
    registry.uploads = None
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == ExitCode.ERROR, err
    assert "components/" in err and "ReplayNoUploadStore" in err and "Traceback" not in err
    assert not any(after_ws(p)[0] == "components" for p in registry.puts)
