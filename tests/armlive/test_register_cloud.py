"""Live registration uses the audit's ARM endpoint (``AMLPORT_ARM_ENDPOINT``): the cloud
``MLClient`` is built for, checked on the real ``MLClient`` (building one sends no request)."""

from __future__ import annotations

import os
from pathlib import Path

import azure.ai.ml as aml
import pytest
from helpers import armreplay as ar

from amlport.audit import armlive
from amlport.importers import azureml_assets as assets

SUB = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(autouse=True)
def _own_cloud(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLClient sets ``AZUREML_CURRENT_CLOUD`` for the process; each test starts without it."""
    monkeypatch.delenv(assets.CURRENT_CLOUD_ENV, raising=False)
    monkeypatch.delenv("AZUREML_DEV_URL_MFE", raising=False)


def client(endpoint: str, suffix: str | None = None) -> object:
    cloud = assets.ml_cloud(endpoint, suffix)
    return aml.MLClient(ar.FixedToken(), SUB, "rg", "ws", show_progress=False, **cloud)


@pytest.mark.parametrize(
    ("endpoint", "cloud", "storage"),
    [
        (armlive.PUBLIC_ENDPOINT, "AzureCloud", "core.windows.net"),
        ("https://management.chinacloudapi.cn", "AzureChinaCloud", "core.chinacloudapi.cn"),
        ("https://management.usgovcloudapi.net/", "AzureUSGovernment", "core.usgovcloudapi.net"),
    ],
)
def test_a_known_cloud_is_selected_by_its_arm_endpoint(
    endpoint: str, cloud: str, storage: str
) -> None:
    from azure.ai.ml._azure_environments import _get_storage_endpoint_from_metadata

    assert assets.ml_cloud(endpoint, "ignored.example") == {"cloud": cloud}
    ml = client(endpoint)
    assert ml._base_url == endpoint.rstrip("/")  # type: ignore[attr-defined]
    assert _get_storage_endpoint_from_metadata() == storage  # where uploads go


def test_another_endpoint_is_a_cloud_of_its_own_with_the_targets_storage_suffix() -> None:
    from azure.ai.ml._azure_environments import _get_storage_endpoint_from_metadata

    url = "https://127.0.0.1:4443"
    ml = client(url, "core.replay.test:4444")
    assert ml._base_url == url  # type: ignore[attr-defined]
    assert _get_storage_endpoint_from_metadata() == "core.replay.test:4444"
    # azure-ai-ml never replaces a registered cloud: another endpoint or suffix is another name
    names = {
        assets.ml_cloud(url, "core.replay.test:4444")["cloud"],
        assets.ml_cloud(url, "core.replay.test:4445")["cloud"],
        assets.ml_cloud("https://127.0.0.1:4446", "core.replay.test:4444")["cloud"],
    }
    assert len(names) == 3
    assert assets.ml_cloud(url)["cloud_metadata"]["storage_endpoint"] == "core.windows.net"


def test_registration_refuses_a_plain_http_endpoint_before_any_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from amlport.errors import UsageError

    (tmp_path / assets.INDEX).write_text(
        '{"format": "amlport.emit-assets/1", "assets": []}', encoding="utf-8"
    )
    monkeypatch.setenv(armlive.ENDPOINT_ENV, "http://127.0.0.1:1")
    with pytest.raises(UsageError, match="must be an https URL"):
        assets.register_live(tmp_path, workspace=f"{SUB}/rg/ws", credential=ar.FixedToken())


def test_registration_leaves_the_process_cloud_as_it_was(
    arm: ar.ReplayServer, tmp_path: Path
) -> None:
    """``MLClient`` sets ``AZUREML_CURRENT_CLOUD`` for the whole process; after a registration
    it is what it was before (unset here), so a later MLClient is not steered by it."""
    (tmp_path / assets.INDEX).write_text(
        '{"format": "amlport.emit-assets/1", "assets": []}', encoding="utf-8"
    )
    done = assets.register_live(tmp_path, workspace=f"{SUB}/rg/ws", credential=ar.FixedToken())
    assert done == [] and assets.CURRENT_CLOUD_ENV not in os.environ
