"""Small builders and checks every suite needs: digests, file trees, long names, no secrets."""

from __future__ import annotations

import hashlib
from pathlib import Path


def digest(data: bytes) -> str:
    """The plain ``sha256:<hex>`` of ``data`` (what a target's digest metadata holds; a
    repository's object names come from ``helpers.encrypted_mode.sha``, keyed when encrypted)."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def tree_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes, keyed by its POSIX path relative to ``root``."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def long_name(prefix: str = "", total: int = 1024) -> str:
    """A blob name of exactly ``total`` characters (folders of 200: a file name is <= 255, so
    a local file system holds it too)."""
    folders = (total - len(prefix) - 1) // 200
    name = prefix + ("d" * 199 + "/") * folders
    name += "f" * (total - len(name))
    assert len(name) == total and len(name.rsplit("/", 1)[1]) <= 255
    return name


def assert_clean(text: str, *secrets: str) -> None:
    """No given secret, no SAS signature and no account key in ``text`` (output, an error)."""
    for secret in secrets:
        assert secret not in text
    assert "sig=" not in text
    assert "AccountKey=" not in text
