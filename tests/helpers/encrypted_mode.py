"""``AMLPORT_TEST_ENCRYPT=1``: run the repository tests again on encrypted repositories.

``tests/conftest.py`` then makes every repository a test creates (format 2) encrypted under a
fixed master key, so tests can still predict object names: ``sha`` gives the keyed name
(HMAC-SHA-256 under the id key, ``bundle/crypto.py``) instead of the plain SHA-256.
``make test-encrypted`` runs the bundle unit tests this way.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path

ENCRYPTED = os.environ.get("AMLPORT_TEST_ENCRYPT") == "1"
TEST_MASTER_KEY = b"\xa5" * 32
TEST_USER_KEY = b"\x5a" * 32


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
