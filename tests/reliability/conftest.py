"""Fixtures of the reliability suite (see docs/reliability.md).

- ``rel_emulator`` (session): a private Azurite (``rel_azurite.PrivateAzurite``) with
  ``--debug`` request logging and the accounts below; never the shared session emulator,
  which other suites rely on. Tests that stop storage start one of their own.
- ``azurite_required``: skips when the emulator is not installed (fails in CI).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import azurite as az
from helpers.rel_azurite import PrivateAzurite, start_private

ACCOUNTS = ["relthrottle", "relnames", "relreadonly", "relreadonly2", "relexit", "relwait"]


@pytest.fixture(scope="session")
def azurite_required() -> None:
    az.require_azurite()


@pytest.fixture(scope="session")
def rel_emulator(
    azurite_required: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateAzurite]:
    emulator = start_private(tmp_path_factory.mktemp("rel-azurite"), ACCOUNTS)
    try:
        yield emulator
    finally:
        emulator.stop()
