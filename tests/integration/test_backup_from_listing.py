"""An unchanged re-backup is decided from its listing (issues 18 and 19).

When the listing, the source, the options, the secret rules and amlport's version are those
the previous snapshot recorded, the backup writes a new root naming the previous snapshot's
pieces, and walks, plans and reads nothing. Proof that this is the snapshot a full run
writes: for every shipped fixture, the same backup is made from the listing and with
``--force`` from the same repository state, and the two roots name the same pieces (only
what the run did, its stats and the listing record's "decided", differ). Any change of an
input defeats it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.azurite import fixture_workspace_dirs
from helpers.backup import WS, cli, night
from helpers.bundle import object_span

from amlport.backup import BackupRequest, BackupResult, run_backup
from amlport.backup import fingerprint as fp
from amlport.bundle import Repository
from amlport.storage.local import LocalSource, UnreadableFile

FIXTURES = [p.name for p in fixture_workspace_dirs()]
STORE = "azureml-blobstore-ecd26aa2-5440-4e86-8e7f-527cb96ef823"
UPLOAD = "LocalUpload/887fe322eb7658f755904d6adcb13209/daily-bike-share.csv"


def backup_local(src: Path, repo: Path, when: int = 0, **kw: Any) -> BackupResult:
    return run_backup(LocalSource(src), repo, BackupRequest(now=night(when), **kw))


def root_of(repo: Path, snapshot: str | None) -> dict[str, Any]:
    assert snapshot is not None
    with Repository.open(repo) as store:
        return store.snapshots.read_root(snapshot)


def what_it_holds(root: dict[str, Any]) -> dict[str, Any]:
    """A root without what records the run itself (stats, listing record)."""
    header = {k: v for k, v in root["manifest"].items() if k not in ("stats", fp.FIELD)}
    return {**root, "manifest": header}


def file_of(src: Path, blob: str) -> Path:
    return next(p for p in src.rglob("*") if p.is_file() and p.as_posix().endswith(blob))


@pytest.mark.parametrize("name", FIXTURES)
def test_from_the_listing_is_the_snapshot_a_full_run_writes(name: str, tmp_path: Path) -> None:
    src = shutil.copytree(WS / name, tmp_path / "src")
    repo, forced = tmp_path / "repo", tmp_path / "forced"
    first = backup_local(src, repo)
    assert not first.from_listing
    shutil.copytree(repo, forced)  # the same repository state, twice
    quick = backup_local(src, repo, when=1)
    full = backup_local(src, forced, when=1, force=True)
    assert quick.from_listing and not full.from_listing
    assert quick.parent == full.parent == first.snapshot_id
    a, b = root_of(repo, quick.snapshot_id), root_of(forced, full.snapshot_id)
    assert what_it_holds(a) == what_it_holds(b)  # the same lists, pieces, header, time
    assert a["lists"] == root_of(repo, first.snapshot_id)["lists"]
    assert a["manifest"][fp.FIELD]["fingerprint"] == b["manifest"][fp.FIELD]["fingerprint"]
    assert a["manifest"][fp.FIELD]["decided"] == "listing"
    # what the run reports: the previous snapshot's counts and warnings, nothing read
    assert quick.exit_code == full.exit_code and quick.assets == full.assets
    assert sorted(quick.export.warnings) == sorted(full.export.warnings)
    assert sorted(quick.export.skipped) == sorted(full.export.skipped)
    assert quick.changes is not None and full.changes is not None
    assert quick.changes.to_dict() | {"a": "", "b": ""} == full.changes.to_dict() | {
        "a": "",
        "b": "",
    }
    stats = quick.export.stats
    assert stats is not None and stats.read_bytes == 0 and stats.new_objects == 0
    with Repository.open(repo) as store, Repository.open(forced) as other:
        loaded = store.load_snapshot(str(quick.snapshot_id))
        assert loaded.files == other.load_snapshot(str(full.snapshot_id)).files
        assert loaded.parent == first.snapshot_id and loaded.tags == []
        assert store.verify().ok


def _touch(src: Path) -> None:
    path = file_of(src, UPLOAD)
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))


def _grow(src: Path) -> None:
    path = file_of(src, UPLOAD)
    path.write_bytes(path.read_bytes() + b"2011-12-31,1,1,0\n")


def _add(src: Path) -> None:
    (src / STORE / "LocalUpload" / "new").mkdir(parents=True)
    (src / STORE / "LocalUpload" / "new" / "x.csv").write_text("a\n1\n")


def _remove(src: Path) -> None:
    file_of(src, UPLOAD).unlink()


def _hostile(src: Path) -> None:
    folder = src / STORE / "LocalUpload" / "[h]..x"
    deep = folder / "/".join(["d" * 200] * 4)  # a name of more than 1,024 characters
    deep.mkdir(parents=True)
    (deep / "ctl\x01\x1b[31m\r.txt").write_bytes(b"x")


CHANGES = {"mtime": _touch, "size": _grow, "new": _add, "removed": _remove, "hostile": _hostile}


@pytest.fixture
def bikeshare(tmp_path: Path) -> Path:
    src = shutil.copytree(WS / "sdk-bikeshare", tmp_path / "src")
    assert (src / STORE).is_dir(), sorted(os.listdir(src))
    return src


@pytest.mark.parametrize("change", sorted(CHANGES))
def test_a_change_of_the_listing_defeats_it(change: str, bikeshare: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    backup_local(bikeshare, repo)
    assert backup_local(bikeshare, repo, 1).from_listing
    CHANGES[change](bikeshare)
    after = backup_local(bikeshare, repo, 2)
    assert not after.from_listing
    files = after.changes.files if after.changes is not None else {}
    if change == "mtime":  # a new mtime, the same bytes: walked, and nothing changed
        assert files["changed"] + files["added"] + files["removed"] == 0
    else:
        kind = {"size": "changed", "new": "added", "removed": "removed", "hostile": "added"}
        assert files[kind[change]] >= 1
    assert backup_local(bikeshare, repo, 3).from_listing  # and the next one is decided again


def test_a_renamed_container_defeats_it(bikeshare: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    backup_local(bikeshare, repo)
    yaml_file = bikeshare / "workspace.yaml"
    text = yaml_file.read_text(encoding="utf-8")
    assert STORE in text
    yaml_file.write_text(text.replace(STORE, "azureml-blobstore-renamed"), encoding="utf-8")
    (bikeshare / STORE).rename(bikeshare / "azureml-blobstore-renamed")
    assert not backup_local(bikeshare, repo, 1).from_listing


def test_an_option_change_defeats_it(bikeshare: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    backup_local(bikeshare, repo)
    narrow = backup_local(bikeshare, repo, 1, include=frozenset({"models"}))
    assert not narrow.from_listing  # another selection: another fingerprint
    assert backup_local(bikeshare, repo, 2, include=frozenset({"models"})).from_listing
    assert not backup_local(bikeshare, repo, 3).from_listing  # back to the whole workspace
    assert backup_local(
        bikeshare, repo, 4, tags=["other-tag"], workers=2
    ).from_listing  # not inputs


def test_another_amlport_version_defeats_it(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    backup_local(bikeshare, repo)
    monkeypatch.setattr(fp, "__version__", "9.9.9")
    assert not backup_local(bikeshare, repo, 1).from_listing
    assert backup_local(bikeshare, repo, 2).from_listing


def test_other_secret_rules_defeat_it(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    backup_local(bikeshare, repo)
    monkeypatch.setattr(fp, "rules_digest", lambda: "0" * 64)
    assert not backup_local(bikeshare, repo, 1).from_listing


def test_a_run_that_failed_a_read_is_not_a_base(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    read_bytes, open_stream = LocalSource.read_bytes, LocalSource.open_stream

    def failing_read(self: LocalSource, container: str, name: str, **kw: Any) -> bytes:
        if name == UPLOAD:
            raise UnreadableFile(f"cannot read {container}/{name}: test")
        return read_bytes(self, container, name, **kw)

    def failing_stream(self: LocalSource, container: str, name: str) -> Any:
        if name == UPLOAD:
            raise UnreadableFile(f"cannot read {container}/{name}: test")
        return open_stream(self, container, name)

    monkeypatch.setattr(LocalSource, "read_bytes", failing_read)
    monkeypatch.setattr(LocalSource, "open_stream", failing_stream)
    first = backup_local(bikeshare, repo)
    assert first.export.stats is not None and first.export.stats.failures
    monkeypatch.undo()
    second = backup_local(bikeshare, repo, 1)
    assert not second.from_listing  # the failed file is read this time
    assert second.export.stats is not None and not second.export.stats.failures
    assert backup_local(bikeshare, repo, 2).from_listing


def test_a_format_1_repository(bikeshare: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    Repository.init(repo, version=1).close()
    first = backup_local(bikeshare, repo)
    second = backup_local(bikeshare, repo, 1)
    assert second.from_listing and second.parent == first.snapshot_id
    with Repository.open(repo) as store:
        assert store.snapshots.format_of(str(second.snapshot_id)) == 1
        a = store.load_snapshot(str(first.snapshot_id))
        b = store.load_snapshot(str(second.snapshot_id))
        assert (a.files, a.assets, a.lineage, a.rewrites) == (
            b.files,
            b.assets,
            b.lineage,
            b.rewrites,
        )
        assert b.parent == first.snapshot_id and b.created != a.created


def test_the_cli_says_so_and_force_walks(bikeshare: Path, tmp_path: Path) -> None:
    import json

    repo = str(tmp_path / "repo")
    assert cli("backup", str(bikeshare), "--repo", repo).returncode in (0, 1)
    quick = cli("backup", str(bikeshare), "--repo", repo, "--json")
    assert json.loads(quick.stdout)["from_listing"] is True
    text = cli("backup", str(bikeshare), "--repo", repo)
    assert "the listing is the previous snapshot's" in text.stdout
    forced = cli("backup", str(bikeshare), "--repo", repo, "--force", "--json")
    assert json.loads(forced.stdout)["from_listing"] is False
    assert cli("verify", repo).returncode == 0


def test_lists_read_ahead_serve_only_the_snapshot_decided_against(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous snapshot's lists are read while the listing is on its way, for the
    snapshot the source names before its listing; the decision takes them only if they are
    those of the snapshot it decides against (the identity record may name another)."""
    from amlport.backup import run as backup_run

    repo = tmp_path / "repo"
    first = backup_local(bikeshare, repo)
    honest = backup_local(bikeshare, repo, 1)
    assert honest.from_listing
    guessed = backup_run._read_ahead

    def other_snapshot(repo_: Repository, src: Any) -> Any:
        got = guessed(repo_, src)
        assert got is not None and got.snapshot == honest.snapshot_id  # the newest, read
        return backup_run._Lists("0" * 64, got.header, [("sha256:" + "0" * 64, 1)], ["[x]..\x1b"])

    monkeypatch.setattr(backup_run, "_read_ahead", other_snapshot)
    again = backup_local(bikeshare, repo, 2)
    assert again.from_listing and again.parent == honest.snapshot_id
    assert sorted(again.export.warnings) == sorted(honest.export.warnings)
    assert root_of(repo, again.snapshot_id)["lists"] == root_of(repo, first.snapshot_id)["lists"]

    def other_fingerprint(repo_: Repository, src: Any) -> Any:
        got = guessed(repo_, src)
        header = {**got.header, fp.FIELD: {"scheme": fp.SCHEME, "fingerprint": "sha256:0"}}
        return backup_run._Lists(got.snapshot, header, got.files, got.warnings)

    monkeypatch.setattr(backup_run, "_read_ahead", other_fingerprint)
    walked = backup_local(bikeshare, repo, 3)  # its header (as read ahead) records another
    assert not walked.from_listing
    assert walked.changes is not None and not walked.changes.different


def test_a_read_ahead_that_fails_decides_nothing(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read of the previous snapshot's lists that fails before the listing is only a
    guess that failed: the same reads after the listing decide, as without it."""
    from amlport.backup import run as backup_run
    from amlport.errors import IntegrityError

    repo = tmp_path / "repo"
    first = backup_local(bikeshare, repo)
    read_lists, calls = backup_run._read_lists, []

    def failing_first(repo_: Repository, info: Any, digest: str | None) -> Any:
        calls.append(digest)
        if len(calls) == 1:
            raise IntegrityError("snapshot root [x]/..: test")
        return read_lists(repo_, info, digest)

    monkeypatch.setattr(backup_run, "_read_lists", failing_first)
    quick = backup_local(bikeshare, repo, 1)
    assert calls[0] is None and calls[1] is not None  # read ahead, then after the listing
    assert quick.from_listing and quick.parent == first.snapshot_id
    assert root_of(repo, quick.snapshot_id)["lists"] == root_of(repo, first.snapshot_id)["lists"]


def test_a_bad_include_is_refused_before_the_source_is_opened(tmp_path: Path) -> None:
    missing = tmp_path / "no[such]..source"
    res = cli("backup", str(missing), "--repo", str(tmp_path / "repo"), "--include", "bogus")
    assert res.returncode == 2
    assert "bogus" in res.stderr and "no[such]" not in res.stderr


@pytest.mark.azurite
def test_an_azure_source_over_azurite(azurite: Any, tmp_path: Path) -> None:
    """The same over an Azure source: an ETag is the blob's version (a blob written again
    with the same bytes is another ETag: walked again)."""
    import uuid

    from helpers import azurite as az

    from amlport.storage.opener import StorageAuth, open_source

    descriptor, store, _ = az.upload_renamed_workspace(
        azurite.source, WS / "sdk-bikeshare", tmp_path, f"fl{uuid.uuid4().hex[:10]}"
    )
    repo, forced = tmp_path / "repo", tmp_path / "forced"
    auth = StorageAuth(connection_string=azurite.source.connection_string)

    def azure_backup(target: Path, when: int, **kw: Any) -> BackupResult:
        with open_source(azurite.source.url, workspace_file=descriptor, auth=auth) as src:
            return run_backup(src, target, BackupRequest(now=night(when), **kw))

    first = azure_backup(repo, 0)
    shutil.copytree(repo, forced)
    quick, full = azure_backup(repo, 1), azure_backup(forced, 1, force=True)
    assert quick.from_listing and not full.from_listing
    a, b = root_of(repo, quick.snapshot_id), root_of(forced, full.snapshot_id)
    assert what_it_holds(a) == what_it_holds(b)
    assert a["lists"] == root_of(repo, first.snapshot_id)["lists"]
    blobs = azurite.source.service_client().get_container_client(store)
    same = blobs.download_blob(UPLOAD).readall()
    blobs.upload_blob(UPLOAD, same, overwrite=True)  # the same bytes, a new ETag
    again = azure_backup(repo, 2)
    assert not again.from_listing
    assert again.changes is not None and not again.changes.different
    # a hostile new name (Azurite answers 500 to a listing holding a control character:
    # those are in the local and unit tests)
    blobs.upload_blob("LocalUpload/[x]..y/" + "n" * 1010, b"x")
    hostile = azure_backup(repo, 3)
    assert not hostile.from_listing
    assert hostile.changes is not None and hostile.changes.files["added"] == 1
    assert azure_backup(repo, 4).from_listing


def test_a_missing_or_cut_short_object_is_stored_again(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The previous snapshot's objects must be stored whole for its lists to be named again
    (the check every snapshot write makes); otherwise the backup walks and stores them.
    About loose object files (a cut-short file is replaced by ``put_once``): the repository
    is made without packs; packs: the next test."""
    monkeypatch.setenv("AMLPORT_PACKS", "0")
    repo = tmp_path / "repo"
    first = backup_local(bikeshare, repo)
    with Repository.open(repo) as store:
        assert not store.objects.packing
        entry = next(f for f in store.load_snapshot(str(first.snapshot_id)).files if f.size > 100)
        path = store.object_path(entry.digest)
    path.write_bytes(path.read_bytes()[:50])  # the same name, fewer bytes
    again = backup_local(bikeshare, repo, 1)
    assert not again.from_listing and again.exit_code in (0, 1)
    path.unlink()
    assert not backup_local(bikeshare, repo, 2).from_listing  # missing: stored again too
    assert backup_local(bikeshare, repo, 3).from_listing
    with Repository.open(repo) as store:
        assert store.verify().ok


def test_a_cut_short_or_missing_pack_is_not_trusted_and_its_objects_are_stored_again(
    bikeshare: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack not at the size its index gives (cut short, or gone) holds no object that counts
    as stored: the next backup walks and stores its objects again (loose), readers take the
    loose copies, and verify still names the damaged pack. Before, the pack index alone said
    "stored" and a backup named the lists again over objects no one could read."""
    monkeypatch.setenv("AMLPORT_PACKS", "1")  # a repository with packs (opt-in for now)
    repo = tmp_path / "repo"
    first = backup_local(bikeshare, repo)
    with Repository.open(repo) as store:
        assert store.objects.packing
        files = store.load_snapshot(str(first.snapshot_id)).files
        entry = next(f for f in files if f.size > 100)
        path, offset, length = object_span(store, entry.digest)
        assert "packs" in path.parts
    path.write_bytes(path.read_bytes()[: offset + length - 1])  # one byte short of its end
    again = backup_local(bikeshare, repo, 1)
    assert not again.from_listing and again.exit_code in (0, 1)
    with Repository.open(repo) as store:
        for f in store.load_snapshot(str(again.snapshot_id)).files:
            assert store.objects.get_bytes(f.digest, f.size) is not None  # every one reads
        assert store.objects.location(entry.digest).startswith("objects/")  # loose again
        report = store.verify()
        assert not report.ok and path.name in str(report.to_dict())  # the pack is named
    assert backup_local(bikeshare, repo, 2).from_listing  # whole again: trusted
    path.unlink()
    assert backup_local(bikeshare, repo, 3).from_listing  # its objects are loose now
