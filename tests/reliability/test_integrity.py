"""Integrity: a damaged repository or archive is refused with exit 4, naming what is wrong,
and nothing is written.

``verify``: a flipped byte in an object, a missing object, a truncated manifest, a
hand-edited manifest, a manifest of an unknown major schema, a manifest naming ``..`` or an
absolute path (both re-hashed, so that the file name matches and only the content check can
catch them). ``unpack``: truncated and non-gzip archives, ``..``/absolute/link/device/duplicate
members, an object that does not match its name, a damaged or foreign manifest, a snapshot
whose objects are missing.

Each runs on a format-1 repository (``repo init --format 1``; the manifest file is what is
attacked) and on a format-2 one (a root over pieces): the forgeries are stored as pieces
and a root whose names match (``cliutil.rewrite_format2``), and the root and pieces are
attacked as the manifest file is (truncated, edited, a piece flipped, pieces swapped, a root
replaced by another snapshot's root).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import plain_only
from helpers.cliutil import (
    format1_file,
    init_format1,
    manifest_of,
    object_file,
    only_snapshot,
    pieces,
    rewrite_format1,
    rewrite_format2,
    root_file,
    stored_snapshots,
)
from helpers.encrypted_mode import keys_for_fixture
from helpers.rel_workspace import Ran, assert_clean_failure, error_lines, new_workspace
from helpers.rel_workspace import run_in_process as amlport

from amlport.bundle.codec import PLAIN
from amlport.bundle.envelope import has_magic

Damage = Callable[[Path], str]  # damages a repository, returns what the message must name


@dataclass(frozen=True)
class Golden:
    repo: Path  # one snapshot of a small workspace
    archive: Path  # its pack
    other: Path  # the repository of another workspace (a target holding none of these objects)


def _golden(root: Path, version: int) -> Golden:
    ws = new_workspace(root / "ws")
    ws.put_run_file("r1", "user_logs/std_log.txt", "loss 0.1\n" * 50)
    ws.put_run_file("r1", "outputs/model.pkl", bytes(range(256)) * 8)
    repo, other_repo = root / "repo", root / "other-repo"
    if version == 1:
        init_format1(repo)
        init_format1(other_repo)
    # Without pack files (the default for a new repository): this catalogue damages, deletes
    # and swaps object files one by one; damage to packs and their index is proved by
    # tests/unit/test_bundle_packs.py and tests/reliability/test_kill_packs.py.
    loose = {"AMLPORT_PACKS": "0"}
    ran = amlport("export", str(ws.root), "--to", str(repo), env=loose)
    assert ran.returncode == 0, ran.explain()
    archive = root / "pack.tar.gz"
    ran = amlport("pack", str(repo), "--snapshot", only_snapshot(repo), "-o", str(archive))
    assert ran.returncode == 0, ran.explain()
    other = new_workspace(root / "other", "relother")
    other.put_run_file("o1", "user_logs/std_log.txt", "another workspace\n")
    (other.run("clean_run") / "user_logs" / "std_log.txt").write_text("different\n")
    ran = amlport("export", str(other.root), "--to", str(other_repo), env=loose)
    assert ran.returncode == 0, ran.explain()
    names = stored_snapshots(repo) + stored_snapshots(other_repo)
    assert all(n.endswith(".json") == (version == 1) for n in names), names
    return Golden(repo, archive, other_repo)


@pytest.fixture(scope="module")
def golden1(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    """Format 1: the snapshots are manifest files (``repo init --format 1``)."""
    with keys_for_fixture():  # encrypted under AMLPORT_TEST_ENCRYPT=1 whichever test is first
        return _golden(tmp_path_factory.mktemp("golden1"), 1)


@pytest.fixture(scope="module")
def golden2(tmp_path_factory: pytest.TempPathFactory) -> Golden:
    """Format 2 (what a new repository is): roots over pieces."""
    with keys_for_fixture():  # encrypted under AMLPORT_TEST_ENCRYPT=1 whichever test is first
        return _golden(tmp_path_factory.mktemp("golden2"), 2)


def _golden_of(request: pytest.FixtureRequest, version: int) -> Golden:
    golden: Golden = request.getfixturevalue(f"golden{version}")
    return golden


def _snapshot_id(repo: Path) -> str:
    return only_snapshot(repo)


def _object(repo: Path, bundle_path_suffix: str) -> tuple[Path, str]:
    entry = next(f for f in manifest_of(repo)["files"] if f["path"].endswith(bundle_path_suffix))
    return object_file(repo, entry["digest"]), entry["path"]


def _rehashed(repo: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    """Edit the manifest and store it under the name of its new bytes (a "valid" forgery),
    in the repository's own format."""
    if any(n.endswith(".json") for n in stored_snapshots(repo)):
        return rewrite_format1(repo, edit)
    return rewrite_format2(repo, edit)


# Damage to data objects and forged manifests: the same attack on either format.


def flipped_byte(repo: Path) -> str:
    path, bundle_path = _object(repo, "model.pkl")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.chmod(0o644)
    path.write_bytes(bytes(data))
    return bundle_path


def missing_object(repo: Path) -> str:
    path, bundle_path = _object(repo, "std_log.txt")
    path.unlink()
    return bundle_path


def unknown_major(repo: Path) -> str:
    return _rehashed(repo, lambda d: d.update(schema="amlport.bundle/99"))[:16]


def dotdot_path(repo: Path) -> str:
    def edit(doc: dict[str, Any]) -> None:
        doc["files"][0]["path"] = "files/../../../etc/cron.d/evil"

    _rehashed(repo, edit)
    return "files/../../../etc/cron.d/evil"


def absolute_path(repo: Path) -> str:
    def edit(doc: dict[str, Any]) -> None:
        doc["files"][0]["path"] = "/etc/passwd"

    _rehashed(repo, edit)
    return "/etc/passwd"


# Format 1: the manifest file itself.


def truncated_manifest(repo: Path) -> str:
    sid = _snapshot_id(repo)
    snap = format1_file(repo, sid)
    snap.write_bytes(snap.read_bytes()[:200])
    return sid[:16]


def hand_edited_manifest(repo: Path) -> str:
    sid = _snapshot_id(repo)
    snap = format1_file(repo, sid)
    snap.write_bytes(snap.read_bytes().replace(b'"portable": true', b'"portable": false', 1))
    return sid[:16]


# Format 2: the root and the pieces.


def truncated_root(repo: Path) -> str:
    sid = _snapshot_id(repo)
    root = root_file(repo, sid)
    root.write_bytes(root.read_bytes()[:30])
    return sid[:16]


def hand_edited_root(repo: Path) -> str:
    sid = _snapshot_id(repo)
    root = root_file(repo, sid)
    data = bytearray(root.read_bytes())
    data[-1] ^= 0x01
    root.write_bytes(bytes(data))
    return sid[:16]


def _piece_files(repo: Path) -> list[Path]:
    return sorted(object_file(repo, d) for d in pieces(repo)[1])


def flipped_piece(repo: Path) -> str:
    sid = _snapshot_id(repo)
    for path in _piece_files(repo):  # every piece: whichever the reader meets first
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.chmod(0o644)
        path.write_bytes(bytes(data))
    return sid[:16]


def swapped_pieces(repo: Path) -> str:
    """Two pieces trade places: each is whole, neither is the piece its name says."""
    sid = _snapshot_id(repo)
    files = _piece_files(repo)
    assert len(files) >= 2
    first, second = files[0].read_bytes(), files[-1].read_bytes()
    for path, data in ((files[0], second), (files[-1], first)):
        path.chmod(0o644)
        path.write_bytes(data)
    return sid[:16]


def another_root(repo: Path) -> str:
    """A root replaced by the (valid) root of another snapshot of the same repository."""
    sid = _snapshot_id(repo)
    kept = root_file(repo, sid).read_bytes()
    other = rewrite_format2(repo, lambda d: d.update(tags=["renamed-to-match"]))
    root_file(repo, sid).write_bytes(root_file(repo, other).read_bytes())
    root_file(repo, other).write_bytes(kept)  # both names hold a root that is not theirs
    return sid[:16]


def _tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


BOTH = [flipped_byte, missing_object, unknown_major, dotdot_path, absolute_path]


@pytest.mark.parametrize(
    ("version", "damage"),
    [
        *((1, d) for d in [*BOTH, truncated_manifest, hand_edited_manifest]),
        *(
            (2, d)
            for d in [
                *BOTH,
                truncated_root,
                hand_edited_root,
                flipped_piece,
                swapped_pieces,
                another_root,
            ]
        ),
    ],
    ids=lambda v: v.__name__ if callable(v) else f"format{v}",
)
def test_verify_refuses_a_damaged_repository(
    version: int, damage: Damage, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(_golden_of(request, version).repo, repo)
    named = damage(repo)
    before = _tree(repo)
    ran = amlport("verify", str(repo))
    assert_clean_failure(ran, code=4, says=named)
    assert any("integrity" in line for line in error_lines(ran)), ran.explain()
    report = amlport("verify", str(repo), "--json")
    assert report.returncode == 4 and report.json()["ok"] is False
    assert named in json.dumps(report.json())
    assert _tree(repo) == before  # verify writes nothing


# --- unpack --------------------------------------------------------------------------------


def _members(archive: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    out = []
    with tarfile.open(archive, "r:gz") as tar:
        for m in tar.getmembers():
            fh = tar.extractfile(m)
            out.append((m, fh.read() if fh else b""))
    return out


def _write(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return path


def _extra(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"x", link: str = "") -> Any:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info, data


Hostile = Callable[[Path, Path], tuple[Path, str, bool]]  # -> archive, named, target created?


def truncated(src: Path, out: Path) -> tuple[Path, str, bool]:
    raw = src.read_bytes()
    (out / "t.tar.gz").write_bytes(raw[: len(raw) // 2])
    return out / "t.tar.gz", "not a readable .tar.gz", False


def not_gzip(src: Path, out: Path) -> tuple[Path, str, bool]:
    (out / "g.tar.gz").write_bytes(b"PK\x03\x04 this is a zip, or nothing at all")
    return out / "g.tar.gz", "not a readable .tar.gz", False


def _plus(src: Path, out: Path, extra: Any, named: str) -> tuple[Path, str, bool]:
    return _write(out / "h.tar.gz", [*_members(src), extra]), named, False


def dotdot_member(src: Path, out: Path) -> tuple[Path, str, bool]:
    return _plus(src, out, _extra("objects/../../evil.sh"), "evil.sh")


def absolute_member(src: Path, out: Path) -> tuple[Path, str, bool]:
    return _plus(src, out, _extra("/tmp/amlport-evil"), "/tmp/amlport-evil")


def symlink_member(src: Path, out: Path) -> tuple[Path, str, bool]:
    return _plus(src, out, _extra("snapshots/link", tarfile.SYMTYPE, link="/etc"), "snapshots/link")


def hardlink_member(src: Path, out: Path) -> tuple[Path, str, bool]:
    extra = _extra("objects/hard", tarfile.LNKTYPE, link="config.json")
    return _plus(src, out, extra, "objects/hard")


def fifo_member(src: Path, out: Path) -> tuple[Path, str, bool]:
    return _plus(src, out, _extra("objects/fifo", tarfile.FIFOTYPE), "objects/fifo")


def duplicate_member(src: Path, out: Path) -> tuple[Path, str, bool]:
    members = _members(src)
    return _write(out / "d.tar.gz", [*members, members[-1]]), "appears twice", False


def object_not_its_name(src: Path, out: Path) -> tuple[Path, str, bool]:
    """Every data object damaged (format 2: the pieces are left whole, see below)."""
    members = [
        (m, bytes([d[0] ^ 1]) + d[1:])
        if m.name.startswith("objects/sha256/") and d and not _is_piece(m, d)
        else (m, d)
        for m, d in _members(src)
    ]
    return _write(out / "o.tar.gz", members), "is corrupt", True


def damaged_snapshot(src: Path, out: Path) -> tuple[Path, str, bool]:
    members = [
        (m, d[:-40]) if m.name.startswith("snapshots/") else (m, d) for m, d in _members(src)
    ]
    return _write(out / "s.tar.gz", members), "snapshot", True


def missing_objects(src: Path, out: Path) -> tuple[Path, str, bool]:
    members = [(m, d) for m, d in _members(src) if not m.name.startswith("objects/sha256/")]
    return _write(out / "m.tar.gz", members), "incomplete", True


def foreign_major(src: Path, out: Path) -> tuple[Path, str, bool]:
    """Format 1: a manifest of a newer major schema, renamed to match its bytes."""
    members = []
    for m, d in _members(src):
        if m.name.startswith("snapshots/"):
            doc = json.loads(d)
            doc["schema"] = "amlport.bundle/99"
            d = json.dumps(doc).encode()
            m.name = f"snapshots/{hashlib.sha256(d).hexdigest()}.json"
        members.append((m, d))
    return _write(out / "f.tar.gz", members), "newer than this amlport", True


def foreign_major_root(src: Path, out: Path) -> tuple[Path, str, bool]:
    """Format 2: a root whose manifest is of a newer major schema, renamed to match."""
    members = []
    for m, d in _members(src):
        if m.name.startswith("snapshots/"):
            sid = m.name.removeprefix("snapshots/")
            doc = json.loads(PLAIN.unpack_meta(d, sid, where="test", limit=1 << 20))
            doc["manifest"]["schema"] = "amlport.bundle/99"
            plain = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
            name = PLAIN.meta_name(plain)
            m.name, d = f"snapshots/{name}", PLAIN.pack_meta(plain, name)
        members.append((m, d))
    return _write(out / "f.tar.gz", members), "newer than this amlport", True


def _is_piece(member: tarfile.TarInfo, data: bytes) -> bool:
    """A format-2 piece: an object in an envelope (a data object has none)."""
    return member.name.startswith("objects/sha256/") and has_magic(data)


def _root_named(members: list[tuple[tarfile.TarInfo, bytes]]) -> str:
    [sid] = [m.name.removeprefix("snapshots/") for m, _ in members if m.name.startswith("snap")]
    return f"snapshot {sid[:16]}"


def _flip(data: bytes, at: int) -> bytes:
    flipped = bytearray(data)
    flipped[at] ^= 0x01
    return bytes(flipped)


def _flipped_pieces(at: int) -> Hostile:
    def hostile(src: Path, out: Path) -> tuple[Path, str, bool]:
        members = _members(src)
        members = [(m, _flip(d, at)) if _is_piece(m, d) else (m, d) for m, d in members]
        return _write(out / "p.tar.gz", members), _root_named(members), True

    hostile.__name__ = f"piece_byte_{at}_flipped"
    return hostile


def swapped_piece_members(src: Path, out: Path) -> tuple[Path, str, bool]:
    members = _members(src)
    at = [i for i, (m, d) in enumerate(members) if _is_piece(m, d)]
    assert len(at) >= 2
    (first, a), (last, b) = members[at[0]], members[at[-1]]
    members[at[0]], members[at[-1]] = (first, b), (last, a)
    return _write(out / "w.tar.gz", members), "is corrupt", True


def missing_pieces(src: Path, out: Path) -> tuple[Path, str, bool]:
    members = [(m, d) for m, d in _members(src) if not _is_piece(m, d)]
    return _write(out / "n.tar.gz", members), _root_named(members), True


# Format 2 attacks that edit the stored bytes as an unencrypted repository holds them (a data
# object without an envelope, a root in the plain codec): an encrypted repository's are
# sealed, and its packs are attacked in tests/unit/test_bundle_pack_encrypted.py.
BUILT_ON_PLAIN_BYTES = {"object_not_its_name", "foreign_major_root", "swapped_piece_members"}

ANY_FORMAT = [
    truncated,
    not_gzip,
    dotdot_member,
    absolute_member,
    symlink_member,
    hardlink_member,
    fifo_member,
    duplicate_member,
    object_not_its_name,
    damaged_snapshot,
    missing_objects,
]


@pytest.mark.parametrize(
    ("version", "hostile"),
    [
        *((1, h) for h in [*ANY_FORMAT, foreign_major]),
        *(
            pytest.param(2, h, marks=plain_only) if h.__name__ in BUILT_ON_PLAIN_BYTES else (2, h)
            for h in [
                *ANY_FORMAT,
                foreign_major_root,
                _flipped_pieces(0),  # the envelope's magic
                _flipped_pieces(-1),  # the compressed payload
                swapped_piece_members,
                missing_pieces,
            ]
        ),
    ],
    ids=lambda v: v.__name__ if callable(v) else f"format{v}",
)
def test_unpack_refuses_a_damaged_or_hostile_archive(
    version: int, hostile: Hostile, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    golden = _golden_of(request, version)
    archive, named, checked_late = hostile(golden.archive, tmp_path)
    fresh = tmp_path / "fresh"
    ran = amlport("unpack", str(archive), "--to", str(fresh))
    assert_clean_failure(ran, code=4, says=named)
    if checked_late:  # found while importing: no snapshot, so nothing a reader can see
        assert not stored_snapshots(fresh)
    else:  # found before anything is written: the target is not even created
        assert not fresh.exists()
    existing = tmp_path / "existing"
    shutil.copytree(golden.other, existing)
    before = _tree(existing / "snapshots")
    again = amlport("unpack", str(archive), "--to", str(existing))
    assert_clean_failure(again, code=4, says=named)
    assert _tree(existing / "snapshots") == before
    assert amlport("verify", str(existing)).returncode == 0
    assert not Path("/tmp/amlport-evil").exists()


@pytest.mark.parametrize("version", [1, 2], ids=["format1", "format2"])
def test_a_good_pack_unpacks_and_verifies(
    version: int, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    ran: Ran = amlport(
        "unpack", str(_golden_of(request, version).archive), "--to", str(tmp_path / "r")
    )
    assert ran.returncode == 0, ran.explain()
    assert amlport("verify", str(tmp_path / "r")).returncode == 0
