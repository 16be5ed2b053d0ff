"""Session-wide test fixtures shared by every suite.

Azurite fixtures (helpers in ``tests/helpers/azurite.py``, imported as ``helpers.azurite``;
shared test helpers are in ``tests/helpers/``, see its ``__init__``):

- ``azurite`` (session) -> ``azurite.Azurite``: a running emulator. ``.endpoint``
  (``http://127.0.0.1:<port>``), ``.pid``, ``.accounts`` (name -> ``AzuriteAccount`` with
  ``.name``, ``.key``, ``.url`` = ``<endpoint>/<name>``, ``.connection_string``,
  ``.service_client()``), ``.source`` / ``.target`` (the accounts ``amlsrc`` / ``amldst``,
  empty at start; tests load what they need into containers of their own). Every fixture
  workspace also gets an account of its own (see below). Skipped when ``npm ci`` was not run,
  unless ``CI`` is set: there a missing emulator fails the run.
- ``azurite_workspaces`` (session) -> ``dict[str, azurite.LoadedWorkspace]``: every
  ``fixtures/workspaces/<name>/`` uploaded once, keyed by ``<name>``; each value has
  ``.local_dir``, ``.account``, ``.url``, ``.containers``, ``.descriptor_file``.
  One account per workspace because classic workspaces all have a container ``azureml``.

Suites add their own fixtures in their own ``conftest.py``; keep this one generic.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import azurite as az

BASE_ACCOUNTS = (az.SOURCE_ACCOUNT, az.TARGET_ACCOUNT)


def _workspace_accounts() -> dict[str, str]:
    """Fixture folder -> Azurite account; deterministic, so computed where needed."""
    return az.workspace_account_names(az.fixture_workspace_dirs(), BASE_ACCOUNTS)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[az.Azurite]:
    az.require_azurite()
    accounts = [*BASE_ACCOUNTS, *_workspace_accounts().values()]
    emulator = az.start_azurite(tmp_path_factory.mktemp("azurite"), accounts)
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def azurite_workspaces(azurite: az.Azurite) -> dict[str, az.LoadedWorkspace]:
    return az.load_workspaces(azurite, az.fixture_workspace_dirs(), _workspace_accounts())


@pytest.fixture(autouse=True)
def _own_read_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets a read cache folder of its own (``walk/cache.py``): a backup or export
    through the CLI uses one by default, and it must neither leak between tests nor land in
    the home folder. Commands run as subprocesses inherit it."""
    folder = tmp_path / "amlport-cache"
    monkeypatch.setenv("AMLPORT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(autouse=True)
def _repository_keys(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> Iterator[None]:
    """Every test starts with no repository key set by a CLI option (``KeySource``) and no
    ``$AMLPORT_REPO_KEY``. With ``AMLPORT_TEST_ENCRYPT=1`` every repository a test creates
    (``Repository.init``/``open_or_init``, format 2) is encrypted under a fixed test key
    (``make test-encrypted``, docs/design/0013-repository-encryption.md), unless the test is
    marked ``own_keys`` (it gives every key itself); the ``amlport`` processes a test starts
    do the same (``helpers/encrypted_site/sitecustomize.py``, put first on ``$PYTHONPATH``)."""
    from helpers.encrypted_mode import use_test_keys

    from amlport.bundle.repository import KeySource

    monkeypatch.delenv("AMLPORT_REPO_KEY", raising=False)
    KeySource.reset()
    # A patcher of its own: a test's ``monkeypatch.undo()`` (to run a second command without
    # its fault injection) must not take the test keys away from that command.
    with pytest.MonkeyPatch.context() as keys:
        if request.node.get_closest_marker("own_keys") is None:
            use_test_keys(keys)  # with AMLPORT_TEST_ENCRYPT=1
        try:
            yield
        finally:
            KeySource.reset()
