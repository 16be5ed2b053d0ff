"""Repositories with pack files, for the pack tests (tests/unit/test_bundle_packs*.py): a
snapshot written in one batch, reopening, keeping one snapshot, and a prune killed at a step."""

from __future__ import annotations

from typing import Any

import pytest

from amlport.bundle import Repository, packs
from helpers.bundle import manifest


def packed_snapshot(repo: Repository, contents: dict[str, bytes], **kw: Any) -> str:
    """A snapshot of ``contents`` whose objects are stored in one batch (packed)."""
    with repo.lock(exclusive=False):
        with repo.objects.batch():
            written = manifest(repo, contents, **kw)
        return repo.write_snapshot(written)


def reopen(repo: Repository, warnings: list[str] | None = None) -> Repository:
    return Repository.open(repo.path, on_warning=None if warnings is None else warnings.append)


def keep_only(repo: Repository, snapshot_id: str) -> None:
    """Forget every snapshot but ``snapshot_id`` (without pruning)."""
    opened = reopen(repo)
    for info in opened.list_snapshots():
        if info.id != snapshot_id:
            opened.snapshots.delete(info.id)


def prune_killed_at(repo: Repository, monkeypatch: pytest.MonkeyPatch, stop_at: int) -> None:
    """Run ``repo.prune()`` killed (KeyboardInterrupt) before it writes its new index
    (``stop_at`` 0) or at its ``stop_at``-th delete below ``packs/``."""
    deletes = 0
    real_delete = repo.store.delete

    def killed(key: str, **kw: Any) -> bool:
        nonlocal deletes
        if key.startswith("packs/"):
            deletes += 1
            if deletes == stop_at:
                raise KeyboardInterrupt("killed")
        return real_delete(key, **kw)

    def no_index(plain: bytes) -> str:
        raise KeyboardInterrupt("killed after the new packs")

    monkeypatch.setattr(repo.store, "delete", killed)
    if stop_at == 0:
        monkeypatch.setattr(repo.objects, "write_index_piece", no_index)
    with pytest.raises(KeyboardInterrupt):
        repo.prune()


def stored_in_two_packs(repo: Repository, data: bytes) -> str:
    """A snapshot of ``data``, and ``data`` stored again in another pack by a batch that did
    not see the first one's index (the state a prune killed after its new index leaves);
    the snapshot's id."""
    sid = packed_snapshot(repo, {"files/a": data})
    again = reopen(repo)
    with again.objects.batch():
        again.objects._index = packs.PackIndex()  # it did not see the first batch's index
        again.put_bytes(b"another object first ")  # (else the same pack, byte for byte)
        again.put_bytes(data)
    return sid
