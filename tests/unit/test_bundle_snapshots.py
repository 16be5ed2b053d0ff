"""Repositories and snapshots: open/init, write last, load by prefix, damage, verify."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from helpers.bundle import (
    OTHER_SOURCE,
    SOURCE,
    at,
    flip_last_byte,
    manifest,
    new_repo,
    object_span,
    plain_only,
    sha,
    snapshot,
)

from amlport.bundle import Repository, envelope
from amlport.bundle.codec import META_DOMAIN
from amlport.bundle.verification import CORRUPT_OBJECT, CORRUPT_SNAPSHOT, MISSING_OBJECT
from amlport.errors import AmlportError, ExitCode, IntegrityError, SourceNotFound, UsageError
from amlport.model.manifest import FileEntry, Manifest, RewriteRecord

# --- opening -----------------------------------------------------------------------------


def test_init_creates_the_layout_and_open_reads_it(tmp_path: Path) -> None:
    repo = Repository.init(tmp_path / "r")
    for sub in ("config.json", "objects/sha256", "snapshots", "locks", "index"):
        assert (repo.path / sub).exists()
    config = json.loads((repo.path / "config.json").read_text())
    assert config["format"] == "amlport.repository" and config["version"] == 2
    assert Repository.open(repo.path).id == repo.id == config["id"]


def test_init_refuses_a_non_empty_directory_and_an_existing_repository(tmp_path: Path) -> None:
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="not an empty directory"):
        Repository.init(tmp_path / "busy")
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    repo = new_repo(tmp_path)
    with pytest.raises(UsageError, match="already"):
        Repository.init(repo.path)
    (tmp_path / "empty").mkdir()
    assert Repository.init(tmp_path / "empty").path == tmp_path / "empty"


def test_open_says_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFound, match="no repository"):
        Repository.open(tmp_path / "missing")
    (tmp_path / "plain").mkdir()
    with pytest.raises(UsageError, match="not an amlport repository"):
        Repository.open(tmp_path / "plain")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UsageError):
        Repository.open(tmp_path / "file")


def test_open_refuses_an_unknown_repository_format(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    config = json.loads((repo.path / "config.json").read_text())
    (repo.path / "config.json").write_text(json.dumps({**config, "version": 3}))
    with pytest.raises(IntegrityError, match="format 3 is not supported"):
        Repository.open(repo.path)
    (repo.path / "config.json").write_text("{not json")
    with pytest.raises(IntegrityError, match="not valid JSON"):
        Repository.open(repo.path)


def test_open_or_init_opens_or_creates(tmp_path: Path) -> None:
    first = Repository.open_or_init(tmp_path / "r")
    assert Repository.open_or_init(tmp_path / "r").id == first.id


# --- writing -----------------------------------------------------------------------------


def test_snapshot_id_is_the_hash_of_the_stored_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, version=1)
    m = manifest(repo, {"files/a": b"a"})
    sid = repo.write_snapshot(m)
    raw = (repo.path / "snapshots" / f"{sid}.json").read_bytes()
    assert hashlib.sha256(raw).hexdigest() == sid == m.snapshot_id
    assert m.created.endswith("Z")  # set on write
    loaded = repo.load_snapshot(sid)
    assert loaded.snapshot_id == sid and loaded.to_dict() == m.to_dict()


def test_snapshot_referencing_a_missing_object_is_not_written(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, {"files/a": b"a"})
    m.files.append(FileEntry("files/ghost", sha(b"not stored"), 10))
    with pytest.raises(IntegrityError, match="files/ghost"):
        repo.write_snapshot(m)
    assert repo.list_snapshots() == []


def test_inconsistent_manifest_is_not_written(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, {"files/a": b"a"})
    m.assets[0].files.append("files/not-listed")
    with pytest.raises(IntegrityError, match="files/not-listed"):
        repo.write_snapshot(m)
    m = manifest(repo, {"files/a": b"a"})
    m.files.append(m.files[0])
    with pytest.raises(IntegrityError, match="more than once"):
        repo.write_snapshot(m)
    assert repo.list_snapshots() == []


def test_manifest_with_a_secret_is_refused_without_echoing_it(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, {"files/a": b"a"})
    signature = "sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
    m.rewrites.append(RewriteRecord("files/a", "/uri", f"https://x/c/b?sv=1&{signature}", "y", "r"))
    with pytest.raises(AmlportError, match="secret-like") as err:
        repo.write_snapshot(m)
    assert "Zm9vYmFy" not in str(err.value)
    assert repo.list_snapshots() == []
    m.rewrites[0].before = "https://x/c/b?sv=1&sig=REDACTED"  # what the scrubber leaves
    m.warnings.append("AccountKey=REDACTED removed from files/a")
    assert repo.write_snapshot(m)


def test_write_keeps_a_given_creation_time(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"a"}, created=at(days=3))
    assert repo.load_snapshot(sid).created == at(days=3)


# --- listing and loading -----------------------------------------------------------------


def test_list_is_sorted_by_time_with_counts(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    late = snapshot(repo, {"files/a": b"a", "files/b": b"bb"}, created=at(2), tags=("t",))
    early = snapshot(repo, {"files/a": b"a"}, created=at(1), source=OTHER_SOURCE)
    infos = repo.list_snapshots()
    assert [i.id for i in infos] == [early, late]
    assert infos[1].files == 2 and infos[1].size == 3 and infos[1].tags == ("t",)
    assert infos[1].counts == {"model": 1} and infos[1].assets == 1
    assert infos[0].account == "azmlother0001" and infos[1].workspace == "autoprice-dev"
    assert infos[1].short_id == late[:16]


def test_latest_snapshot_is_per_source(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    snapshot(repo, {"files/a": b"1"}, created=at(1))
    newest = snapshot(repo, {"files/a": b"2"}, created=at(2))
    snapshot(repo, {"files/a": b"3"}, created=at(3), source=OTHER_SOURCE)
    key = Manifest(source=SOURCE).source_key
    latest = repo.latest_snapshot(key)
    assert latest is not None and latest.snapshot_id == newest
    assert repo.latest_snapshot("nobody-000000000000") is None


def test_prefix_lookup_unique_ambiguous_missing_and_invalid(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    # 17 snapshots: two must share a first hex digit (pigeonhole).
    ids = [snapshot(repo, {"files/a": bytes([i])}) for i in range(17)]
    firsts = [i[0] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(UsageError, match="ambiguous") as err:
        repo.load_snapshot(shared)
    assert err.value.hint == "give more characters of the id"
    for sid in ids:
        assert repo.load_snapshot(sid[:12]).snapshot_id == sid
        assert repo.load_snapshot(sid.upper()).snapshot_id == sid
    absent = next(c for c in "0123456789abcdef" * 2 if all(not i.startswith(c * 3) for i in ids))
    with pytest.raises(UsageError, match="no snapshot"):
        repo.load_snapshot(absent * 3)
    for bad in ("", "xyz", "../config", "a" * 65):
        with pytest.raises(UsageError):
            repo.load_snapshot(bad)


# --- damage ------------------------------------------------------------------------------


@plain_only
def test_format_2_snapshot_id_names_the_root_and_reads_back(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, {"files/a": b"a"})
    sid = repo.write_snapshot(m)
    stored = (repo.path / "snapshots" / sid).read_bytes()
    plain = envelope.unwrap(stored, where="test", limit=1 << 20)
    assert hashlib.sha256(META_DOMAIN + plain).hexdigest() == sid == m.snapshot_id
    assert json.loads(plain)["format"] == "amlport.snapshot/2"
    assert not list((repo.path / "snapshots").glob("*.json"))
    loaded = repo.load_snapshot(sid)
    assert loaded.snapshot_id == sid and loaded.to_dict() == m.to_dict()


@plain_only
def test_format_2_damaged_root_or_piece_is_an_integrity_error(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"a"})
    root = repo.path / "snapshots" / sid
    raw = root.read_bytes()
    root.write_bytes(raw[:-3])
    with pytest.raises(IntegrityError, match="damaged"):
        repo.load_snapshot(sid)
    root.write_bytes(raw)
    data, pieces = repo.snapshots.pieces(sid)
    assert data == {sha(b"a")} and pieces
    for piece in sorted(pieces):  # damaged where it is: in its pack (the default) or loose
        path = object_span(repo, piece)[0]
        good = flip_last_byte(repo, piece)
        with pytest.raises(IntegrityError) as err:
            repo.load_snapshot(sid)
        assert err.value.exit_code == ExitCode.INTEGRITY
        assert not repo.verify().ok
        path.write_bytes(good)
    assert repo.verify().ok


def test_hand_edited_or_truncated_snapshot_is_an_integrity_error(tmp_path: Path) -> None:
    repo = new_repo(tmp_path, version=1)
    sid = snapshot(repo, {"files/a": b"a"})
    path = repo.path / "snapshots" / f"{sid}.json"
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"size": 1', b'"size": 2'))
    with pytest.raises(IntegrityError, match=f"snapshot {sid[:16]} is damaged") as err:
        repo.load_snapshot(sid)
    assert err.value.exit_code == ExitCode.INTEGRITY
    path.write_bytes(raw[:100])
    with pytest.raises(IntegrityError, match="damaged"):
        repo.load_snapshot(sid[:8])
    with pytest.raises(IntegrityError):
        repo.list_snapshots()


def plant(repo: Repository, data: dict[str, object]) -> str:  # format 1: a manifest file
    """Store a manifest file under its true hash, bypassing the writer's checks."""
    raw = json.dumps(data).encode()
    sid = hashlib.sha256(raw).hexdigest()
    (repo.path / "snapshots" / f"{sid}.json").write_bytes(raw)
    return sid


def test_renamed_to_match_but_mistyped_manifest_names_the_field(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = manifest(repo, {"files/a": b"a"}, created=at()).to_dict()
    data["files"][0]["size"] = "one"
    sid = plant(repo, data)
    with pytest.raises(IntegrityError, match=rf"snapshot {sid[:16]}.*files\[0\].*'size'"):
        repo.load_snapshot(sid)


def test_unknown_major_in_repository_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = manifest(repo, {"files/a": b"a"}, created=at()).to_dict()
    data["schema"] = "amlport.bundle/2"
    sid = plant(repo, data)
    with pytest.raises(IntegrityError, match=r"amlport\.bundle/2.*supported: amlport\.bundle/1"):
        repo.load_snapshot(sid)
    report = repo.verify()
    assert not report.ok and report.problems[0].kind == CORRUPT_SNAPSHOT


def test_newer_minor_snapshot_loads(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = manifest(repo, {"files/a": b"a"}, created=at()).to_dict()
    data.update(schema="amlport.bundle/1.3", signatures={"signed": False})
    sid = plant(repo, data)
    assert repo.load_snapshot(sid).extra == {"signatures": {"signed": False}}
    assert repo.verify().ok


# --- verify ------------------------------------------------------------------------------


def test_verify_passes_on_a_good_repository(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    snapshot(repo, {"files/a": b"a", "files/b": b"b"})
    snapshot(repo, {"files/a": b"a", "files/c": b"c"})
    seen: list[tuple[str, int, int]] = []
    report = repo.verify(progress=lambda *a: seen.append(a))
    assert report.ok and report.objects_checked == 3 and len(report.snapshots) == 2
    assert seen[-1] == ("verify", 3, 3)
    assert report.to_dict()["ok"] is True


def test_verify_reports_missing_and_corrupt_objects_with_their_paths(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/model.pkl": b"weights", "files/conda.yaml": b"deps"})
    repo.object_path(sha(b"weights")).unlink()
    path = repo.object_path(sha(b"deps"))
    path.write_bytes(b"deqs")
    report = repo.verify()
    assert not report.ok
    problems = {p.kind: p for p in report.problems}
    missing, corrupt = problems[MISSING_OBJECT], problems[CORRUPT_OBJECT]
    assert missing.digest == sha(b"weights")
    assert missing.paths == (f"{sid[:16]}:files/model.pkl",)
    assert "files/model.pkl" in missing.message
    assert corrupt.digest == sha(b"deps") and "files/conda.yaml" in corrupt.message


def test_verify_names_every_path_of_a_damaged_object_in_snapshot_and_file_order(
    tmp_path: Path,
) -> None:
    """The paths are collected in a second read, for the damaged objects only (memory):
    the same paths, in the same order, as when every path was kept while reading."""
    repo = new_repo(tmp_path)
    first = snapshot(repo, {"files/b": b"shared", "files/a": b"shared", "files/c": b"ok"})
    second = snapshot(repo, {"files/z": b"shared", "files/d": b"ok2"})
    ids = repo.snapshots.ids()
    repo.object_path(sha(b"shared")).unlink()
    report = repo.verify()
    (missing,) = report.problems
    assert missing.kind == MISSING_OBJECT and missing.digest == sha(b"shared")
    by_id = {first: ["files/a", "files/b"], second: ["files/z"]}
    assert missing.paths == tuple(f"{s[:16]}:{p}" for s in ids for p in by_id[s])
    assert missing.message == (
        f"object {sha(b'shared')} is missing (used by {missing.paths[0]} and 2 more)"
    )
    assert report.objects_checked == 3 and report.to_dict()["problems"][0]["paths"] == list(
        missing.paths
    )


def test_verify_one_snapshot_checks_only_its_objects(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    good = snapshot(repo, {"files/a": b"a"})
    snapshot(repo, {"files/b": b"b"})
    repo.object_path(sha(b"b")).unlink()
    assert repo.verify(good[:10]).ok
    assert not repo.verify().ok


@plain_only
def test_iter_files_read_file_and_extract(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    contents = {"files/m/MLmodel": b"flavors: {}", "files/m/conda.yaml": b"x", "files/z": b"z"}
    m = repo.load_snapshot(snapshot(repo, contents))
    assert [(e.path, p.read_bytes()) for e, p in repo.iter_files(m)] == sorted(contents.items())
    assert repo.read_file(m, "files/m/MLmodel") == b"flavors: {}"
    with pytest.raises(UsageError):
        repo.read_file(m, "files/nope")
    written = repo.extract_files(m, tmp_path / "out", under="files/m")
    assert sorted(p.name for p in written) == ["MLmodel", "conda.yaml"]
    assert (tmp_path / "out" / "MLmodel").read_bytes() == b"flavors: {}"


def test_a_secret_late_in_a_streamed_manifest_leaves_no_file_behind(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, {f"files/f{i:04d}": b"%d" % i for i in range(300)})
    last = max(f.path for f in m.files)
    signature = "sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
    m.rewrites.append(RewriteRecord(last, "/uri", f"https://x/c/b?{signature}", "y", "r"))
    with pytest.raises(AmlportError, match="secret-like"):
        repo.write_snapshot(m)
    # Hundreds of entries were staged before the secret came up: none of it may remain.
    assert sorted(p.name for p in (repo.path / "snapshots").iterdir()) == []
    assert m.snapshot_id is None


def test_an_entry_the_reader_would_refuse_is_not_written(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, {"files/a": b"a", "files/b": b"b"})
    m.files[1].size = -1
    with pytest.raises(IntegrityError, match="size"):
        repo.write_snapshot(m)
    assert list((repo.path / "snapshots").iterdir()) == []
