"""Key files and wrapped keys of encrypted repositories (``bundle/keys.py``): hostile input.

A user's key file and the repository's ``keys/*.json`` are both input amlport did not
necessarily write: huge, deeply nested, of the wrong types, asking scrypt for gigabytes.
Every one is refused with a message that never quotes the file's content.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from amlport.bundle import Repository, keys
from amlport.errors import IntegrityError, UsageError

GOOD = base64.b64encode(b"\x01" * 32).decode()


def write(tmp_path: Path, text: str | bytes, name: str = "k.json") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_a_new_key_file_reads_back_and_is_random(tmp_path: Path) -> None:
    one = keys.read_key_file(write(tmp_path, keys.new_key_file_text(), "a"))
    two = keys.read_key_file(write(tmp_path, keys.new_key_file_text(), "b"))
    assert one.kind == keys.KIND_FILE and len(one.secret) == 32 and one.secret != two.secret


@pytest.mark.parametrize(
    "content",
    [
        "",
        "not json at all",
        "[" * 2000 + "]" * 2000,  # deep nesting: refused before the parser recurses
        json.dumps({"format": "amlport.key", "version": 1, "key": 5}),
        json.dumps({"format": "amlport.key", "version": "1", "key": GOOD}),
        json.dumps({"format": "amlport.key", "version": True, "key": GOOD}),
        json.dumps({"format": "amlport.key", "version": 1, "key": GOOD[:-4]}),
        json.dumps({"format": "amlport.key", "version": 1, "key": "!!!!" * 11}),
        json.dumps({"format": "amlport.key", "version": 1, "key": GOOD, "extra": []}),
        json.dumps({"format": "other", "version": 1, "key": GOOD}),
        json.dumps([GOOD]),
        "\udcff",
    ],
)
def test_hostile_key_files_are_refused_without_quoting_them(tmp_path: Path, content: str) -> None:
    path = write(tmp_path, content.encode("utf-8", "surrogateescape"))
    with pytest.raises(UsageError, match="not an amlport key file") as caught:
        keys.read_key_file(path)
    assert GOOD not in str(caught.value) and caught.value.exit_code == 2


def test_huge_fifo_and_missing_key_files_are_refused(tmp_path: Path) -> None:
    huge = write(tmp_path, b" " * (keys.MAX_KEY_FILE_BYTES + 1))
    with pytest.raises(UsageError, match="regular file of at most"):
        keys.read_key_file(huge)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(UsageError, match="regular file"):  # never waited on
        keys.read_key_file(fifo)
    with pytest.raises(UsageError, match="does not exist"):
        keys.read_key_file(tmp_path / "missing")
    with pytest.raises(UsageError, match="regular file"):
        keys.read_key_file(tmp_path)


def test_passphrases_are_bounded() -> None:
    with pytest.raises(UsageError, match="empty"):
        keys.passphrase_key("", "$AMLPORT_REPO_KEY")
    with pytest.raises(UsageError, match="longer than"):
        keys.passphrase_key("x" * (keys.MAX_KEY_FILE_BYTES + 1), "$AMLPORT_REPO_KEY")


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Repository, keys.UserKey]:
    user = keys.read_key_file(write(tmp_path, keys.new_key_file_text(), "user.json"))
    return Repository.init(tmp_path / "repo", encrypt=True, key=user), user


def _record(repo: Repository) -> Path:
    return next((repo.path / "keys").iterdir())


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(
            kdf={"name": "scrypt", "salt": d["kdf"]["salt"], "n": 1 << 30, "r": 8, "p": 1}
        ),
        lambda d: d.update(
            kdf={"name": "scrypt", "salt": d["kdf"]["salt"], "n": 3, "r": 8, "p": 1}
        ),
        lambda d: d.update(kdf={"name": "argon2", "salt": d["kdf"]["salt"]}),
        lambda d: d.update(nonce="AAAA"),
        lambda d: d.update(wrapped=12),
        lambda d: d.update(version=True),
        lambda d: d.update(kind="magic"),
        lambda d: d.update(id="0" * 16),
    ],
)
def test_hostile_wrapped_keys_are_integrity_errors(
    repo: tuple[Repository, keys.UserKey], damage: object
) -> None:
    repository, user = repo
    path = _record(repository)
    data = json.loads(path.read_text(encoding="utf-8"))
    damage(data)  # type: ignore[operator]
    path.write_text(json.dumps(data), encoding="utf-8")
    keys._CACHE.clear()
    with pytest.raises(IntegrityError) as caught:
        Repository.open(repository.path, key=user)
    assert caught.value.exit_code == 4


def test_huge_and_deep_wrapped_keys_are_refused(repo: tuple[Repository, keys.UserKey]) -> None:
    repository, user = repo
    path = _record(repository)
    for text in ("{" + " " * (keys.MAX_RECORD_BYTES + 1) + "}", "[" * 5000 + "]" * 5000):
        path.write_text(text, encoding="utf-8")
        keys._CACHE.clear()
        with pytest.raises(IntegrityError, match="keys/"):
            Repository.open(repository.path, key=user)


def test_a_wrapped_key_moved_to_another_id_does_not_open(
    repo: tuple[Repository, keys.UserKey],
) -> None:
    repository, user = repo
    path = _record(repository)
    data = json.loads(path.read_text(encoding="utf-8"))
    data["id"] = "f" * 16
    path.unlink()
    (path.parent / f"{'f' * 16}.json").write_text(json.dumps(data), encoding="utf-8")
    keys._CACHE.clear()
    with pytest.raises(keys.WrongKey):  # the id is bound in the wrapping's associated data
        Repository.open(repository.path, key=user)


def test_an_encrypted_repository_without_keys_says_so(
    repo: tuple[Repository, keys.UserKey],
) -> None:
    repository, user = repo
    _record(repository).unlink()
    keys._CACHE.clear()
    with pytest.raises(IntegrityError, match="holds no key"):
        Repository.open(repository.path, key=user)


def test_a_key_file_is_a_secret_to_the_detector() -> None:
    from amlport.secrets import find_secrets, redact

    text = keys.new_key_file_text()
    secret = json.loads(text)["key"]
    assert find_secrets(text) == {"amlport_key": 1}
    assert secret not in redact(text) and "amlport.key" in redact(text)
