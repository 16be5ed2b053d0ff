"""``AMLPORT_TEST_ENCRYPT=1``: run the repository tests again on encrypted repositories.

``tests/conftest.py`` then makes every repository a test creates (format 2) encrypted under a
fixed master key, so tests can still predict object names: ``sha`` gives the keyed name
(HMAC-SHA-256 under the id key, ``bundle/crypto.py``) instead of the plain SHA-256.
``make test-encrypted`` runs the bundle unit tests this way.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ENCRYPTED = os.environ.get("AMLPORT_TEST_ENCRYPT") == "1"
TEST_MASTER_KEY = b"\xa5" * 32
TEST_USER_KEY = b"\x5a" * 32


def use_test_keys(env: pytest.MonkeyPatch) -> None:
    """With ``AMLPORT_TEST_ENCRYPT=1``: every repository created until ``env`` is undone is
    encrypted under the test key, in this process and in the ``amlport`` processes started
    (``encrypted_site/sitecustomize.py`` first on ``$PYTHONPATH``). tests/conftest.py does it
    for every test; ``keys_for_fixture`` for a fixture of a wider scope, set up before that."""
    if not ENCRYPTED:
        return
    from amlport.bundle.keys import KIND_FILE, UserKey
    from amlport.bundle.repository import KeySource

    env.setattr(KeySource, "test_encrypt", True)
    env.setattr(KeySource, "default_key", UserKey(KIND_FILE, TEST_USER_KEY, "test key"))
    env.setattr(KeySource, "test_master", TEST_MASTER_KEY)
    site = str(Path(__file__).parent / "encrypted_site")
    env.setenv("PYTHONPATH", os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")])))


@contextlib.contextmanager
def keys_for_fixture() -> Iterator[pytest.MonkeyPatch]:
    """``use_test_keys`` for a module- or session-scoped fixture: pytest sets it up before
    the function-scoped fixtures of the test that first asks for it, so a repository it made
    was not encrypted when that test ran first (alone, or on an xdist worker of its own)."""
    with pytest.MonkeyPatch.context() as env:
        use_test_keys(env)
        yield env


def sha(data: bytes) -> str:
    """The name a data object holding ``data`` gets in a repository a test creates."""
    if ENCRYPTED:
        from amlport.bundle.crypto import derive

        return "sha256:" + hmac.new(derive(TEST_MASTER_KEY)[1], data, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(data).hexdigest()


def stored_contents(repo: Path) -> list[bytes]:
    """What a local repository stores, as a reader holding its key sees it: unencrypted, every
    file's bytes (objects, packs, roots, index) as they are on disk, and each packed object's
    bytes on their own; encrypted, every object decrypted (a data object, else a snapshot
    piece) and every snapshot's manifest as JSON. For tests that search what is stored for a
    secret, or for a file's exact bytes."""
    from amlport.bundle import Repository
    from amlport.errors import IntegrityError

    with Repository.open(repo) as opened:
        if not opened.encrypted:
            packed = [hexd for hexd, _ in opened.objects.pack_index().items()]
            return [p.read_bytes() for p in repo.rglob("*") if p.is_file()] + [
                opened.objects.stored_checked(f"sha256:{hexd}") for hexd in packed
            ]
        found = []
        for digest in opened.objects.iter_digests():
            try:
                found.append(opened.objects.get_bytes(digest))
            except IntegrityError:  # sealed as metadata, not data
                found.append(opened.objects.get_meta(digest, where="test"))
        for info in opened.list_snapshots():
            found.append(json.dumps(opened.load_snapshot(info.id).to_dict()).encode())
        return found
