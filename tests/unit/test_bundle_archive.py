"""pack/unpack: round trip, determinism, and hostile archives rejected with nothing written."""

from __future__ import annotations

import hashlib
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.archive import member, write_tar
from helpers.bundle import (
    at,
    manifest,
    new_repo,
    plain_only,
    sha,
    snapshot,
    snapshot_file,
    tree,
)

from amlport.bundle import Repository, unpack
from amlport.bundle.config import RepositoryConfig
from amlport.errors import ExitCode, IntegrityError, UsageError

CONFIG = RepositoryConfig.new().to_bytes()


def packed_repo(tmp_path: Path) -> tuple[Repository, str, Path]:
    repo = new_repo(tmp_path, "src")
    snapshot(repo, {"files/old": b"only in the first snapshot"}, created=at(0))
    sid = snapshot(repo, {"files/model.pkl": b"weights" * 1000, "files/env.yaml": b"deps"})
    out = tmp_path / "out" / "bundle.tar.gz"
    report = repo.pack(sid[:8], out)
    assert (report.objects, report.snapshot_id) == (2, sid)
    assert report.pieces == len(repo.snapshots.pieces(sid)[1])
    return repo, sid, out


@plain_only
def test_pack_then_unpack_round_trips_exactly_one_snapshot(tmp_path: Path) -> None:
    repo, sid, out = packed_repo(tmp_path)
    with tarfile.open(out) as tar:
        names = tar.getnames()
    assert names[0] == "config.json" and names[-1] == f"snapshots/{sid}"
    data, pieces = repo.snapshots.pieces(sid)
    # config, two objects, the snapshot's own pieces and root: nothing of the other snapshot
    assert len(names) == 2 + len(data) + len(pieces) and len(data) == 2
    report = unpack(out, tmp_path / "dst")
    assert report.snapshots == [sid] and report.objects_added == 2 + len(pieces)
    dst = Repository.open(tmp_path / "dst")
    assert dst.id != repo.id  # a new repository, not a clone of the source's identity
    assert dst.verify().ok
    assert sorted(dst.objects.iter_digests()) == sorted(data | pieces)
    src_raw = snapshot_file(repo, sid).read_bytes()
    assert snapshot_file(dst, sid).read_bytes() == src_raw
    assert dst.load_snapshot(sid).to_dict() == repo.load_snapshot(sid).to_dict()


@plain_only
def test_unpack_into_an_existing_repository_is_idempotent(tmp_path: Path) -> None:
    _, sid, out = packed_repo(tmp_path)
    dst = new_repo(tmp_path, "dst")
    dst.put_bytes(b"deps")  # already there: not copied again
    first = Repository.unpack(out, dst.path)
    pieces = len(dst.snapshots.pieces(sid)[1])
    assert (first.objects_added, first.objects_present) == (1 + pieces, 1)
    again = Repository.unpack(out, dst.path)
    assert (again.objects_added, again.objects_present, again.snapshots) == (0, 2 + pieces, [sid])
    assert len(dst.list_snapshots()) == 1 and dst.verify().ok


@plain_only
def test_pack_is_deterministic_and_extracts_to_a_valid_repository(tmp_path: Path) -> None:
    repo, sid, out = packed_repo(tmp_path)
    second = repo.pack(sid, tmp_path / "again.tar.gz").path
    assert out.read_bytes() == second.read_bytes()
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "plain", filter="data")
    assert Repository.open(tmp_path / "plain").verify().ok


@plain_only
def test_pack_refuses_a_corrupt_object_and_leaves_no_file(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"abc" * 1000})
    repo.object_path(sha(b"abc" * 1000)).write_bytes(b"abd" * 1000)
    with pytest.raises(IntegrityError, match="corrupt"):
        repo.pack(sid, tmp_path / "out.tar.gz")
    assert not (tmp_path / "out.tar.gz").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no temp file left either


# --- hostile archives ------------------------------------------------------------------


def good_members(tmp_path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    """A valid pack's members, built by hand: config, one object, its snapshot."""
    repo = new_repo(tmp_path, "scratch")
    m = manifest(repo, {"files/a": b"payload"}, created=at())
    raw = m.to_json_bytes()
    hexd = hashlib.sha256(b"payload").hexdigest()
    return [
        member("config.json", CONFIG),
        member(f"objects/sha256/{hexd[:2]}/{hexd}", b"payload"),
        member(f"snapshots/{hashlib.sha256(raw).hexdigest()}.json", raw),
    ]


OBJ = "objects/sha256/ab/ab" + "0" * 62
Members = list[tuple[tarfile.TarInfo, bytes]]
HOSTILE: dict[str, tuple[Callable[[], Members], str]] = {
    "dotdot": (lambda: [member("../escaped.txt", b"x")], "outside the bundle layout"),
    "dotdot-inside": (
        lambda: [member("objects/sha256/../../../escaped.txt", b"x")],
        "outside the bundle layout",
    ),
    "absolute": (lambda: [member("/tmp/amlport-escaped.txt", b"x")], "outside the bundle"),
    "dot-slash": (lambda: [member("./config.json", CONFIG)], "outside the bundle layout"),
    "symlink": (
        lambda: [member(OBJ, type=tarfile.SYMTYPE, linkname="/etc/passwd")],
        "not a regular file",
    ),
    "hardlink": (
        lambda: [member(OBJ, type=tarfile.LNKTYPE, linkname="config.json")],
        "not a regular file",
    ),
    "device": (
        lambda: [member(OBJ, type=tarfile.CHRTYPE, devmajor=1, devminor=3)],
        "not a regular file",
    ),
    "fifo": (lambda: [member(OBJ, type=tarfile.FIFOTYPE)], "not a regular file"),
    "long-name": (
        lambda: [member("objects/sha256/ab/" + "a" * 5000, b"x")],
        "outside the bundle layout",
    ),
    "lock-file": (lambda: [member("locks/evil.json", b"{}")], "outside the bundle layout"),
    "index-file": (lambda: [member("index/evil.json", b"{}")], "outside the bundle layout"),
    "stray-dir": (
        lambda: [member("objects/elsewhere", type=tarfile.DIRTYPE)],
        "not a regular file",
    ),
    "huge-config": (lambda: [member("config.json", b" " * (65 * 1024))], "too large"),
    "duplicate": (
        lambda: [member("config.json", CONFIG), member("config.json", CONFIG)],
        "appears twice",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_member_is_rejected_before_anything_is_written(tmp_path: Path, case: str) -> None:
    work = tmp_path / "work"
    work.mkdir()
    build, reason = HOSTILE[case]
    hostile = build()
    names = {info.name for info, _ in hostile}
    good = [(i, d) for i, d in good_members(tmp_path) if i.name not in names]
    archive = write_tar(tmp_path / "evil.tar.gz", [*good, *hostile])
    before = tree(tmp_path)
    with pytest.raises(IntegrityError, match=reason) as err:
        unpack(archive, work / "repo")
    assert err.value.exit_code == ExitCode.INTEGRITY
    assert "archive member" in str(err.value)
    assert tree(tmp_path) == before  # not even the repository directory
    assert not Path("/tmp/amlport-escaped.txt").exists()


def test_archive_without_snapshot_or_not_gzip_is_rejected(tmp_path: Path) -> None:
    no_snap = write_tar(tmp_path / "a.tar.gz", [member("config.json", CONFIG)])
    with pytest.raises(IntegrityError, match="no snapshot"):
        unpack(no_snap, tmp_path / "r1")
    (tmp_path / "b.tar.gz").write_bytes(b"not a tarball at all")
    with pytest.raises(IntegrityError, match="not a readable"):
        unpack(tmp_path / "b.tar.gz", tmp_path / "r2")
    with pytest.raises(UsageError):
        unpack(tmp_path / "missing.tar.gz", tmp_path / "r3")
    assert not any((tmp_path / r).exists() for r in ("r1", "r2", "r3"))


@plain_only
def test_object_with_wrong_bytes_is_rejected_and_no_snapshot_written(tmp_path: Path) -> None:
    members = good_members(tmp_path)
    info, _ = members[1]
    members[1] = member(info.name, b"pay1oad")  # same length, different bytes
    archive = write_tar(tmp_path / "evil.tar.gz", members)
    with pytest.raises(IntegrityError, match="corrupt"):
        unpack(archive, tmp_path / "dst")
    dst = Repository.open(tmp_path / "dst")
    assert dst.list_snapshots() == [] and list(dst.objects.iter_digests()) == []


def test_snapshot_not_matching_its_name_is_rejected(tmp_path: Path) -> None:
    members = good_members(tmp_path)
    info, raw = members[2]
    members[2] = member(info.name, raw.replace(b'"size": 7', b'"size": 8'))
    with pytest.raises(IntegrityError, match="damaged"):
        unpack(write_tar(tmp_path / "e.tar.gz", members), tmp_path / "dst")
    assert not (tmp_path / "dst").exists()  # refused while scanning: nothing is created


def test_snapshot_with_unknown_major_is_refused_before_objects_are_copied(tmp_path: Path) -> None:
    members = good_members(tmp_path)
    data = json.loads(members[2][1])
    data["schema"] = "amlport.bundle/2"
    raw = json.dumps(data).encode()
    members[2] = member(f"snapshots/{hashlib.sha256(raw).hexdigest()}.json", raw)
    with pytest.raises(IntegrityError, match=r"amlport\.bundle/2"):
        unpack(write_tar(tmp_path / "e.tar.gz", members), tmp_path / "dst")
    assert not (tmp_path / "dst").exists()  # refused while scanning: nothing is created


def test_snapshot_whose_objects_are_absent_is_not_written(tmp_path: Path) -> None:
    members = good_members(tmp_path)
    del members[1]
    with pytest.raises(IntegrityError, match="incomplete"):
        unpack(write_tar(tmp_path / "e.tar.gz", members), tmp_path / "dst")
    assert Repository.open(tmp_path / "dst").list_snapshots() == []


@plain_only
def test_unpack_refuses_a_non_repository_target(tmp_path: Path) -> None:
    _, _, out = packed_repo(tmp_path)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("keep")
    with pytest.raises(UsageError, match="not an empty directory"):
        unpack(out, tmp_path / "docs")
    assert [p.name for p in (tmp_path / "docs").iterdir()] == ["readme.txt"]
