"""Fixtures of the report suite: a headless Chromium (offline), and reports to load in it.

Nothing here skips: without Chromium the browser tests fail and say what to install
(``make test`` installs it through the Makefile's ``browser`` step).

- ``chrome`` (module) -> a selenium ``WebDriver`` on headless Chromium, every request sent to
  a closed local port (the page must need no network);
- ``autoprice`` (module) -> a copy of fixtures/workspaces/designer-autoprice, backed up twice
  into ``autoprice.parent / "repo"`` with one file changed in between (``FIRST``, ``SECOND``
  in ``autoprice.parent / "ids.txt"``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cliutil import amlport
from helpers.reportutil import CONDA_ENV, FIXTURE, start_chromium


@pytest.fixture(scope="module")
def chrome(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


def backup(ws: Path, repo: Path, tag: str) -> str:
    run = amlport("backup", str(ws), "--repo", str(repo), "--tag", tag, "--json")
    assert run.returncode in (0, 1), run.stderr
    doc = json.loads(run.stdout)
    return str(doc.get("snapshot") or doc["snapshot_id"])


@pytest.fixture(scope="module")
def autoprice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("autoprice")
    ws = base / "ws"
    shutil.copytree(FIXTURE, ws)
    first = backup(ws, base / "repo", "before")
    env = ws / CONDA_ENV
    env.write_text(env.read_text().replace("- azureml-defaults\n", "- azureml-defaults==1.57.0\n"))
    second = backup(ws, base / "repo", "after")
    (base / "ids.txt").write_text(f"{first}\n{second}\n")
    return ws
