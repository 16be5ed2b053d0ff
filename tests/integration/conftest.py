"""Fixtures of the integration suite (the generic ones are in ``tests/conftest.py``).

- ``mlflow_server`` (session) -> ``str``: the tracking URI (``http://127.0.0.1:<port>``) of a
  real ``mlflow server`` (sqlite backend, local artifacts) started for the session and stopped
  at its end (helpers in ``tests/helpers/mlflowserver.py``). Skipped when mlflow is not installed,
  unless ``CI`` is set: there it fails. Tests that use it are marked ``mlflow``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import mlflowserver as ms


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        ms.find_mlflow()
    except ms.MlflowUnavailable as exc:
        if ms.ci_requires_mlflow():
            pytest.fail(f"mlflow is required in CI: {exc}", pytrace=False)
        pytest.skip(f"mlflow not available: {exc}")
    try:
        server = ms.start_mlflow_server(tmp_path_factory.mktemp("mlflow-server"))
    except ms.MlflowUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server.uri
    finally:
        server.stop()
