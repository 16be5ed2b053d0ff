"""``repo upgrade --packs`` (``bundle/upgrade.py``): a repository without pack files gets
them — ``config.json`` first, then its loose small objects packed (packs durable, their index
piece, then the loose copies deleted) — and a run killed at any step leaves a repository
that verifies and that a second run finishes. A format-1 repository gets format 2 and packs
in one go; one that has packs is left as it is. Runs plain and with AMLPORT_TEST_ENCRYPT=1.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import flip_last_byte, manifest, sha
from helpers.data import tree_bytes

from amlport.bundle import Repository, packs
from amlport.bundle.repository import KeySource
from amlport.bundle.upgrade import upgrade
from amlport.errors import UsageError
from amlport.storage.guard import WriteGuard, WriteRefused

FORMAT1 = Path(__file__).resolve().parents[1] / "format1" / "repo"
CONTENTS = {f"files/f{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(30)}
LARGE = {"files/large.bin": bytes(range(256)) * 2100}  # above the pack threshold: stays loose


@pytest.fixture
def loose_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A format-2 repository made without pack files, with two snapshots."""
    monkeypatch.setenv("AMLPORT_PACKS", "0")
    path = tmp_path / "repo"
    repo = Repository.init(path)
    assert not repo.config.packs
    for contents in (CONTENTS, {**CONTENTS, **LARGE, "files/new.txt": b"new"}):
        with repo.lock(exclusive=False):
            with repo.objects.batch():
                written = manifest(repo, contents)
            repo.write_snapshot(written)
    monkeypatch.delenv("AMLPORT_PACKS")
    return path


def loose_objects(path: Path) -> list[Path]:
    return sorted(p for p in (path / "objects").rglob("*") if p.is_file())


def every_file_reads(path: Path) -> Repository:
    repo = Repository.open(path)
    for info in repo.list_snapshots():
        for entry in repo.load_snapshot(info.id).files:
            assert repo.objects.get_bytes(entry.digest, entry.size) is not None
    assert repo.verify().ok
    return repo


def test_packs_turns_pack_files_on_and_packs_the_loose_small_objects(loose_repo: Path) -> None:
    before = len(loose_objects(loose_repo))
    report = upgrade(Repository.open(loose_repo), packs=True)
    assert not report.packs_before and report.packs and report.packs_written >= 1
    assert report.repacked == before - 1  # all but the large object
    config = json.loads((loose_repo / "config.json").read_text())
    assert config["packs"] == {"version": 1} and config["version"] == 2
    left = loose_objects(loose_repo)
    assert len(left) == 1 and left[0].stat().st_size >= packs.PACK_BELOW
    repo = every_file_reads(loose_repo)
    assert repo.objects.location(sha(CONTENTS["files/f001.txt"])).startswith("packs/")
    with repo.lock(exclusive=False), repo.objects.batch():  # new runs pack
        repo.put_bytes(b"written after the upgrade")
    assert repo.objects.location(sha(b"written after the upgrade")).startswith("packs/")
    again = upgrade(Repository.open(loose_repo), packs=True)  # nothing left to do
    assert again.packs_before and again.repacked == 0
    assert any("already on" in line for line in again.lines())
    assert json.loads(json.dumps(again.to_dict()))["packs"] is True


def test_no_repack_only_declares_packs(loose_repo: Path) -> None:
    before = loose_objects(loose_repo)
    report = upgrade(Repository.open(loose_repo), packs=True, repack=False)
    assert report.packs and report.repacked == 0
    assert loose_objects(loose_repo) == before
    assert Repository.open(loose_repo).config.packs
    every_file_reads(loose_repo)


def test_a_dry_run_changes_nothing_and_says_what_it_would_do(loose_repo: Path) -> None:
    before = tree_bytes(loose_repo)
    report = upgrade(Repository.open(loose_repo), packs=True, dry_run=True)
    assert report.dry_run and report.packs and report.repacked == len(loose_objects(loose_repo)) - 1
    assert any("would pack" in line for line in report.lines())
    assert tree_bytes(loose_repo) == before


def test_every_write_passes_the_guard(loose_repo: Path) -> None:
    """A guard that refuses (a dry-run guard given to a real run) stops the first write:
    nothing is written."""
    before = tree_bytes(loose_repo)
    with pytest.raises(WriteRefused):
        upgrade(Repository.open(loose_repo), packs=True, guard=WriteGuard(dry_run=True))
    assert tree_bytes(loose_repo) == before


def test_without_packs_a_format_2_repository_is_left_alone_with_a_hint(loose_repo: Path) -> None:
    before = tree_bytes(loose_repo)
    report = upgrade(Repository.open(loose_repo))
    assert not report.packs and "--packs" in report.lines()[-1]
    assert tree_bytes(loose_repo) == before


def test_a_format_1_repository_gets_format_2_and_packs_in_one_go(tmp_path: Path) -> None:
    path = tmp_path / "repo"
    shutil.copytree(FORMAT1, path)
    (path / "locks").mkdir(exist_ok=True)
    report = upgrade(Repository.open(path), packs=True)
    assert report.from_version == 1 and len(report.converted) == 2 and report.packs
    config = json.loads((path / "config.json").read_text())
    assert config["version"] == 2 and "packs" in config
    assert not list((path / "snapshots").glob("*.json"))
    repo = every_file_reads(path)
    assert len(repo.list_snapshots()) == 2


def test_a_damaged_loose_object_stays_loose_and_is_named(loose_repo: Path) -> None:
    repo = Repository.open(loose_repo)
    digest = sha(CONTENTS["files/f003.txt"])
    flip_last_byte(repo, digest)
    warnings: list[str] = []
    report = upgrade(Repository.open(loose_repo, on_warning=warnings.append), packs=True)
    assert report.left_loose == [digest] and digest in warnings[0]
    assert Repository.open(loose_repo).objects.location(digest).startswith("objects/")


def test_an_encrypted_repository_without_its_key_is_refused_before_any_write(
    loose_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not Repository.open(loose_repo).encrypted:
        pytest.skip("an encrypted repository only (AMLPORT_TEST_ENCRYPT=1)")
    monkeypatch.setattr(KeySource, "default_key", None)
    before = tree_bytes(loose_repo)
    with pytest.raises(UsageError, match="needs its key"):
        upgrade(Repository.open(loose_repo), packs=True)
    assert tree_bytes(loose_repo) == before
    upgrade(Repository.open(loose_repo), packs=True, repack=False)  # only the config
    assert Repository.open(loose_repo).config.packs


class Killed(BaseException):
    pass


@pytest.mark.parametrize("step", ["config", "packs", "index", "deletes"])
def test_an_upgrade_killed_at_any_step_leaves_a_repository_that_verifies(
    loose_repo: Path, monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    repo = Repository.open(loose_repo)
    calls = 0

    def kill_after(method: Any, n: int) -> Any:
        def killed(*args: Any, **kw: Any) -> Any:
            nonlocal calls
            if isinstance(args[0], str) and not args[0].startswith(("objects/", "packs/")):
                # a lock's own file
                return method(*args, **kw)
            calls += 1
            if calls > n:
                raise Killed(step)
            return method(*args, **kw)

        return killed

    if step == "config":  # the config is written, nothing packed yet
        monkeypatch.setattr(repo.objects.store, "put_once", kill_after(repo.store.put_once, 0))
    elif step == "packs":  # a pack written, the index not
        monkeypatch.setattr(repo.objects, "write_index_piece", kill_after(None, 0))
    elif step == "index":  # the index written, no loose copy deleted
        monkeypatch.setattr(repo.objects.store, "delete", kill_after(repo.store.delete, 0))
    else:  # some loose copies deleted
        monkeypatch.setattr(repo.objects.store, "delete", kill_after(repo.store.delete, 3))
    with pytest.raises(Killed):
        upgrade(repo, packs=True)
    assert Repository.open(loose_repo).config.packs  # the config came first
    every_file_reads(loose_repo)
    upgrade(Repository.open(loose_repo), packs=True)  # a second run finishes it
    left = loose_objects(loose_repo)
    assert len(left) == 1 and left[0].stat().st_size >= packs.PACK_BELOW
    every_file_reads(loose_repo)
    Repository.open(loose_repo).prune()  # a killed run's unindexed pack is garbage
    every_file_reads(loose_repo)


# --- the command ----------------------------------------------------------------------------

SCHEMA = Path(__file__).resolve().parents[2] / "src/amlport/cli/schemas/repo-upgrade.json"


def test_the_command_with_dry_run_json_and_messages(loose_repo: Path) -> None:
    import jsonschema
    from helpers.cliutil import amlport

    schema = json.loads(SCHEMA.read_text())
    before = tree_bytes(loose_repo)
    dry = amlport("repo", "upgrade", str(loose_repo), "--packs", "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    jsonschema.validate(doc, schema)
    assert doc["dry_run"] and doc["packs"] and not doc["packs_before"]
    assert doc["repacked_objects"] == len(loose_objects(loose_repo)) - 1
    assert tree_bytes(loose_repo) == before
    done = amlport("repo", "upgrade", str(loose_repo), "--packs")
    assert done.returncode == 0, done.stderr
    assert "pack files: turned on" in done.stdout and "packed " in done.stdout
    again = amlport("repo", "upgrade", str(loose_repo), "--packs", "--json")
    assert again.returncode == 0, again.stderr
    doc = json.loads(again.stdout)
    jsonschema.validate(doc, schema)
    assert doc["packs_before"] and doc["repacked_objects"] == 0
    said = amlport("repo", "upgrade", str(loose_repo), "--packs")
    assert "already on" in said.stdout
    usage = amlport("repo", "upgrade", str(loose_repo), "--no-repack")
    assert usage.returncode == 2 and "--packs" in usage.stderr
    helped = amlport("repo", "upgrade", "--help")
    assert "--packs" in helped.stdout and "--no-repack" in helped.stdout
