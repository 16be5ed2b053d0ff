"""The write guard (storage/guard.py, issue 17): nothing is written where it must not be.

Every writing command is run the way a user runs it, and the target (or source) tree is
compared byte for byte before and after. As root ``chmod a-w`` does not stop a write, so a
read-only folder alone proves nothing: the tree comparison and the guard's own counters do.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bundle import stored_files
from helpers.cliutil import amlport

from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.export import ExportRequest
from amlport.importing import ImportRequest, run_import
from amlport.importing.engine import load_mapping
from amlport.model.workspace import WorkspaceDescriptor
from amlport.promote import run_promote
from amlport.storage.guard import (
    GuardClosed,
    Place,
    WriteGuard,
    WriteRefused,
    local_place,
    place_of_repository,
)
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target
from amlport.storage.target import LocalTarget

ROOT = Path(__file__).resolve().parents[2]
DESIGNER = ROOT / "fixtures" / "workspaces" / "designer-autoprice"
QA = ROOT / "tests" / "integration" / "maps" / "qa.yaml"
STDOUT_LOG = "ExperimentRun/dcid.09deaf1f-e093-4b54-9e6e-4207b4b2e500/logs/azureml/stdoutlogs.txt"


def state_of(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` (folders as None) with its bytes: the whole state."""
    if not root.exists():
        return {}
    return {
        p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("guard") / "repo"
    done = amlport("backup", str(DESIGNER), "--repo", str(path))
    assert done.returncode == 0, done.stderr
    return path


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A writable copy of the designer workspace (a promote source)."""
    ws = tmp_path / "ws"
    shutil.copytree(DESIGNER, ws)
    return ws


@pytest.fixture
def restored(tmp_path: Path, repo: Path) -> Path:
    """A target the snapshot was imported into."""
    target = tmp_path / "restored"
    done = amlport("import", str(repo), "--to", str(target), "--map", str(QA))
    assert done.returncode == 0, done.stderr
    return target


def read_only(root: Path) -> Iterator[None]:
    for p in [root, *root.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        yield
    finally:
        for p in [root, *root.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


# --- dry runs ---------------------------------------------------------------------------------


def _writing_commands(repo: Path, source: Path, target: Path) -> dict[str, tuple[str, ...]]:
    to = ("--to", str(target), "--map", str(QA))
    return {
        "import": ("import", str(repo), *to),
        "restore": ("restore", str(repo), "latest", *to),
        "promote": ("promote", str(source), *to),
    }


@pytest.mark.parametrize("command", ["import", "restore", "promote"])
@pytest.mark.parametrize("policy", ["fail", "overwrite"])
def test_dry_run_writes_nothing_into_a_read_only_target(
    command: str, policy: str, repo: Path, workspace: Path, restored: Path
) -> None:
    (restored / "azureml" / STDOUT_LOG).write_bytes(b"changed since\n")  # a conflict to plan
    before = state_of(restored)
    args = _writing_commands(repo, workspace, restored)[command]
    for _ in read_only(restored):
        done = amlport(*args, "--dry-run", "--on-conflict", policy)
    assert done.returncode in (0, 1), done.stderr
    assert "Traceback" not in done.stderr
    assert state_of(restored) == before


@pytest.mark.parametrize("command", ["import", "restore", "promote"])
def test_dry_run_does_not_create_the_target(
    command: str, repo: Path, workspace: Path, tmp_path: Path
) -> None:
    target = tmp_path / "new" / "target"
    done = amlport(*_writing_commands(repo, workspace, target)[command], "--dry-run")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "new").exists()  # not even workspace.yaml (issue 17)


def test_the_guard_of_a_dry_run_import_lets_nothing_through(repo: Path, tmp_path: Path) -> None:
    mapping = load_mapping(QA)
    request = ImportRequest(mapping=mapping, dry_run=True)
    guard = WriteGuard(dry_run=True, source=place_of_repository(repo))
    with open_target(str(tmp_path / "t"), descriptor=mapping.target) as target:
        result = run_import(repo, target, request, guard=guard)
    assert result.counts["create"] > 100
    assert (guard.writes, guard.refused) == (0, [])  # nothing even tried
    with pytest.raises(WriteRefused, match="dry run"):
        guard.admit("anything")

    live = WriteGuard(source=place_of_repository(repo))
    with open_target(str(tmp_path / "t"), descriptor=mapping.target) as target:
        run_import(repo, target, ImportRequest(mapping=mapping), guard=live)
    with Repository.open(repo) as store:  # + each designer pipeline's document (amlport/)
        latest = store.load_snapshot(store.list_snapshots()[-1].id)
    documents = sum(1 for a in latest.assets if a.attrs.get("designer_document"))
    assert documents >= 1
    # + containers + the import record + the identity record + the documents, all under
    # amlport's own prefix
    assert live.writes == result.counts["create"] + 3 + documents


def test_the_guard_of_a_dry_run_promote_lets_nothing_through(
    workspace: Path, tmp_path: Path
) -> None:
    mapping = load_mapping(QA)
    guard = WriteGuard(dry_run=True)
    source = LocalSource(workspace)
    target = LocalTarget(tmp_path / "t", mapping.target)
    result = run_promote(source, target, mapping, ExportRequest(dry_run=True), guard=guard)
    assert result.actions["create"] > 100 and result.record is None
    assert (guard.writes, guard.refused) == (0, [])
    assert not (tmp_path / "t").exists()


# --- failing runs write nothing ------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        ("--snapshot", "deadbeef"),
        ("--on-conflict", "bogus"),
        ("--register-mlflow", "http://127.0.0.1:1"),
    ],
    ids=["unknown-snapshot", "bad-on-conflict", "unreachable-mlflow"],
)
def test_an_import_that_fails_validation_writes_nothing(
    extra: tuple[str, ...], repo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t"
    done = amlport("import", str(repo), "--to", str(target), "--map", str(QA), *extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert not target.exists()


@pytest.mark.parametrize(
    "snapshot_and_extra",
    [("deadbeef",), ("latest", "--on-conflict", "bogus"), ("latest", "--read-only")],
    ids=["unknown-snapshot", "bad-on-conflict", "read-only-without-check"],
)
def test_a_restore_that_fails_validation_writes_nothing(
    snapshot_and_extra: tuple[str, ...], repo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t"
    args = ("restore", str(repo), *snapshot_and_extra, "--to", str(target), "--map", str(QA))
    done = amlport(*args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert not target.exists()


@pytest.mark.parametrize("command", ["import", "restore"])
def test_a_non_repository_writes_nothing(command: str, tmp_path: Path) -> None:
    target = tmp_path / "t"
    snap = ("latest",) if command == "restore" else ()
    done = amlport(command, str(DESIGNER), *snap, "--to", str(target), "--map", str(QA))
    assert done.returncode == 2, done.stdout + done.stderr
    assert not target.exists()


def test_a_tampered_snapshot_is_refused_before_the_first_write(repo: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(repo, bad)
    # The largest file holding objects: a pack (the default; its first object is the one
    # damaged, the pack keeps its size) or an object's own file (AMLPORT_PACKS=0).
    victim = max(stored_files(bad), key=lambda p: p.stat().st_size)
    victim.chmod(0o644)
    victim.write_bytes(b"tampered" + victim.read_bytes()[8:])
    target = tmp_path / "t"
    done = amlport("restore", str(bad), "latest", "--to", str(target), "--map", str(QA))
    assert done.returncode == 4, done.stdout + done.stderr
    assert "nothing was written" in " ".join(done.stderr.split())
    assert not target.exists()  # and nothing was (it used to write workspace.yaml)


# --- the source is never a target ----------------------------------------------------------


@pytest.mark.parametrize("spelling", ["same", "slash", "dot", "symlink", "inside"])
def test_promote_into_its_own_source_is_refused(
    spelling: str, workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(workspace, target_is_directory=True)
    to = {
        "same": str(workspace),
        "slash": str(workspace) + "/",
        "dot": "./ws",
        "symlink": str(link),
        "inside": str(workspace / "azureml" / "sub"),
    }[spelling]
    before = state_of(workspace)
    done = amlport("promote", str(workspace), "--to", to, "--map", str(QA))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "never writes into what it reads" in " ".join(done.stderr.split())
    assert state_of(workspace) == before


def test_import_into_the_repository_is_refused(repo: Path, tmp_path: Path) -> None:
    before = state_of(repo)
    done = amlport("import", str(repo), "--to", str(repo / "t"), "--map", str(QA))
    assert done.returncode == 2, done.stderr
    assert state_of(repo) == before


@pytest.mark.parametrize("command", ["backup", "export"])
@pytest.mark.parametrize("where", ["inside", "same", "container"])
def test_a_repository_in_the_source_is_refused(command: str, where: str, workspace: Path) -> None:
    repo = {
        "inside": workspace / "repo",
        "same": workspace,
        "container": workspace / "azureml" / "r",
    }[where]
    before = state_of(workspace)
    flag = "--repo" if command == "backup" else "--to"
    done = amlport(command, str(workspace), flag, str(repo))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "repository" in done.stderr and "Traceback" not in done.stderr
    assert state_of(workspace) == before


# --- conflicts -----------------------------------------------------------------------------


def test_promote_over_a_differing_blob_follows_on_conflict(workspace: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    args = ("promote", str(workspace), "--to", str(target), "--map", str(QA), "--json")
    assert amlport(*args).returncode == 0
    victim = target / "azureml" / STDOUT_LOG
    victim.write_bytes(b"edited in the target\n")

    failed = amlport(*args)
    assert failed.returncode == 3, failed.stderr
    assert victim.read_bytes() == b"edited in the target\n"
    assert json.loads(failed.stdout)["conflicts"][0].startswith(f"azureml/{STDOUT_LOG}")

    skipped = amlport(*args, "--on-conflict", "skip")
    assert skipped.returncode == 1, skipped.stderr
    doc = json.loads(skipped.stdout)
    assert doc["counts"]["conflict"] == 1 and "left alone" in doc["conflicts"][0]
    assert victim.read_bytes() == b"edited in the target\n"

    replaced = amlport(*args, "--on-conflict", "overwrite")
    assert replaced.returncode == 0, replaced.stderr
    assert json.loads(replaced.stdout)["counts"]["update"] == 1
    assert victim.read_bytes() == (workspace / "azureml" / STDOUT_LOG).read_bytes()


def test_import_under_skip_reports_the_differing_blob_as_a_conflict(
    repo: Path, restored: Path
) -> None:
    victim = restored / "azureml" / STDOUT_LOG
    victim.write_bytes(b"edited\n")
    args = ("import", str(repo), "--to", str(restored), "--map", str(QA), "--json")
    done = amlport(*args, "--on-conflict", "skip")
    assert done.returncode == 1, done.stderr
    doc = json.loads(done.stdout)
    conflicts = [a for a in doc["actions"] if a["action"] == "conflict"]
    assert [a["target"] for a in conflicts] == [f"azureml/{STDOUT_LOG}"]
    assert "left alone" in conflicts[0]["reason"] and victim.read_bytes() == b"edited\n"


# --- restore --check --read-only -----------------------------------------------------------


def test_check_read_only_reports_a_missing_blob_and_does_not_restore_it(
    repo: Path, restored: Path
) -> None:
    (restored / "azureml" / STDOUT_LOG).unlink()
    before = state_of(restored)
    args = ("restore", str(repo), "latest", "--to", str(restored), "--map", str(QA))
    done = amlport(*args, "--check", "--read-only")
    assert done.returncode == 4, done.stdout + done.stderr
    assert f"missing in the target: azureml/{STDOUT_LOG}" in done.stdout
    assert "nothing written" in done.stdout
    assert state_of(restored) == before

    repaired = amlport(*args, "--check")  # without --read-only the restore repairs it
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert (restored / "azureml" / STDOUT_LOG).is_file()


# --- the guard itself ------------------------------------------------------------------------

DESC = WorkspaceDescriptor(account="acct", blobstore_container="blobs", artifact_container="art")


def test_a_closed_guard_refuses_as_an_internal_error(tmp_path: Path) -> None:
    guard = WriteGuard()
    target = guard.wrap(LocalTarget(tmp_path / "t", DESC))
    with pytest.raises(GuardClosed):
        target.write_bytes("blobs", "a.txt", b"x", metadata={}, overwrite=False)
    with pytest.raises(GuardClosed):
        target.ensure_containers()
    assert not (tmp_path / "t").exists() and len(guard.refused) == 2
    guard.open()
    target.ensure_containers()
    target.write_bytes("blobs", "a.txt", b"x", metadata={}, overwrite=False)
    assert (tmp_path / "t" / "blobs" / "a.txt").read_bytes() == b"x" and guard.writes == 2


@pytest.mark.parametrize(
    "container,name",
    [
        ("other", "a.txt"),
        ("blobs", "../art/a.txt"),
        ("blobs", "x/../../escape.txt"),
        ("blobs", "/etc/passwd"),
        ("blobs", ""),
        ("../blobs", "a.txt"),
        ("blobs", "nul\x00byte"),
    ],
)
def test_the_guard_refuses_writes_outside_the_target(
    container: str, name: str, tmp_path: Path
) -> None:
    guard = WriteGuard()
    guard.open()
    target = guard.wrap(LocalTarget(tmp_path / "t", DESC))
    with pytest.raises(WriteRefused):
        target.write_bytes(container, name, b"x", metadata={}, overwrite=True)
    assert guard.writes == 0 and not (tmp_path / "t").exists()


@pytest.mark.parametrize("name", ["x[/]y.txt", "[bold]b[/bold]", "a]b[c", "x" * 1024, "a..b/c..d"])
def test_the_guard_admits_hostile_but_legal_names(name: str) -> None:
    from amlport.storage.guard import check_blob_name

    check_blob_name("blobs", name, frozenset({"blobs"}), "t")  # no exception


def test_bad_on_conflict_is_refused_by_the_guard() -> None:
    with pytest.raises(UsageError, match="on-conflict"):
        WriteGuard(on_conflict="replace")


def test_places_of_one_account_however_spelled() -> None:
    from amlport.storage.azure_location import parse_location
    from amlport.storage.guard import azure_place

    def place(url: str, *containers: str) -> Place:
        return azure_place(parse_location(url), frozenset(containers))

    a = place("https://acct.blob.core.windows.net", "azureml")
    assert a.overlaps(place("https://ACCT.blob.core.windows.net/azureml", "AzureML"))
    assert a.overlaps(place("https://acct.dfs.core.windows.net", "azureml"))
    assert a.overlaps(place("https://acct.privatelink.blob.core.windows.net", "azureml"))
    assert not a.overlaps(place("https://acct.blob.core.windows.net", "other"))
    assert not a.overlaps(place("https://acct2.blob.core.windows.net", "azureml"))
    emu = place("http://127.0.0.1:10000/dev", "azureml")
    assert emu.overlaps(place("http://localhost:10000/dev", "azureml"))
    assert not emu.overlaps(place("http://127.0.0.1:10000/other", "azureml"))


def test_local_places_overlap_by_containment(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    os.symlink(tmp_path / "a", tmp_path / "l")
    a = local_place(tmp_path / "a")
    assert a.overlaps(local_place(tmp_path / "l"))
    assert a.overlaps(local_place(str(tmp_path / "a") + "/"))
    assert a.overlaps(local_place(tmp_path / "a" / "b" / "c"))
    assert not a.overlaps(local_place(tmp_path / "ab"))
