"""Fixtures of the live control-plane suite: the ARM replay server (``tests/armreplay.py``).

- ``arm_replay`` (session) -> ``armreplay.ReplayServer``: HTTPS on 127.0.0.1 with a throw-away
  certificate, started once and stopped at the end of the session.
- ``arm`` (function) -> the same server, emptied, with ``AMLPORT_ARM_ENDPOINT`` pointing at it,
  ``REQUESTS_CA_BUNDLE`` trusting its certificate and amlport's credential replaced by a
  static token (the SDK clients stay real). A request the test did not ``serve`` fails the
  test at teardown.
"""

from __future__ import annotations

from collections.abc import Iterator

import armreplay as ar
import pytest


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
    yield arm_replay
    unexpected = list(arm_replay.unexpected)
    arm_replay.reset()
    if unexpected:
        pytest.fail(f"unexpected ARM requests: {unexpected}", pytrace=False)
