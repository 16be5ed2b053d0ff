"""``AMLPORT_TEST_ENCRYPT=1``: run the repository tests again on encrypted repositories.

``tests/conftest.py`` then makes every repository a test creates (format 2) encrypted under a
fixed master key, so tests can still predict object names: ``sha`` gives the keyed name
(HMAC-SHA-256 under the id key, ``bundle/crypto.py``) instead of the plain SHA-256.
``make test-encrypted`` runs the bundle unit tests this way.
"""

from __future__ import annotations

import hashlib
import hmac
import os

ENCRYPTED = os.environ.get("AMLPORT_TEST_ENCRYPT") == "1"
TEST_MASTER_KEY = b"\xa5" * 32
TEST_USER_KEY = b"\x5a" * 32


def sha(data: bytes) -> str:
    """The name a data object holding ``data`` gets in a repository a test creates."""
    if ENCRYPTED:
        from amlport.bundle.crypto import derive

        return "sha256:" + hmac.new(derive(TEST_MASTER_KEY)[1], data, hashlib.sha256).hexdigest()
    return "sha256:" + hashlib.sha256(data).hexdigest()
