"""A restore plans every file keeping small facts, not bytes (a 100k-file plan held every
rewritten file's bytes: 570 MB, docs/design/0007 "Peak memory of restore, ls and diff at 100k
(C, session 7)"), and writes a rewritten file by reading and rewriting it again: what it
writes is what the plan decided on, checked, or nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.backup import MAPS, WS
from helpers.bundle import flip_byte

from amlport.backup import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.errors import IntegrityError
from amlport.importers.base import ImportContext
from amlport.importers.datastore import DatastoreImporter
from amlport.importing.engine import import_rules, load_mapping, mapping_for
from amlport.storage.guard import WriteGuard
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target


def test_the_plan_keeps_no_bytes_and_a_file_damaged_after_it_is_not_written(
    tmp_path: Path,
) -> None:
    repo_path, target_path = tmp_path / "repo", tmp_path / "target"
    snapshot = run_backup(LocalSource(WS / "designer-autoprice"), repo_path, BackupRequest())
    mapping = load_mapping(MAPS / "qa.yaml")
    repo = Repository.open(repo_path)
    with repo, open_target(str(target_path), descriptor=mapping.target) as target:
        manifest = repo.snapshots.load_exact(str(snapshot.snapshot_id))
        guard = WriteGuard()
        ctx = ImportContext(
            repo,
            manifest,
            mapping_for(manifest, mapping),
            import_rules(manifest, mapping),
            lambda _w: None,
            guard=guard,
        )
        importer = DatastoreImporter(guard.wrap(target))
        planned = importer.plan(ctx)
        assert planned and all(a.action == "create" for a in planned)
        for action in planned:  # facts only: no file's bytes are held until it is written
            assert not any(isinstance(v, bytes | bytearray) for v in action.details.values())
        rewritten = [a for a in planned if a.details["rewritten"]]
        assert rewritten and any(a.details["rewrites"] for a in rewritten)
        victim = rewritten[0]
        flip_byte(repo, manifest.file(victim.subject).digest, 0)  # damaged after the plan
        guard.open()
        importer.target.ensure_containers()
        with pytest.raises(IntegrityError):
            importer.apply(victim, ctx)
        assert not (target_path / victim.target).exists()  # nothing written for it
        for action in planned:
            if action is not victim:
                assert importer.apply(action, ctx).action == "create"
        for action in rewritten[1:]:  # written as the plan decided: its digest
            data = (target_path / action.target).read_bytes()
            assert target.stat(*action.target.split("/", 1)).sha256 == action.details["digest"]
            assert data != repo.read_file(manifest, action.subject)  # rewritten, not copied


def test_the_plan_keeps_no_target_string_per_file(tmp_path: Path) -> None:
    """A file's action makes its target (``container/name``) from its facts when asked: the
    plan holds no string of it per file (~18 MB at 100k files, docs/design/0007, C session
    8); the target, the name and the action's dict are what they were, hostile names too."""
    import gc
    import shutil

    from amlport.importers.datastore import FileFacts

    src, repo_path = tmp_path / "src", tmp_path / "repo"
    shutil.copytree(WS / "designer-autoprice", src)
    blobstore = next(p for p in src.iterdir() if p.name.startswith("azureml-blobstore-"))
    hostile = ["[x]", "a..b", "caf\u00e9 \u65e5\u672c", "n" * 200]
    for name in hostile:
        (blobstore / "odd" / name).parent.mkdir(parents=True, exist_ok=True)
        (blobstore / "odd" / name).write_bytes(name.encode())
    snapshot = run_backup(LocalSource(src), repo_path, BackupRequest())
    mapping = load_mapping(MAPS / "qa.yaml")
    repo = Repository.open(repo_path)
    with repo, open_target(str(tmp_path / "target"), descriptor=mapping.target) as target:
        manifest = repo.snapshots.load_exact(str(snapshot.snapshot_id))
        ctx = ImportContext(repo, manifest, mapping_for(manifest, mapping),
                            import_rules(manifest, mapping), lambda _w: None)  # fmt: skip
        planned = DatastoreImporter(WriteGuard().wrap(target)).plan(ctx)
    blob = str(mapping.target.container_of("workspaceblobstore"))
    targets = {a.target for a in planned}
    assert {f"{blob}/odd/{n}" for n in hostile} <= targets
    for action in planned:
        facts = action.details
        assert isinstance(facts, FileFacts)
        _, _, name = action.subject.removeprefix("files/").partition("/")
        assert facts["name"] == name
        assert action.target == f"{facts['container']}/{name}" == action.to_dict()["target"]
        held = gc.get_referents(action) + gc.get_referents(facts)
        assert not any(isinstance(o, str) and o == action.target for o in held)
