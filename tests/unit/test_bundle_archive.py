"""pack/unpack: round trip, determinism, and hostile archives rejected with nothing written."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tracemalloc
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


# --- hostile archives: headers, names, sparse members, damage (F, session 9) ------------


def _raw_tar(members: Members) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _header_bomb(path: Path, kind: bytes, size: int, rest: bytes) -> Path:
    """A header of type ``kind`` declaring ``size`` bytes of zeros (a few KiB compressed)
    before ``rest``: tarfile reads such a header whole into memory."""
    info = tarfile.TarInfo("././@LongLink")
    info.type, info.size = kind, size
    fmt = tarfile.GNU_FORMAT if kind in (tarfile.GNUTYPE_LONGNAME, b"K") else tarfile.PAX_FORMAT
    block = bytes(1 << 20)
    head = info.tobuf(format=fmt)
    if kind == tarfile.GNUTYPE_SPARSE:  # an old GNU sparse map: extension blocks of entries
        info.size = 0
        head = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
        head[482] = 1  # isextended: another 512-byte block of 21 map entries follows
        head[148:156] = b"        "
        head[148:155] = b"%06o\0" % sum(head)
        entry = b"00000000001\0" * 2  # offset 1, 1 byte: kept in memory as a tuple
        block = (entry * 21 + b"\1" + bytes(7)) * 2048
    with gzip.open(path, "wb", compresslevel=1) as gz:
        gz.write(head)
        for _ in range((size + 511) // 512 * 512 // len(block)):
            gz.write(block)
        gz.write(rest)
    return path


@pytest.mark.parametrize(
    "kind",
    [tarfile.GNUTYPE_LONGNAME, b"K", tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.GNUTYPE_SPARSE],
    ids=["gnu-long-name", "gnu-long-link", "pax", "pax-global", "gnu-sparse"],
)
def test_a_header_bomb_is_refused_without_reading_it(tmp_path: Path, kind: bytes) -> None:
    """A 64 MiB header (64 KiB compressed) is refused before it is read, naming the limit."""
    rest = _raw_tar(good_members(tmp_path))
    archive = _header_bomb(tmp_path / "bomb.tar.gz", kind, 64 << 20, rest)
    before = tree(tmp_path)
    tracemalloc.start()
    try:
        with pytest.raises(IntegrityError, match=r"member at byte 0 .* larger than 64 KiB"):
            unpack(archive, tmp_path / "dst")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak  # the header was never held
    assert tree(tmp_path) == before


def test_a_chain_of_long_name_headers_is_bounded_as_one(tmp_path: Path) -> None:
    """PAX and long-name headers nest (each parses the next): their sum is bounded."""
    chain = b""
    for _ in range(200):  # 200 headers of 1 KiB each: no one is large, all are
        info = tarfile.TarInfo("././@LongLink")
        info.type, info.size = tarfile.GNUTYPE_LONGNAME, 1024
        chain += info.tobuf(format=tarfile.GNU_FORMAT) + b"x" * 1024
    (tmp_path / "c.tar.gz").write_bytes(gzip.compress(chain + _raw_tar(good_members(tmp_path))))
    with pytest.raises(IntegrityError, match="larger than 64 KiB"):
        unpack(tmp_path / "c.tar.gz", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def _renamed_object(tmp_path: Path, name: Callable[[str], str]) -> Path:
    members = good_members(tmp_path)
    info, data = members[1]
    members[1] = member(name(info.name), data)
    return write_tar(tmp_path / "named.tar.gz", members)


@pytest.mark.parametrize(
    "rename",
    [
        lambda n: n + "\n",  # `$` of a regex matches before a trailing newline
        lambda n: n[:20] + "\x00" + n[20:],  # tar stores the name up to the NUL
        lambda n: n.replace("/", "\\"),
        lambda n: n.replace("objects/", "objects//"),
        lambda n: "snapshots/../" + n,
        lambda n: n + "/" + "a" * (1024 - len(n) - 1),  # 1,024 characters
        lambda n: n[:-1] + "\x1b",
    ],
    ids=["trailing-newline", "nul", "backslashes", "double-slash", "dotdot", "1024", "esc"],
)
def test_an_object_under_a_hostile_name_is_refused(
    tmp_path: Path, rename: Callable[[str], str]
) -> None:
    archive = _renamed_object(tmp_path, rename)
    with pytest.raises(IntegrityError, match="outside the bundle layout") as err:
        unpack(archive, tmp_path / "dst")
    assert "\x1b" not in str(err.value) and "\n" not in str(err.value).splitlines()[0][-3:]
    assert not (tmp_path / "dst").exists()


def test_a_sparse_member_is_refused(tmp_path: Path) -> None:
    """A PAX sparse map makes holes of any size from a few bytes: ``pack`` never writes one."""
    members = good_members(tmp_path)
    info, data = members[1]
    sparse = {"GNU.sparse.map": f"0,{len(data)}", "GNU.sparse.size": str(len(data))}
    members[1] = member(info.name, data, pax_headers=sparse)
    with pytest.raises(IntegrityError, match="not a regular file"):
        unpack(write_tar(tmp_path / "s.tar.gz", members), tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


@plain_only
def test_damage_in_the_gzip_stream_is_caught_before_anything_is_written(tmp_path: Path) -> None:
    """A flipped byte that still inflates (no member read fails) is caught by the CRC."""
    repo = new_repo(tmp_path, "src")
    payload = hashlib.sha256(b"seed").digest() * 20000  # does not compress away
    sid = snapshot(repo, {"files/model.pkl": payload})
    raw = repo.pack(sid, tmp_path / "a.tar.gz").path.read_bytes()
    bad = bytearray(raw)
    bad[len(raw) // 2] ^= 0x55  # inside the object's deflate stream
    (tmp_path / "b.tar.gz").write_bytes(bytes(bad))
    with pytest.raises(IntegrityError, match=r"not a readable \.tar\.gz"):
        unpack(tmp_path / "b.tar.gz", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_data_after_the_end_of_the_archive_is_refused(tmp_path: Path) -> None:
    """A good pack with 2 MiB appended inside the gzip stream (a hidden payload or bomb)."""
    body = _raw_tar(good_members(tmp_path)) + bytes(2 << 20)
    (tmp_path / "t.tar.gz").write_bytes(gzip.compress(body))
    with pytest.raises(IntegrityError, match="after the end of the archive"):
        unpack(tmp_path / "t.tar.gz", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


def test_an_archive_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    """A FIFO is not waited on (exit 2, bad input), a directory not read."""
    os.mkfifo(tmp_path / "fifo.tar.gz")
    with pytest.raises(UsageError, match="is a FIFO, not a regular file"):
        unpack(tmp_path / "fifo.tar.gz", tmp_path / "dst")
    (tmp_path / "dir.tar.gz").mkdir()
    with pytest.raises(UsageError, match="a directory"):
        unpack(tmp_path / "dir.tar.gz", tmp_path / "dst")
    assert not (tmp_path / "dst").exists()


@plain_only
def test_an_archive_given_through_a_link_is_read(tmp_path: Path) -> None:
    good = write_tar(tmp_path / "good.tar.gz", good_members(tmp_path))
    (tmp_path / "link.tar.gz").symlink_to(good)
    assert len(unpack(tmp_path / "link.tar.gz", tmp_path / "dst").snapshots) == 1
