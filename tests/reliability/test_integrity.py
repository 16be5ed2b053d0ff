"""Integrity: a damaged repository or archive is refused with exit 4, naming what is wrong,
and nothing is written.

``verify``: a flipped byte in an object, a missing object, a truncated manifest, a
hand-edited manifest, a manifest of an unknown major schema, a manifest naming ``..`` or an
absolute path (both re-hashed, so that the file name matches and only the content check can
catch them). ``unpack``: truncated and non-gzip archives, ``..``/absolute/link/device/duplicate
members, an object that does not match its name, a damaged or foreign manifest, a snapshot
whose objects are missing.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from rel_workspace import Ran, assert_clean_failure, error_lines, new_workspace
from rel_workspace import cli as amlport

Damage = Callable[[Path], str]  # damages a repository, returns what the message must name


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """A repository with one snapshot of a small workspace, its pack, and the repository of
    another workspace (a target that already holds something, but none of these objects)."""
    root = tmp_path_factory.mktemp("golden")
    ws = new_workspace(root / "ws")
    ws.put_run_file("r1", "user_logs/std_log.txt", "loss 0.1\n" * 50)
    ws.put_run_file("r1", "outputs/model.pkl", bytes(range(256)) * 8)
    repo = root / "repo"
    ran = amlport("export", str(ws.root), "--to", str(repo))
    assert ran.returncode == 0, ran.explain()
    archive = root / "pack.tar.gz"
    ran = amlport("pack", str(repo), "--snapshot", _snapshot_id(repo), "-o", str(archive))
    assert ran.returncode == 0, ran.explain()
    other = new_workspace(root / "other", "relother")
    other.put_run_file("o1", "user_logs/std_log.txt", "another workspace\n")
    (other.run("clean_run") / "user_logs" / "std_log.txt").write_text("different\n")
    ran = amlport("export", str(other.root), "--to", str(root / "other-repo"))
    assert ran.returncode == 0, ran.explain()
    return repo, archive, root / "other-repo"


def _snapshot_id(repo: Path) -> str:
    [snap] = (repo / "snapshots").glob("*.json")
    return snap.name.removesuffix(".json")


def _manifest(repo: Path) -> dict[str, Any]:
    return json.loads((repo / "snapshots" / f"{_snapshot_id(repo)}.json").read_bytes())


def _object(repo: Path, bundle_path_suffix: str) -> tuple[Path, str]:
    entry = next(f for f in _manifest(repo)["files"] if f["path"].endswith(bundle_path_suffix))
    hexd = entry["digest"].split(":", 1)[1]
    return repo / "objects" / "sha256" / hexd[:2] / hexd, entry["path"]


def _rehashed(repo: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    """Edit the manifest and store it under the hash of its new bytes (a "valid" forgery)."""
    old = repo / "snapshots" / f"{_snapshot_id(repo)}.json"
    doc = json.loads(old.read_bytes())
    edit(doc)
    raw = json.dumps(doc, indent=2, sort_keys=True).encode()
    sid = hashlib.sha256(raw).hexdigest()
    old.unlink()
    (repo / "snapshots" / f"{sid}.json").write_bytes(raw)
    return sid


def flip_byte(repo: Path) -> str:
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


def truncated_manifest(repo: Path) -> str:
    sid = _snapshot_id(repo)
    snap = repo / "snapshots" / f"{sid}.json"
    snap.write_bytes(snap.read_bytes()[:200])
    return sid[:16]


def hand_edited_manifest(repo: Path) -> str:
    sid = _snapshot_id(repo)
    snap = repo / "snapshots" / f"{sid}.json"
    snap.write_bytes(snap.read_bytes().replace(b'"portable": true', b'"portable": false', 1))
    return sid[:16]


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


def _tree(root: Path) -> dict[str, bytes]:
    if not root.exists():
        return {}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "damage",
    [
        flip_byte,
        missing_object,
        truncated_manifest,
        hand_edited_manifest,
        unknown_major,
        dotdot_path,
        absolute_path,
    ],
)
def test_verify_refuses_a_damaged_repository(
    damage: Damage, golden: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(golden[0], repo)
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
    members = [
        (m, bytes([d[0] ^ 1]) + d[1:]) if m.name.startswith("objects/sha256/") and d else (m, d)
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
    members = []
    for m, d in _members(src):
        if m.name.startswith("snapshots/"):
            doc = json.loads(d)
            doc["schema"] = "amlport.bundle/99"
            d = json.dumps(doc).encode()
            m.name = f"snapshots/{hashlib.sha256(d).hexdigest()}.json"
        members.append((m, d))
    return _write(out / "f.tar.gz", members), "newer than this amlport", True


@pytest.mark.parametrize(
    "hostile",
    [
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
        foreign_major,
    ],
)
def test_unpack_refuses_a_damaged_or_hostile_archive(
    hostile: Hostile, golden: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    archive, named, checked_late = hostile(golden[1], tmp_path)
    fresh = tmp_path / "fresh"
    ran = amlport("unpack", str(archive), "--to", str(fresh))
    assert_clean_failure(ran, code=4, says=named)
    if checked_late:  # found while importing: no snapshot, so nothing a reader can see
        assert not list((fresh / "snapshots").glob("*.json"))
    else:  # found before anything is written: the target is not even created
        assert not fresh.exists()
    existing = tmp_path / "existing"
    shutil.copytree(golden[2], existing)
    before = _tree(existing / "snapshots")
    again = amlport("unpack", str(archive), "--to", str(existing))
    assert_clean_failure(again, code=4, says=named)
    assert _tree(existing / "snapshots") == before
    assert amlport("verify", str(existing)).returncode == 0
    assert not Path("/tmp/amlport-evil").exists()


def test_a_good_pack_unpacks_and_verifies(golden: tuple[Path, Path, Path], tmp_path: Path) -> None:
    ran: Ran = amlport("unpack", str(golden[1]), "--to", str(tmp_path / "r"))
    assert ran.returncode == 0, ran.explain()
    assert amlport("verify", str(tmp_path / "r")).returncode == 0
