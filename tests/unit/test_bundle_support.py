"""The bundle test builders (``tests/helpers/bundle.py``) make a manifest the repository accepts."""

from __future__ import annotations

from pathlib import Path

from helpers.bundle import new_repo, snapshot


def test_builders_make_a_snapshot_that_verifies(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"a", "files/b": b"b"})
    assert repo.verify().ok
    assert repo.load_snapshot(sid).files[0].original == {
        "datastore": "workspaceblobstore",
        "path": "a",
    }
