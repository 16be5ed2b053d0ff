"""The write guard against Azure storage (Azurite): a dry run through a SAS that cannot write
writes nothing (and does not even try: a try would fail with 403), ``restore --check
--read-only`` proves a copy without touching it, and a target that is the source account and
container, spelled another way, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.cliutil import amlport

pytestmark = pytest.mark.azurite
BLOBSTORE = "azureml-blobstore-77777777-1111-2222-3333-444444444444"
ARTIFACTS = "guard-azureml"
LOG = "ExperimentRun/dcid.09deaf1f-e093-4b54-9e6e-4207b4b2e500/logs/azureml/stdoutlogs.txt"


def _map(path: Path, account: str, blobstore: str, artifacts: str) -> Path:
    target = {
        "account": account,
        "endpoint": "core.windows.net",
        "workspace": "mlw-guard",
        "subscription_id": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        "resource_group": "rg-guard",
        "containers": {"blobstore": blobstore, "artifacts": artifacts},
        "datastores": {"workspaceblobstore": blobstore, "workspaceartifactstore": artifacts},
    }
    datastores = {"workspaceblobstore": "workspaceblobstore"}
    datastores["workspaceartifactstore"] = "workspaceartifactstore"
    path.write_text(yaml.safe_dump({"target": target, "datastores": datastores}), "utf-8")
    return path


def state(account: az.AzuriteAccount) -> dict[tuple[str, str], str]:
    """Every blob of the account with its etag: any write changes it."""
    service = account.service_client()
    out: dict[tuple[str, str], str] = {}
    for c in service.list_containers():
        for b in service.get_container_client(c.name).list_blobs():
            out[(c.name, b.name)] = str(b.etag)
    return out


@pytest.fixture(scope="module")
def loaded(
    tmp_path_factory: pytest.TempPathFactory,
    azurite: az.Azurite,
    azurite_workspaces: dict[str, az.LoadedWorkspace],
) -> tuple[az.LoadedWorkspace, Path, Path]:
    """(the designer source, its repository, a map onto the target account), imported once."""
    root = tmp_path_factory.mktemp("guard-az")
    source = azurite_workspaces["designer-autoprice"]
    repo = root / "repo"
    done = amlport("backup", str(source.local_dir), "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    map_file = _map(root / "m.yaml", azurite.target.name, BLOBSTORE, ARTIFACTS)
    conn = ("--connection-string", azurite.target.connection_string)
    done = amlport("import", str(repo), "--to", azurite.target.url, "--map", str(map_file), *conn)
    assert done.returncode == 0, done.stderr
    return source, repo, map_file


@pytest.mark.parametrize("command", ["import", "restore", "promote"])
def test_dry_run_through_a_read_only_sas_writes_nothing(
    command: str, azurite: az.Azurite, loaded: tuple[az.LoadedWorkspace, Path, Path]
) -> None:
    source, repo, map_file = loaded
    target = azurite.target
    target.service_client().get_blob_client(ARTIFACTS, LOG).upload_blob(b"edit", overwrite=True)
    sas = az.read_list_account_sas(target)
    to = ("--to", target.url, "--map", str(map_file), "--dry-run")
    args = {
        "import": ("import", str(repo), *to, "--sas-token", sas),
        "restore": ("restore", str(repo), "latest", *to, "--sas-token", sas),
        "promote": ("promote", source.url, *to, "--target-sas-token", sas,
                    "--connection-string", source.account.connection_string),
    }[command]  # fmt: skip
    before = state(target)
    done = amlport(*args, "--on-conflict", "overwrite")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert state(target) == before


def test_check_read_only_through_a_read_only_sas_reports_a_missing_blob(
    azurite: az.Azurite, loaded: tuple[az.LoadedWorkspace, Path, Path]
) -> None:
    _, repo, map_file = loaded
    target = azurite.target
    target.service_client().get_blob_client(ARTIFACTS, LOG).delete_blob()
    before = state(target)
    sas = az.read_list_account_sas(target)
    to = ("--to", target.url, "--map", str(map_file), "--sas-token", sas)
    done = amlport("restore", str(repo), "latest", *to, "--check", "--read-only")
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"missing in the target: {ARTIFACTS}/{LOG}" in done.stdout
    assert state(target) == before


def test_promote_into_its_own_account_and_container_is_refused(
    tmp_path: Path, loaded: tuple[az.LoadedWorkspace, Path, Path]
) -> None:
    source = loaded[0]
    desc = yaml.safe_load(source.descriptor_file.read_text())
    blob, art = desc["containers"]["blobstore"], desc["containers"]["artifacts"]
    map_file = _map(tmp_path / "self.yaml", source.account.name, blob, art)
    before = state(source.account)
    same = source.url.replace("127.0.0.1", "localhost")  # the same account, spelled otherwise
    conn = source.account.connection_string
    done = amlport(
        "promote", source.url, "--to", same, "--map", str(map_file),
        "--connection-string", conn, "--target-connection-string", conn,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "never writes into what it reads" in " ".join(done.stderr.split())
    assert state(source.account) == before
