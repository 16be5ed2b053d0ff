"""``-o`` is one guarded write for every command (docs/design/0004, write guard).

Before: ``scan SRC -o SRC/x.json`` wrote into the workspace it read; ``-o`` into a missing
folder was an internal error for scan, lineage and map init and silently created for pack.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces" / "designer-autoprice"


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("o") / "src"
    shutil.copytree(WS, root)
    return root


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.mark.parametrize(
    "command",
    [
        ["scan", "{src}", "-o", "{out}"],
        ["lineage", "{src}", "-f", "dot", "-o", "{out}"],
        ["audit", "{src}", "-o", "{out}"],
    ],
    ids=["scan", "lineage", "audit"],
)
@pytest.mark.parametrize(
    "spelling", ["{src}/azureml/out.txt", "{src}/../src/out.txt", "{src}/./azureml/../o.txt"]
)
def test_output_inside_the_source_is_refused(src: Path, command: list[str], spelling: str) -> None:
    before = _files(src)
    out = spelling.format(src=src)
    res = amlport(*(a.format(src=src, out=out) for a in command))
    assert res.returncode == 2, res.stderr
    assert "inside the source" in res.stderr and "Traceback" not in res.stderr
    assert _files(src) == before


@pytest.mark.parametrize(
    "command",
    [
        ["scan", "{src}", "-o", "{out}"],
        ["lineage", "{src}", "-o", "{out}"],
        ["audit", "{src}", "-o", "{out}"],
    ],
    ids=["scan", "lineage", "audit"],
)
def test_output_into_a_missing_folder_is_a_usage_error(
    src: Path, tmp_path: Path, command: list[str]
) -> None:
    out = tmp_path / "missing" / "out.txt"
    res = amlport(*(a.format(src=src, out=out) for a in command))
    assert res.returncode == 2 and "does not exist" in res.stderr, res.stderr
    assert "internal error" not in res.stderr
    assert not out.parent.exists()


def test_output_beside_the_source_is_written(src: Path, tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    res = amlport("scan", str(src), "-o", str(out))
    assert res.returncode in (0, 1), res.stderr
    assert out.is_file() and out.read_text(encoding="utf-8").startswith("{")
