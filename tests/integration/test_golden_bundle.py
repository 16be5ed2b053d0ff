"""Every bundle format version keeps a golden repository that later versions must still read."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from amlport.bundle import Repository
from amlport.export.deep import deep_verify

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "bundles"


@pytest.fixture(params=sorted(p.name for p in GOLDEN.iterdir() if p.is_dir()))
def golden(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    # Work on a copy: even a reader takes a (shared) lock file inside the repository.
    [repo] = [p for p in (GOLDEN / request.param).iterdir() if p.is_dir()]
    return Path(shutil.copytree(repo, tmp_path / repo.name))


def test_golden_repository_reads_and_verifies(golden: Path) -> None:
    repo = Repository.open(golden)
    [info] = repo.list_snapshots()
    manifest = repo.load_snapshot(info.id[:8])
    assert manifest.schema.startswith("amlport.bundle/")
    assert "golden-v1" in manifest.tags
    assert repo.verify().ok
    models = [a for a in manifest.assets if a.kind == "model"]
    assert any(a.name.startswith("Trained_model") and not a.portable for a in models)
    checked, problems = deep_verify(repo, manifest)
    assert checked >= 2 and problems == []
