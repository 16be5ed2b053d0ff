"""A restore reads each stored file by the entry it planned from (its object and size), never
by looking its path up: the first lookup by path indexes every path of the snapshot (~6 MB at
100k files, held to the end of the restore; docs/design/0007, "Peak memory of backup, restore
and diff (B, session 9)"). What lands in the target is what it was."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
from helpers.backup import MAPS, WS

from amlport.backup import BackupRequest, run_backup
from amlport.backup.restore import RestoreRequest, run_restore
from amlport.bundle import Repository
from amlport.importing.engine import load_mapping
from amlport.model.manifest import Manifest
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target

HOSTILE = ["[x]", "a..b", "ctl\x01name", "caf\u00e9 \u65e5\u672c", "n" * 200]
PARENT = "a186e29d-388b-46bb-b111-726e328be005"  # the designer run of designer-autoprice


def test_a_restore_never_looks_a_file_up_by_its_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, repo_path, target_path = tmp_path / "src", tmp_path / "repo", tmp_path / "target"
    shutil.copytree(WS / "designer-autoprice", src)
    blobstore = next(p for p in src.iterdir() if p.name.startswith("azureml-blobstore-"))
    for name in HOSTILE:
        (blobstore / "odd" / name).parent.mkdir(parents=True, exist_ok=True)
        (blobstore / "odd" / name).write_bytes(name.encode("utf-8", "surrogateescape"))
    snapshot = run_backup(LocalSource(src), repo_path, BackupRequest())
    mapping = load_mapping(MAPS / "qa.yaml")
    with Repository.open(repo_path) as repo:
        manifest = repo.snapshots.load_exact(str(snapshot.snapshot_id))

    looked_up: list[str] = []
    original = Manifest.file

    def file(self: Manifest, path: str):  # type: ignore[no-untyped-def]
        looked_up.append(path)
        return original(self, path)

    monkeypatch.setattr(Manifest, "file", file)
    with open_target(str(target_path), descriptor=mapping.target) as target:
        report = run_restore(repo_path, target, RestoreRequest(mapping=mapping))
    assert looked_up == []  # every file (rewritten ones, the designer document) by its entry
    monkeypatch.undo()

    actions = report.imported.actions
    assert actions and {a.action for a in actions} <= {"create"}
    rewritten = [a for a in actions if a.details.get("rewritten")]
    assert rewritten  # the designer pointers and YAML are bound to the target
    blob = str(mapping.target.container_of("workspaceblobstore"))
    for name in HOSTILE:  # written byte for byte under their own names
        landed = target_path / blob / "odd" / name
        assert landed.read_bytes() == name.encode("utf-8", "surrogateescape")
    with Repository.open(repo_path) as repo:
        for action in actions:  # each file holds what the plan decided on
            data = (target_path / action.target).read_bytes()
            assert "sha256:" + hashlib.sha256(data).hexdigest() == action.details["digest"]
            if not action.details["rewritten"]:
                assert data == repo.read_file(manifest, action.subject)
    [doc] = target_path.rglob(f"amlport/pipelines/{PARENT}.md")
    assert doc.read_text(encoding="utf-8").startswith(f"# Designer pipeline run {PARENT}")
