"""Shared builders for the bundle tests (the test_bundle_* modules, the repository contract).

Its own check (the builders produce a manifest the repository accepts) is
``tests/unit/test_bundle_support.py``.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import zstandard

from amlport.bundle import Repository, keys
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, format_time
from helpers.encrypted_mode import ENCRYPTED
from helpers.encrypted_mode import sha as sha  # the names tests predict (keyed when encrypted)

SOURCE: dict[str, Any] = {
    "account": "azmlautoprice5241",
    "endpoint": "core.windows.net",
    "workspace": "autoprice-dev",
    "containers": {"blobstore": "azureml-blobstore-bfe051f9", "artifacts": "azureml"},
    "datastores": {
        "workspaceblobstore": "azureml-blobstore-bfe051f9",
        "workspaceartifactstore": "azureml",
    },
}
OTHER_SOURCE: dict[str, Any] = {**SOURCE, "account": "azmlother0001", "workspace": "other"}
T0 = datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc)


plain_only = pytest.mark.skipif(
    ENCRYPTED, reason="about the stored bytes of an unencrypted repository"
)


def at(days: float = 0, hours: float = 0) -> str:
    """An ISO time ``days``/``hours`` after T0 (a Friday, 02:00 UTC)."""
    return format_time(T0 + timedelta(days=days, hours=hours))


def new_repo(tmp_path: Path, name: str = "repo", **kw: Any) -> Repository:
    return Repository.init(tmp_path / name, **kw)


def index_text(path: Path) -> str:
    """An index file's JSON, whether zstd-compressed (format 2) or plain (format 1)."""
    raw = path.read_bytes()
    if raw[:4] == b"\x28\xb5\x2f\xfd":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    return raw.decode("utf-8")


def snapshot_file(repo: Repository, sid: str) -> Path:
    """The stored file of a snapshot: a format-1 manifest or a format-2 root."""
    return repo.snapshots.path(sid)


def store(repo: Repository, contents: dict[str, bytes]) -> list[FileEntry]:
    """Put each content into the repository; a FileEntry per bundle path."""
    entries = []
    for path, data in contents.items():
        digest = repo.put_bytes(data)
        original = {"datastore": "workspaceblobstore", "path": path.split("/", 1)[-1]}
        entries.append(FileEntry(path, digest, len(data), original=original))
    return entries


def manifest(
    repo: Repository,
    contents: dict[str, bytes],
    *,
    source: dict[str, Any] | None = None,
    created: str = "",
    tags: tuple[str, ...] = (),
) -> Manifest:
    files = store(repo, contents)
    assets = [AssetEntry("model", "m", "model:m", files=[files[0].path])] if files else []
    return Manifest(
        source=dict(source or SOURCE),
        created=created,
        tags=list(tags),
        selection={"select": ["model:m"]},
        assets=assets,
        files=files,
    )


def snapshot(repo: Repository, contents: dict[str, bytes], **kw: Any) -> str:
    with repo.lock(exclusive=False):
        return repo.write_snapshot(manifest(repo, contents, **kw))


def tree(root: Path) -> set[str]:
    """Every path under ``root`` (to prove nothing was written somewhere)."""
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def key_file(tmp_path: Path, name: str = "key.json") -> keys.UserKey:
    """A new repository key file in ``tmp_path``, read back as the user key it holds."""
    path = tmp_path / name
    path.write_text(keys.new_key_file_text(), encoding="utf-8")
    return keys.read_key_file(path)


def object_span(repo: Repository, digest: str) -> tuple[Path, int, int]:
    """Where an object's stored bytes are in a local repository, packed or loose: (file,
    offset, length), from ``ObjectStore.location``."""
    key, _, span = repo.objects.location(digest).partition("@")
    path = repo.path / key
    if not span:
        return path, 0, path.stat().st_size
    offset, length = (int(n) for n in span.split("+"))
    return path, offset, length


def flip_last_byte(repo: Repository, digest: str) -> bytes:
    """Flip the last stored byte of an object where it is (its pack or its file); the file's
    good bytes, to write back."""
    return flip_byte(repo, digest, -1)


def flip_byte(repo: Repository | Path, digest: str, at: int) -> bytes:
    """Flip the stored byte ``at`` of an object (negative: from its end) where it is, packed
    or loose: the stored size stays. The file's good bytes, to write back."""
    path, offset, length = _span_of(repo, digest)
    at = at + length if at < 0 else at
    assert 0 <= at < length, f"byte {at} of a {length}-byte object"
    good = path.read_bytes()
    return _write_over(path, offset + at, bytes([good[offset + at] ^ 1]))


def overwrite_stored(repo: Repository | Path, digest: str, data: bytes, at: int = 0) -> bytes:
    """Write ``data`` over an object's stored bytes from byte ``at`` on, where they are (its
    pack or its file): the stored size stays, so a pack stays at its indexed size and only
    the checks of the object's bytes can tell (``data`` must fit). The file's good bytes."""
    path, offset, length = _span_of(repo, digest)
    assert at >= 0 and at + len(data) <= length, f"{len(data)} bytes at {at} of {length}"
    return _write_over(path, offset + at, data)


def tamper(repo: Repository | Path, digest: str) -> bytes:
    """The classic tampering (``tampered`` over an object's first stored bytes), packed or
    loose; the file's good bytes."""
    length = _span_of(repo, digest)[2]
    return overwrite_stored(repo, digest, b"tampered"[:length])


def stored_files(root: Path) -> list[Path]:
    """Every file of a local repository that holds objects, sorted: loose object files and
    pack files (not the pack index pieces ``packs/index/``, not temp files)."""
    found = [*root.glob("objects/*/??/*"), *root.glob("packs/??/*")]
    return sorted(p for p in found if p.is_file() and ".tmp-" not in p.name)


def pack_files(root: Repository | Path) -> list[Path]:
    """The pack files of a local repository, sorted (``packs/<2 hex>/<64 hex>``)."""
    root = root.path if isinstance(root, Repository) else root
    return sorted(p for p in root.glob("packs/??/*") if p.is_file() and ".tmp-" not in p.name)


def index_pieces(root: Repository | Path) -> list[Path]:
    """The pack index pieces of a local repository, sorted (``packs/index/<64 hex>``)."""
    root = root.path if isinstance(root, Repository) else root
    return sorted(p for p in root.glob("packs/index/*") if p.is_file() and ".tmp-" not in p.name)


def index_piece_of(repo: Path, pack: Path) -> Path:
    """The index piece of the local repository ``repo`` that lists ``pack`` (a pack file)."""
    with Repository.open(repo) as opened:
        [name] = [
            p.name
            for p in (repo / "packs" / "index").iterdir()
            if any(e.pack == pack.name for e in opened.objects.read_index_piece(p.name))
        ]
    return repo / "packs" / "index" / name


def _span_of(repo: Repository | Path, digest: str) -> tuple[Path, int, int]:
    """``object_span`` of a Repository, or of the local repository at a path (opened)."""
    if isinstance(repo, Repository):
        return object_span(repo, digest)
    with Repository.open(repo) as opened:
        return object_span(opened, digest)


def _write_over(path: Path, at: int, data: bytes) -> bytes:
    """Write ``data`` over ``path``'s bytes from ``at`` on (the size stays); the old bytes."""
    good = path.read_bytes()
    path.chmod(0o644)  # an admin's (or an attacker's) write, whatever the file's mode
    path.write_bytes(good[:at] + data + good[at + len(data) :])
    return good


def stored_bytes(repo: Repository, digest: str) -> bytes:
    """An object's bytes exactly as the repository stores them (sealed ones sealed), read
    where they are: its pack or its file."""
    path, offset, length = object_span(repo, digest)
    with path.open("rb") as fh:
        fh.seek(offset)
        return fh.read(length)
