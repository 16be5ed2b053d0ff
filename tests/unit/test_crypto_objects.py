"""Encrypted repositories (``bundle/crypto.py``): sealed objects and keyed names.

Each test builds a real repository in a temp folder with a key file; tampering is done on
the stored files the way someone with write access to the repository would.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path

import pytest
from helpers.bundle import key_file, object_span, overwrite_stored, pack_files, sha, stored_bytes
from helpers.bundle import snapshot as snap

from amlport.bundle import Repository, crypto, envelope, keys
from amlport.bundle.crypto import KeyRequired
from amlport.errors import IntegrityError, UsageError

# These tests give every key themselves (even under AMLPORT_TEST_ENCRYPT=1).
pytestmark = pytest.mark.own_keys


@pytest.fixture
def user(tmp_path: Path) -> keys.UserKey:
    return key_file(tmp_path)


@pytest.fixture
def repo(tmp_path: Path, user: keys.UserKey) -> Repository:
    return Repository.init(tmp_path / "repo", encrypt=True, key=user)


def test_config_records_the_scheme_and_a_wrapped_key(repo: Repository) -> None:
    config = json.loads((repo.path / "config.json").read_text(encoding="utf-8"))
    assert config["encryption"] == {
        "cipher": "aes-256-gcm", "kdf": "hkdf-sha256", "id_hash": "hmac-sha256",
        "segment": 1 << 20,
    }  # fmt: skip
    assert [p.suffix for p in (repo.path / "keys").iterdir()] == [".json"]


def test_round_trip_and_dedup_with_names_that_are_not_plain_sha256(repo: Repository) -> None:
    data = b"training data that an attacker may already know"
    digest, new = repo.add_bytes(data)
    again, new_again = repo.add_bytes(data)
    assert new and not new_again and again == digest  # same file twice = one object
    assert digest != sha(data) and digest.startswith("sha256:")  # a known file is not confirmed
    assert not repo.has_object(sha(data))
    stored = repo.object_path(digest).read_bytes()
    assert data not in stored and len(stored) == crypto.stored_size(len(data))
    assert repo.get_bytes(digest) == data


@pytest.mark.parametrize("size", [0, 1, crypto.SEGMENT - 1, crypto.SEGMENT, 2 * crypto.SEGMENT + 5])
def test_streamed_object_sizes_are_deterministic_and_read_back(repo: Repository, size: int) -> None:
    data = hashlib.shake_256(str(size).encode()).digest(size) if size else b""
    digest, length = repo.put_stream(io.BytesIO(data))
    assert length == size and digest == repo.objects.digest_of(data)
    assert repo.object_size(digest) == crypto.stored_size(size)
    assert crypto.plain_size_of(crypto.stored_size(size)) == size
    assert repo.objects.get_bytes(digest, size) == data
    with repo.objects.open(digest, size) as fh:
        assert fh.read() == data
    assert repo.objects.measure(digest, size) == (size, None)


def test_snapshot_round_trip_verify_and_sizes_from_a_listing(repo: Repository) -> None:
    contents = {"files/a": b"a" * 10, "files/b": b"b" * (crypto.SEGMENT + 3), "files/c": b"a" * 10}
    sid = snap(repo, contents)
    loaded = repo.load_snapshot(sid)
    assert {f.path: f.size for f in loaded.files} == {k: len(v) for k, v in contents.items()}
    assert len({f.digest for f in loaded.files}) == 2  # dedup across paths
    assert repo.read_file(loaded, "files/b") == contents["files/b"]
    report = repo.verify()
    assert report.ok and report.objects_checked == 2
    sizer = repo.objects.plain_sizer()
    assert {sizer(f.digest) for f in loaded.files} == {10, crypto.SEGMENT + 3}


def test_a_flipped_byte_is_detected_on_read_and_by_verify(repo: Repository) -> None:
    sid = snap(repo, {"files/a": b"precious" * 100})
    entry = repo.load_snapshot(sid).files[0]
    path = repo.object_path(entry.digest)
    raw = bytearray(path.read_bytes())
    raw[-20] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="does not authenticate"):
        repo.get_bytes(entry.digest)
    report = repo.verify()
    assert not report.ok and report.problems[0].digest == entry.digest


def test_two_swapped_objects_are_both_refused(repo: Repository) -> None:
    one, two = repo.put_bytes(b"first file"), repo.put_bytes(b"second file")
    p1, p2 = repo.object_path(one), repo.object_path(two)
    b1, b2 = p1.read_bytes(), p2.read_bytes()
    p1.write_bytes(b2)
    p2.write_bytes(b1)
    for digest in (one, two):  # same size: only the name binding can tell
        with pytest.raises(IntegrityError, match="another name"):
            repo.get_bytes(digest)


def test_an_object_cut_at_a_segment_boundary_is_truncated(repo: Repository) -> None:
    data = b"x" * (2 * crypto.SEGMENT + 1)
    digest, _ = repo.put_stream(io.BytesIO(data))
    path = repo.object_path(digest)
    whole = path.read_bytes()
    header = envelope.HEADER_SIZE + crypto.SALT_SIZE
    path.write_bytes(whole[: header + 2 * (crypto.SEGMENT + crypto.SEGMENT_OVERHEAD)])
    with pytest.raises(IntegrityError, match="truncated"):
        repo.objects.get_bytes(digest)
    with pytest.raises(IntegrityError, match="truncated"), repo.objects.open(digest) as fh:
        fh.read()
    path.write_bytes(whole[:-7])  # anywhere else: the size alone shows it, even without key
    assert crypto.plain_size_of(len(whole) - 7) is None


def test_a_root_replayed_under_another_snapshot_id_is_refused(repo: Repository) -> None:
    old = snap(repo, {"files/a": b"v1"}, created="2024-03-01T02:00:00Z")
    new = snap(repo, {"files/a": b"v2"}, created="2024-03-02T02:00:00Z")
    root_new = repo.path / "snapshots" / new
    shutil.copyfile(repo.path / "snapshots" / old, root_new)  # the old root, new name
    with pytest.raises(IntegrityError):
        repo.load_snapshot(new)
    report = repo.verify()
    assert [p.snapshot_id for p in report.problems] == [new]


def test_a_metadata_piece_swapped_with_a_data_object_is_refused(repo: Repository) -> None:
    """A data object's sealed bytes where a piece's are, in its pack (the default) or its own
    file: a data object of the piece's stored length, so that the pack stays at its indexed
    size and only the seal (the kind and the name it binds) can tell."""
    sid = snap(repo, {"files/a": b"some data"})
    piece = sorted(repo.snapshots.pieces(sid)[1])[0]
    plain = crypto.plain_size_of(object_span(repo, piece)[2])
    assert plain is not None
    data = repo.put_bytes(b"d" * plain)
    overwrite_stored(repo, piece, stored_bytes(repo, data))
    with pytest.raises(IntegrityError):
        repo.load_snapshot(sid)


def test_without_the_key_names_and_contents_are_refused_but_structure_verifies(
    tmp_path: Path, repo: Repository
) -> None:
    sid = snap(repo, {"files/a": b"a" * 3000, "files/b": b"b"})
    locked = Repository.open(repo.path)
    assert locked.encrypted and not locked.has_key
    assert [i for i in locked.snapshots.ids()] == [sid]  # ids are listed, nothing is read
    with pytest.raises(KeyRequired):
        locked.load_snapshot(sid)
    with pytest.raises(KeyRequired):
        locked.put_bytes(b"new")
    warnings: list[str] = []
    locked = Repository.open(repo.path, on_warning=warnings.append)
    report = locked.verify()
    # Each loose object's file and each pack's first header (the pack index is sealed).
    loose = list(repo.path.glob("objects/sha256/??/*"))
    assert report.ok and report.objects_checked == len(loose)
    assert report.packs_checked == len(pack_files(repo.path))
    assert warnings and "only its structure" in warnings[0]
    entry = repo.load_snapshot(sid).file("files/a")
    assert entry is not None
    victim = repo.object_path(entry.digest)
    whole = victim.read_bytes()
    victim.write_bytes(whole[:30])  # shorter than any sealed object: visible from the size
    assert not locked.verify().ok
    victim.write_bytes(whole[:8] + b"\x07" + whole[9:])  # another envelope version
    assert "not known" in locked.verify().problems[0].message
    victim.write_bytes(whole[:-1])  # a byte less is a shorter valid layout: needs the key
    assert locked.verify().ok and not repo.verify().ok
    victim.write_bytes(whole)
    if not repo.objects.packing:  # AMLPORT_PACKS=0: no pack to damage
        return
    pack = pack_files(repo.path)[0]  # the snapshot's pieces, packed
    whole = pack.read_bytes()
    pack.write_bytes(whole[:8] + b"\x07" + whole[9:])  # its first object's envelope version
    assert "not known" in locked.verify().problems[0].message
    pack.write_bytes(whole[:-1])  # cut short: which objects it holds, and where, is sealed
    assert locked.verify().ok and not repo.verify().ok


def test_wrong_key_is_a_clear_error_never_garbage(tmp_path: Path, repo: Repository) -> None:
    snap(repo, {"files/a": b"a"})
    other = key_file(tmp_path, "other.json")
    with pytest.raises(keys.WrongKey, match="does not open") as caught:
        Repository.open(repo.path, key=other)
    assert caught.value.exit_code == 2
    with pytest.raises(keys.WrongKey):
        Repository.open(repo.path, key=keys.passphrase_key("guess", "$AMLPORT_REPO_KEY"))


def test_passphrase_repository_and_rotation_without_rewriting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "SCRYPT", {"n": 1 << 10, "r": 8, "p": 1})  # fast, still scrypt
    old = keys.passphrase_key("correct horse battery staple", "$AMLPORT_REPO_KEY")
    repo = Repository.init(tmp_path / "repo", encrypt=True, key=old)
    sid = snap(repo, {"files/a": b"kept as is"})
    before = {p: p.read_bytes() for p in (repo.path / "objects").rglob("*") if p.is_file()}
    record = json.loads(next((repo.path / "keys").iterdir()).read_text(encoding="utf-8"))
    assert record["kdf"]["name"] == "scrypt" and record["kdf"]["n"] == 1 << 10
    new = key_file(tmp_path, "new.json")
    from amlport.bundle.repository import KeySource

    KeySource.key_file = None
    monkeypatch.setenv("AMLPORT_REPO_KEY", "correct horse battery staple")
    keys._CACHE.clear()
    opened = Repository.open(repo.path)
    new_id = opened.key_add(new)
    old_id = next(i.id for i in opened.key_list() if i.id != new_id)
    opened.key_remove(old_id)
    with pytest.raises(UsageError, match="last key"):
        opened.key_remove(new_id)
    keys._CACHE.clear()
    with pytest.raises(keys.WrongKey):
        Repository.open(repo.path, key=old)
    rotated = Repository.open(repo.path, key=new)
    assert rotated.read_file(rotated.load_snapshot(sid), "files/a") == b"kept as is"
    after = {p: p.read_bytes() for p in (repo.path / "objects").rglob("*") if p.is_file()}
    assert after == before  # no object rewritten


def test_a_key_for_an_unencrypted_repository_is_refused(tmp_path: Path, user: keys.UserKey) -> None:
    plain = Repository.init(tmp_path / "plain", encrypt=False)
    with pytest.raises(UsageError, match="not encrypted"):
        Repository.open(plain.path, key=user)


def test_stripping_encryption_from_config_is_detected(tmp_path: Path, repo: Repository) -> None:
    config = repo.path / "config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    del data["encryption"]
    config.write_text(json.dumps(data), encoding="utf-8")
    key = key_file(tmp_path, "any.json")
    with pytest.raises(IntegrityError, match=r"config\.json was altered"):
        Repository.open(repo.path, key=key)


@pytest.mark.parametrize(
    "change",
    [{"cipher": "aes-128-gcm"}, {"segment": 4096}, {"segment": 1048576.0}, {"extra": 1}],
)
def test_an_unknown_encryption_scheme_is_refused(repo: Repository, change: dict) -> None:
    config = repo.path / "config.json"
    data = json.loads(config.read_text(encoding="utf-8"))
    data["encryption"].update(change)
    config.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(IntegrityError, match="does not implement") as caught:
        Repository.open(repo.path)
    assert caught.value.exit_code == 4


def test_encrypt_needs_a_key_and_format_2(tmp_path: Path, user: keys.UserKey) -> None:
    with pytest.raises(UsageError, match="needs a key"):
        Repository.init(tmp_path / "a", encrypt=True)
    with pytest.raises(UsageError, match="format 2"):
        Repository.init(tmp_path / "b", encrypt=True, key=user, version=1)


def test_secrets_never_appear_in_reprs_or_messages(tmp_path: Path, repo: Repository) -> None:
    text = (tmp_path / "key.json").read_text(encoding="utf-8")
    secret = json.loads(text)["key"]
    user = keys.read_key_file(tmp_path / "key.json")
    assert secret not in repr(user) and repr(user.secret) not in repr(user)
    phrase = keys.passphrase_key("hunter2-hunter2", "$AMLPORT_REPO_KEY")
    with pytest.raises(keys.WrongKey) as caught:
        Repository.open(repo.path, key=phrase)
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(phrase)


def test_the_source_index_is_sealed_and_a_damaged_one_is_ignored(repo: Repository) -> None:
    data = b"blob bytes"
    digest = repo.put_bytes(data)
    index = repo.source_index("acct-1234")
    index.record("azureml-blobstore", "secret-project/train.csv", '"0x8D"', len(data), None, digest)
    index.save()
    stored = (repo.path / "index" / "acct-1234.json").read_bytes()
    assert b"secret-project" not in stored and b"azureml-blobstore" not in stored
    again = repo.source_index("acct-1234")
    found = again.lookup("azureml-blobstore", "secret-project/train.csv", '"0x8D"', len(data), None)
    assert found == digest
    (repo.path / "index" / "acct-1234.json").write_bytes(stored[:-1] + bytes([stored[-1] ^ 1]))
    warnings: list[str] = []
    repo._warn = warnings.append
    damaged = repo.source_index("acct-1234")
    assert damaged.lookup("azureml-blobstore", "secret-project/train.csv", '"0x8D"',
                          len(data), None) is None  # fmt: skip
    assert warnings


def test_unpack_into_an_encrypted_repository_is_refused(tmp_path: Path, repo: Repository) -> None:
    plain = Repository.init(tmp_path / "plain", encrypt=False)
    sid = snap(plain, {"files/a": b"a"})
    pack = tmp_path / "one.tar.gz"
    plain.pack(sid, pack)
    before = sorted(p.name for p in repo.path.rglob("*"))
    from amlport.bundle.repository import KeySource

    KeySource.default_key = keys.read_key_file(tmp_path / "key.json")
    with pytest.raises(UsageError, match="encrypted"):
        Repository.unpack(pack, repo.path)
    assert sorted(p.name for p in repo.path.rglob("*")) == before


def test_streaming_a_large_object_keeps_memory_bounded(repo: Repository) -> None:
    import tracemalloc

    block = hashlib.sha256(b"seed").digest() * 2048  # 64 KiB

    class Stream(io.RawIOBase):
        left = 24 << 20

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
            size = min(len(buffer), self.left, len(block))
            buffer[:size] = block[:size]
            self.left -= size
            return size

    tracemalloc.start()
    try:
        digest, size = repo.put_stream(io.BufferedReader(Stream()))
        write_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with repo.objects.open(digest, size) as fh:
            while fh.read(1 << 20):
                pass
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert size == 24 << 20
    assert write_peak < 12 << 20 and read_peak < 12 << 20  # a few segments, not the object
