"""Live registration (``import --workspace``) through azure-ai-ml's real ``MLClient`` against the
ARM replay: dependency order, idempotence, conflicts, the write guard, the exit codes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import armreplay as ar

from amlport.errors import ExitCode
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importers import azureml_assets as assets
from amlport.storage.guard import WriteGuard, WriteRefused
from amlport.storage.local import LocalSource

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "sdk-bikeshare"
QA = ar.TargetWorkspace(
    "11111111-2222-3333-4444-555555555555",
    "rg-ml-qa",
    "mlw-qa",
    "stqatarget01",
    "azureml-blobstore-qa000001",
    "qa-artifacts",
)
SUB, RG, WS, WORKSPACE, WS_ID, TARGET = QA.sub, QA.rg, QA.ws, QA.workspace, QA.ws_id, QA.target


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bikeshare") / "repo"
    run_export(LocalSource(FIXTURE), path, ExportRequest(include=frozenset(INCLUDE_KINDS)))
    return path


@pytest.fixture
def map_file(tmp_path: Path) -> Path:
    return QA.write_map(tmp_path / "qa.yaml")


@pytest.fixture
def registry(arm: ar.ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ar.AssetRegistry]:
    """The workspace's registry on the replay; MLClient reaches it through
    ``AMLPORT_ARM_ENDPOINT`` (the ``arm`` fixture), as the audit does, with a static token."""
    monkeypatch.setattr(assets, "_default_credential", ar.FixedToken)
    reg = ar.AssetRegistry(WS_ID)
    reg.install(arm)
    yield reg


def kinds_in_order(puts: list[str]) -> list[str]:
    return [p[len(WS_ID) + 1 :].split("/", 1)[0] for p in puts]


def test_import_registers_in_dependency_order_then_is_a_no_op(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry
) -> None:
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == 0, err
    entries = assets.load_index(tmp_path / "emitted")
    # (9 since identical environments are emitted once: sdk-bikeshare's seven are one)
    assert len(registry.puts) == len(entries) >= 9
    order = kinds_in_order(registry.puts)
    assert order == sorted(order, key=["environments", "data", "models"].index)
    assert err.count("live: create ") == len(entries)

    registry.puts.clear()
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == 0, err
    assert registry.puts == []  # a second run registers nothing
    assert err.count("live: skip ") == len(entries)


def test_a_version_registered_with_other_content_is_a_conflict(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry
) -> None:
    assert QA.import_assets(repo, map_file, tmp_path)[0] == 0
    model = next(k for k in registry.versions if "/models/" in k)
    registry.versions[model]["properties"]["modelUri"] = "azureml://datastores/x/paths/other"
    registry.puts.clear()
    code, err = QA.import_assets(repo, map_file, tmp_path)
    assert code == ExitCode.PARTIAL and "live: conflict model" in err
    assert registry.puts == []
    code, err = QA.import_assets(repo, map_file, tmp_path, "--on-conflict", "overwrite")
    assert code == ExitCode.PARTIAL and "immutable" in err and registry.puts == []
    code, err = QA.import_assets(repo, map_file, tmp_path, "--on-conflict", "skip")
    assert code == ExitCode.WARNINGS, err


def test_a_dry_run_registers_nothing(
    repo: Path, map_file: Path, tmp_path: Path, registry: ar.AssetRegistry
) -> None:
    assert QA.import_assets(repo, map_file, tmp_path)[0] == 0  # emits the folder
    registry.versions.clear()
    registry.puts.clear()
    code, err = QA.import_assets(repo, map_file, tmp_path, "--dry-run")
    assert code in (0, 1), err
    assert registry.puts == [] and "live:" not in err
    # Called directly with a dry run's guard, the first registration is refused.
    with pytest.raises(WriteRefused):
        assets.register_live(
            tmp_path / "emitted", workspace=WORKSPACE, guard=WriteGuard(dry_run=True)
        )
    assert registry.puts == []
