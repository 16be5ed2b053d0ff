"""pack/unpack of an encrypted repository (docs/design/0013, "Packs").

A pack of an encrypted repository carries its sealed objects, pieces and root as stored, its
``config.json`` and its wrapped keys: it stays encrypted at rest and holds no secret. Unpack
needs a key that opens the pack's repository and writes into a new repository (a copy of the
pack's identity and keys) or one with the same master key; every other target, no key and a
wrong key are refused before anything is written, and a hostile archive (altered ciphertext,
swapped or extra objects, traversal names, oversized pieces or keys) is refused too.
"""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.archive import member, write_tar
from helpers.bundle import key_file, manifest, stored_bytes, tree

from amlport.bundle import Repository, archive, crypto, envelope, keys
from amlport.bundle.config import RepositoryConfig
from amlport.bundle.crypto import KeyRequired
from amlport.errors import ExitCode, IntegrityError, UsageError

SECRET_DATA = b"training data nobody outside the workspace may read " * 50
PASSPHRASE = "correct horse battery staple, packed"


# These tests give every key themselves (even under AMLPORT_TEST_ENCRYPT=1).
pytestmark = pytest.mark.own_keys


@pytest.fixture
def user(tmp_path: Path) -> keys.UserKey:
    return key_file(tmp_path)


@pytest.fixture
def repo(tmp_path: Path, user: keys.UserKey) -> Repository:
    return Repository.init(tmp_path / "src", encrypt=True, key=user)


def snap(repo: Repository, contents: dict[str, bytes], **kw: object) -> str:
    with repo.lock(exclusive=False):
        return repo.write_snapshot(manifest(repo, contents, **kw))  # type: ignore[arg-type]


def packed(tmp_path: Path, repo: Repository) -> tuple[str, Path]:
    snap(repo, {"files/old": b"only in the first snapshot"}, created="2024-03-01T02:00:00Z")
    sid = snap(repo, {"files/model.pkl": SECRET_DATA, "files/env.yaml": b"deps" * 10})
    out = tmp_path / "out" / "pack.tar.gz"
    report = repo.pack(sid[:10], out)
    data, pieces = repo.snapshots.pieces(sid)
    assert (report.snapshot_id, report.objects, report.pieces) == (sid, 2, len(pieces))
    assert len(data) == 2
    return sid, out


def members(path: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    with tarfile.open(path) as tar:
        out = []
        for info in tar:
            fh = tar.extractfile(info)
            out.append((info, fh.read() if fh is not None else b""))
        return out


def object_name(digest: str) -> str:
    hexd = digest.split(":", 1)[1]
    return f"objects/sha256/{hexd[:2]}/{hexd}"


# --- round trips -----------------------------------------------------------------------------


def test_pack_carries_sealed_objects_config_and_wrapped_keys_and_no_secret(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    items = members(out)
    names = [info.name for info, _ in items]
    key_ids = keys.key_ids(repo.store)
    data, pieces = repo.snapshots.pieces(sid)
    assert names[0] == "config.json" and names[-1] == f"snapshots/{sid}"
    assert names[1 : 1 + len(key_ids)] == [f"keys/{k}.json" for k in key_ids]
    assert len(names) == 2 + len(key_ids) + len(data) + len(pieces)  # one snapshot only
    for info, body in items:  # every member exactly as the repository stores it (in a pack
        if info.name.startswith("objects/"):  # file or its loose file), read where it is
            digest = "sha256:" + info.name.rsplit("/", 1)[1]
            assert body == stored_bytes(repo, digest)
        else:
            assert body == (repo.path / info.name).read_bytes()
    whole = gzip.decompress(out.read_bytes())
    assert b"training data" not in whole and b"files/model.pkl" not in whole
    assert user.secret not in whole
    key_text = (tmp_path / "key.json").read_text(encoding="utf-8")
    assert json.loads(key_text)["key"].encode() not in whole  # the user key never travels


def test_encrypted_pack_round_trips_into_a_new_repository_with_the_same_keys(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    report = Repository.unpack(out, tmp_path / "dst", key=user)
    data, pieces = repo.snapshots.pieces(sid)
    assert report.snapshots == [sid] and report.objects_added == len(data) + len(pieces)
    dst = Repository.open(tmp_path / "dst", key=user)
    assert dst.encrypted and dst.has_key and dst.id == repo.id  # the pack's identity and keys
    assert keys.key_ids(dst.store) == keys.key_ids(repo.store)
    assert dst.verify().ok
    assert dst.load_snapshot(sid).to_dict() == repo.load_snapshot(sid).to_dict()
    assert dst.get_bytes(repo.load_snapshot(sid).files[0].digest) in (SECRET_DATA, b"deps" * 10)
    for digest in data | pieces:  # stored as they travelled: nothing re-encrypted
        assert stored_bytes(dst, digest) == stored_bytes(repo, digest)  # packed or loose
    assert [s.id for s in dst.list_snapshots()] == [sid]


def test_passphrase_pack_round_trips(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(keys.ENV, PASSPHRASE)
    repo = Repository.init(tmp_path / "src", encrypt=True)  # wrapped by $AMLPORT_REPO_KEY
    sid, out = packed(tmp_path, repo)
    assert PASSPHRASE.encode() not in gzip.decompress(out.read_bytes())
    report = Repository.unpack(out, tmp_path / "dst")
    assert report.snapshots == [sid]
    assert Repository.open(tmp_path / "dst").load_snapshot(sid).files


def test_unpack_into_the_same_repository_and_into_a_former_copy(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    again = Repository.unpack(out, repo.path, key=user)  # its own repository: all present
    assert again.objects_added == 0 and again.snapshots == [sid]
    Repository.unpack(out, tmp_path / "dst", key=user)
    newer = snap(repo, {"files/model.pkl": SECRET_DATA, "files/new": b"changed"})
    repo.pack(newer, tmp_path / "newer.tar.gz")
    later = Repository.unpack(tmp_path / "newer.tar.gz", tmp_path / "dst", key=user)
    assert later.objects_present >= 1 and later.snapshots == [newer]  # shared objects reused
    dst = Repository.open(tmp_path / "dst", key=user)
    assert {s.id for s in dst.list_snapshots()} == {sid, newer} and dst.verify().ok


def test_encrypted_pack_is_deterministic_and_extracts_to_an_encrypted_repository(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    assert repo.pack(sid, tmp_path / "again.tar.gz").path.read_bytes() == out.read_bytes()
    with tarfile.open(out) as tar:
        tar.extractall(tmp_path / "plain-tar", filter="data")
    copy = Repository.open(tmp_path / "plain-tar", key=user)
    assert copy.encrypted and copy.verify().ok


def test_pack_needs_the_key_and_refuses_a_damaged_sealed_object(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid = snap(repo, {"files/a": SECRET_DATA})
    keyless = Repository.open(repo.path, key=None)
    with pytest.raises(KeyRequired) as err:
        keyless.pack(sid, tmp_path / "nokey.tar.gz")
    assert err.value.exit_code == ExitCode.ERROR
    digest = repo.load_snapshot(sid).files[0].digest
    path = repo.object_path(digest)
    stored = bytearray(path.read_bytes())
    stored[60] ^= 1  # inside the first segment's ciphertext
    path.write_bytes(bytes(stored))
    with pytest.raises(IntegrityError, match="authenticate"):
        repo.pack(sid, tmp_path / "out.tar.gz")
    assert not (tmp_path / "out.tar.gz").exists() and not (tmp_path / "nokey.tar.gz").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["key.json", "src"]  # no temp file


# --- keys and targets --------------------------------------------------------------------------


def test_unpack_without_a_key_or_with_a_wrong_key_writes_nothing(
    tmp_path: Path, repo: Repository
) -> None:
    _, out = packed(tmp_path, repo)
    with pytest.raises(KeyRequired, match="needs that repository's key") as err:
        Repository.unpack(out, tmp_path / "dst")
    assert err.value.exit_code == ExitCode.ERROR
    other = key_file(tmp_path, "other.json")
    with pytest.raises(keys.WrongKey, match="does not open the encrypted pack") as err2:
        Repository.unpack(out, tmp_path / "dst", key=other)
    assert err2.value.exit_code == ExitCode.ERROR
    assert "other.json" in str(err2.value)  # where the key came from, never what it is
    assert other.secret.hex() not in str(err2.value)
    assert not (tmp_path / "dst").exists()


def test_unpack_into_a_plain_repository_is_refused(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    _, out = packed(tmp_path, repo)
    plain = Repository.init(tmp_path / "plain", encrypt=False)
    before = tree(plain.path)
    with pytest.raises(UsageError, match="has no encryption") as err:
        Repository.unpack(out, plain.path, key=user)
    assert err.value.exit_code == ExitCode.ERROR and "never decrypted" in str(err.value)
    assert tree(plain.path) == before


def test_unpack_into_a_repository_with_another_master_key_is_refused(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    _, out = packed(tmp_path, repo)
    other = Repository.init(tmp_path / "other", encrypt=True, key=user)  # same user key
    before = tree(other.path)
    with pytest.raises(UsageError, match="another master key"):
        Repository.unpack(out, other.path, key=user)
    assert tree(other.path) == before


def test_a_plain_pack_still_does_not_go_into_an_encrypted_repository(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    plain = Repository.init(tmp_path / "plain", encrypt=False)
    sid = snap(plain, {"files/a": b"a"})
    plain.pack(sid, tmp_path / "plain.tar.gz")
    before = tree(repo.path)
    with pytest.raises(UsageError, match="encrypted"):
        Repository.unpack(tmp_path / "plain.tar.gz", repo.path, key=user)
    assert tree(repo.path) == before


# --- hostile encrypted archives ----------------------------------------------------------------


def test_altered_ciphertext_of_a_data_object_keeps_it_out_and_writes_no_snapshot(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    target = object_name(repo.load_snapshot(sid).files[0].digest)
    items = members(out)
    for i, (info, body) in enumerate(items):
        if info.name == target:
            altered = bytearray(body)
            altered[-5] ^= 1  # inside the final segment's tag: same size
            items[i] = (info, bytes(altered))
    evil = write_tar(tmp_path / "evil.tar.gz", items)
    with pytest.raises(IntegrityError, match="corrupt") as err:
        Repository.unpack(evil, tmp_path / "dst", key=user)
    assert err.value.exit_code == ExitCode.INTEGRITY
    dst = Repository.open(tmp_path / "dst", key=user)
    assert dst.list_snapshots() == []
    assert not (tmp_path / "dst" / target).exists()
    assert not [p for p in (tmp_path / "dst").rglob("*") if p.name.startswith(".")]


def test_swapped_data_objects_of_one_size_are_refused(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid = snap(repo, {"files/a": b"A" * 4000, "files/b": b"B" * 4000})
    out = repo.pack(sid, tmp_path / "p.tar.gz").path
    digests = [object_name(f.digest) for f in repo.load_snapshot(sid).files]
    items = members(out)
    bodies = {info.name: body for info, body in items}
    swapped = [
        (info, bodies[digests[1 - digests.index(info.name)]] if info.name in digests else body)
        for info, body in items
    ]
    with pytest.raises(IntegrityError, match="corrupt"):
        Repository.unpack(write_tar(tmp_path / "e.tar.gz", swapped), tmp_path / "dst", key=user)
    assert Repository.open(tmp_path / "dst", key=user).list_snapshots() == []


def _piece_names(repo: Repository, sid: str) -> list[str]:
    return sorted(object_name(d) for d in repo.snapshots.pieces(sid)[1])


Edit = Callable[[Repository, str, list[tuple[tarfile.TarInfo, bytes]]], None]


def _flip_piece(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    name = _piece_names(repo, sid)[0]
    for i, (info, body) in enumerate(items):
        if info.name == name:
            items[i] = (info, body[:-1] + bytes([body[-1] ^ 1]))


def _swap_pieces(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    first, second = _piece_names(repo, sid)[:2]
    bodies = {info.name: body for info, body in items}
    for i, (info, _) in enumerate(items):
        if info.name in (first, second):
            items[i] = (info, bodies[second if info.name == first else first])


def _flip_root(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    info, body = items[-1]
    items[-1] = (info, body[:40] + bytes([body[40] ^ 1]) + body[41:])


def _extra_object(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    digest = repo.put_bytes(b"a valid sealed object no snapshot of the pack references")
    items.insert(2, member(object_name(digest), repo.object_path(digest).read_bytes()))


def _resize_object(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    name = object_name(repo.load_snapshot(sid).files[0].digest)
    for i, (info, body) in enumerate(items):
        if info.name == name:
            items[i] = (info, body + b"\x00" * 28)


def _strip_encryption(
    repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    plain = RepositoryConfig(id=repo.id, version=2).to_bytes()
    items[0] = (items[0][0], plain)


def _drop_keys(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    items[:] = [(i, b) for i, b in items if not i.name.startswith("keys/")]


def _scrypt_bomb(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    for i, (info, body) in enumerate(items):
        if info.name.startswith("keys/"):
            record = json.loads(body)
            record["kind"] = "passphrase"
            record["kdf"] = {"name": "scrypt", "salt": record["kdf"]["salt"], "n": 1 << 30,
                             "r": 8, "p": 1}  # fmt: skip
            items[i] = (info, json.dumps(record).encode())


def _huge_key(repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]) -> None:
    items.insert(1, member("keys/" + "0" * 16 + ".json", b" " * (keys.MAX_RECORD_BYTES + 1)))


def _format1_snapshot(
    repo: Repository, sid: str, items: list[tuple[tarfile.TarInfo, bytes]]
) -> None:
    raw = manifest(repo, {"files/x": b"x"}, created="2024-03-01T02:00:00Z").to_json_bytes()
    import hashlib

    items.append(member(f"snapshots/{hashlib.sha256(raw).hexdigest()}.json", raw))


HOSTILE: dict[str, tuple[Edit, str]] = {
    "altered-piece": (_flip_piece, "corrupt|authenticate"),
    "swapped-pieces": (_swap_pieces, "corrupt|authenticate"),
    "altered-root": (_flip_root, "corrupt|authenticate"),
    "extra-object": (_extra_object, "no snapshot of the archive references"),
    "resized-object": (_resize_object, "its snapshot records"),
    "stripped-encryption": (_strip_encryption, "declares no encryption"),
    "no-keys": (_drop_keys, "without its wrapped keys"),
    "scrypt-bomb": (_scrypt_bomb, "exceed what amlport accepts"),
    "huge-key-record": (_huge_key, "too large"),
    "format-1-snapshot": (_format1_snapshot, "format-1 snapshot in an encrypted pack"),
    "key-traversal": (
        lambda r, s, items: items.insert(1, member("keys/../../escaped.json", b"{}")),
        "outside the bundle layout",
    ),
    "key-odd-name": (
        lambda r, s, items: items.insert(1, member("keys/evil.json", b"{}")),
        "outside the bundle layout",
    ),
    "key-symlink": (
        lambda r, s, items: items.insert(
            1, member("keys/" + "1" * 16 + ".json", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        ),
        "not a regular file",
    ),
    "absolute": (
        lambda r, s, items: items.insert(1, member("/tmp/amlport-escaped-key.json", b"{}")),
        "outside the bundle layout",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_encrypted_archive_is_refused_before_anything_is_written(
    tmp_path: Path, repo: Repository, user: keys.UserKey, case: str
) -> None:
    sid, out = packed(tmp_path, repo)
    edit, reason = HOSTILE[case]
    items = members(out)
    edit(repo, sid, items)
    evil = write_tar(tmp_path / "evil.tar.gz", items)
    before = tree(tmp_path)
    with pytest.raises(IntegrityError, match=reason) as err:
        Repository.unpack(evil, tmp_path / "dst", key=user)
    assert err.value.exit_code == ExitCode.INTEGRITY
    assert tree(tmp_path) == before  # not even the repository directory
    assert not Path("/tmp/amlport-escaped-key.json").exists()
    assert user.secret.hex() not in str(err.value)


def test_a_piece_declaring_more_than_a_piece_may_hold_is_refused_before_decompression(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    name = _piece_names(repo, sid)[0]
    codec = repo.objects.codec
    assert isinstance(codec, crypto.SealedCodec)
    header = envelope.Header(envelope.CODEC_ZSTD, True, archive.MAX_META_BYTES + 1).pack()
    sealed: list[bytes] = []
    writer = crypto.SealWriter(codec._cipher(), crypto.KIND_META, header, sealed.append)
    writer.write(envelope.compress(b"\x00" * 4096))  # a bomb would say far more
    writer.finish(name.rsplit("/", 1)[1])  # authenticates under the piece's name
    items = [(i, b"".join(sealed) if i.name == name else b) for i, b in members(out)]
    evil = write_tar(tmp_path / "e.tar.gz", items)
    before = tree(tmp_path)
    with pytest.raises(IntegrityError, match="declares"):
        Repository.unpack(evil, tmp_path / "dst", key=user)
    assert tree(tmp_path) == before


def test_oversized_pieces_are_not_held(
    tmp_path: Path, repo: Repository, user: keys.UserKey, monkeypatch: pytest.MonkeyPatch
) -> None:
    sid, out = packed(tmp_path, repo)
    biggest = max(len(b) for i, b in members(out) if i.name in _piece_names(repo, sid))
    monkeypatch.setattr(archive, "MAX_PIECE_STORED", biggest - 1)  # the largest is not held
    with pytest.raises(IntegrityError, match="incomplete"):
        Repository.unpack(out, tmp_path / "dst", key=user)
    monkeypatch.setattr(archive, "MAX_PIECE_STORED", 1 << 30)
    monkeypatch.setattr(archive, "MAX_PIECES_TOTAL", biggest)  # all of them exceed the bound
    with pytest.raises(IntegrityError, match="MiB of snapshot pieces"):
        Repository.unpack(out, tmp_path / "dst", key=user)
    assert not (tmp_path / "dst").exists()


def test_sealed_data_objects_are_not_held_in_memory_while_scanning(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid, out = packed(tmp_path, repo)
    scanned = archive.scan(out, lambda: user)
    _, pieces = repo.snapshots.pieces(sid)
    assert set(scanned.candidates) == pieces and scanned.pieces == pieces


# --- the CLI -----------------------------------------------------------------------------------


def test_cli_packs_and_unpacks_an_encrypted_repository_with_the_key_options(
    tmp_path: Path, repo: Repository
) -> None:
    from helpers.rel_workspace import run_in_process

    from amlport.bundle.repository import KeySource

    sid = snap(repo, {"files/a": SECRET_DATA})
    key = str(tmp_path / "key.json")
    out = tmp_path / "p.tar.gz"
    ran = run_in_process("pack", f"{repo.path}@{sid[:12]}", "-o", str(out), "--key-file", key,
                         "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["encrypted"] is True and doc["objects"] == 1 and doc["snapshot"] == sid
    KeySource.reset()
    ran = run_in_process("unpack", str(out), "--repo", str(tmp_path / "nokey"))
    assert ran.returncode == 2 and "--key-file" in ran.stderr
    assert not (tmp_path / "nokey").exists()
    KeySource.reset()
    ran = run_in_process("unpack", str(out), "--repo", str(tmp_path / "dst"), "--key-file", key,
                         "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["encrypted"] is True and doc["snapshots"] == [sid]
    secret = json.loads((tmp_path / "key.json").read_text(encoding="utf-8"))["key"]
    assert secret not in ran.stdout + ran.stderr
    KeySource.reset()
    other = tmp_path / "other.json"
    other.write_text(keys.new_key_file_text(), encoding="utf-8")
    ran = run_in_process("unpack", str(out), "--repo", str(tmp_path / "d2"), "--key-file",
                         str(other))  # fmt: skip
    assert ran.returncode == 2 and "does not open the encrypted pack" in ran.stderr


@pytest.mark.parametrize("size", [0, crypto.SEGMENT, 2 * crypto.SEGMENT + 5])
def test_objects_of_several_segments_travel_as_stored(
    tmp_path: Path, repo: Repository, user: keys.UserKey, size: int
) -> None:
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    sid = snap(repo, {"files/big": data})
    digest = repo.load_snapshot(sid).files[0].digest
    out = repo.pack(sid, tmp_path / "p.tar.gz").path
    stored = repo.object_path(digest).read_bytes()
    assert dict((i.name, b) for i, b in members(out))[object_name(digest)] == stored
    Repository.unpack(out, tmp_path / "dst", key=user)
    dst = Repository.open(tmp_path / "dst", key=user)
    assert dst.object_path(digest).read_bytes() == stored and dst.get_bytes(digest) == data


def test_a_damaged_middle_segment_stores_nothing_of_the_object(
    tmp_path: Path, repo: Repository, user: keys.UserKey
) -> None:
    sid = snap(repo, {"files/big": b"\x07" * (2 * crypto.SEGMENT + 5)})
    digest = repo.load_snapshot(sid).files[0].digest
    out = repo.pack(sid, tmp_path / "p.tar.gz").path
    items = members(out)
    for i, (info, body) in enumerate(items):
        if info.name == object_name(digest):
            at = envelope.HEADER_SIZE + crypto.SALT_SIZE + crypto.SEGMENT + 1000  # segment 1
            items[i] = (info, body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :])
    with pytest.raises(IntegrityError, match="segment 1 does not authenticate"):
        Repository.unpack(write_tar(tmp_path / "e.tar.gz", items), tmp_path / "dst", key=user)
    assert not (tmp_path / "dst" / object_name(digest)).exists()
    assert not [p for p in (tmp_path / "dst").rglob(".tmp-*")]
    assert Repository.open(tmp_path / "dst", key=user).list_snapshots() == []
