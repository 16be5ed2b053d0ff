"""Fixtures of the live control-plane suite: the ARM replay server (``helpers/armreplay.py``).

Nothing in this suite skips: ``make test`` installs the ``arm``, ``azureml`` and ``identity``
extras and the fixture workspaces are committed, so a missing SDK fails the tests.
Azurite follows the session rule (skipped without ``npm ci`` unless ``CI`` is set).

- ``arm_replay`` (session) -> ``armreplay.ReplayServer``: HTTPS on 127.0.0.1 with a throw-away
  certificate, started once and stopped at the end of the session.
- ``arm`` (function) -> the same server, emptied, with ``AMLPORT_ARM_ENDPOINT`` pointing at it,
  ``REQUESTS_CA_BUNDLE`` trusting its certificate and amlport's credential replaced by a
  static token (the SDK clients stay real). A request the test did not ``serve`` fails the
  test at teardown. azure-ai-ml's own endpoint override (``AZUREML_DEV_URL_MFE``) is unset:
  registration reaches the replay through ``AMLPORT_ARM_ENDPOINT``, as the audit does.
- ``tls_azurite`` (session) -> an Azurite of its own over HTTPS (the replay's certificate),
  serving the accounts of ``TLS_ACCOUNTS`` at ``https://<account>.blob.core.replay.test:<port>``
  (``armreplay.start_tls_azurite``): the replayed cloud's storage, where azure-ai-ml uploads
  an environment's build context.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import armreplay as ar
from helpers import azurite as az

# Accounts of the replayed cloud's storage (``tls_azurite``): the lendingclub QA target.
TLS_ACCOUNTS = ("stlcqatarget01",)


@pytest.fixture(scope="session")
def arm_replay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ar.ReplayServer]:
    server = ar.start_replay(tmp_path_factory.mktemp("arm-replay"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def arm(arm_replay: ar.ReplayServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[ar.ReplayServer]:
    from amlport.audit import armlive

    arm_replay.reset()
    monkeypatch.setenv(armlive.ENDPOINT_ENV, arm_replay.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(arm_replay.ca_file))
    monkeypatch.setattr(armlive, "default_credential", ar.FixedToken)
    monkeypatch.delenv("AZUREML_DEV_URL_MFE", raising=False)
    yield arm_replay
    unexpected = list(arm_replay.unexpected)
    arm_replay.reset()
    if unexpected:
        pytest.fail(f"unexpected ARM requests: {unexpected}", pytrace=False)


@pytest.fixture(scope="session")
def tls_azurite(
    arm_replay: ar.ReplayServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[az.Azurite]:
    az.require_azurite()
    accounts = {name: az.new_account_key() for name in TLS_ACCOUNTS}
    emulator = ar.start_tls_azurite(tmp_path_factory.mktemp("tls-azurite"), arm_replay, accounts)
    try:
        yield emulator
    finally:
        emulator.stop()
