"""The ``$AMLPORT_REPO_*`` variables open an off-site repository end to end (Azurite): a
scheduled job given only a container SAS in ``$AMLPORT_REPO_SAS_TOKEN`` backs up to and
lists an ``az``-style container URL, and the token is never printed."""

from __future__ import annotations

import json

import pytest
from helpers import azurite as az
from helpers.backup import WS, cli
from helpers.stores import azure_place, writable_container_sas

pytestmark = pytest.mark.azurite

NONE = {
    "AMLPORT_REPO_CONNECTION_STRING": "",
    "AMLPORT_REPO_ACCOUNT_KEY": "",
    "AMLPORT_REPO_CREDENTIAL": "",
    "AZURE_STORAGE_CONNECTION_STRING": "",
}


def test_a_sas_token_from_amlport_repo_sas_token_opens_the_repository(
    azurite: az.Azurite,
) -> None:
    place = azure_place(azurite)
    sas = writable_container_sas(azurite, place)
    assert place.container is not None
    env = {**NONE, "AMLPORT_REPO_SAS_TOKEN": sas}
    done = cli("backup", str(WS / "sdk-bikeshare"), "--repo", place.location, "--json", env=env)
    assert done.returncode in (0, 1), done.stderr
    snapshot = json.loads(done.stdout)["snapshot"]
    listed = cli("snapshots", place.location, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)["snapshots"]] == [snapshot]
    for run in (done, listed):
        assert sas not in run.stdout + run.stderr
    # Without the variable the same command has no credential: a usage error, not a read.
    bare = cli("snapshots", place.location, env={**NONE, "AMLPORT_REPO_SAS_TOKEN": ""})
    assert bare.returncode != 0 and "Traceback" not in bare.stderr
