"""An encrypted pack unpacked into an Azure container (Azurite): the pack's identity and keys
are written there, each sealed object is committed only once checked, and the container opens
with the same key (docs/design/0013, "Packs")."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.bundle import key_file, manifest
from helpers.stores import azure_place, object_key

from amlport.bundle import Repository, crypto, keys

# These tests give every key themselves (even under AMLPORT_TEST_ENCRYPT=1).
pytestmark = [pytest.mark.azurite, pytest.mark.own_keys]


def test_an_encrypted_pack_unpacks_into_a_container_and_back(
    azurite: az.Azurite, tmp_path: Path
) -> None:
    user = key_file(tmp_path)
    src = Repository.init(tmp_path / "src", encrypt=True, key=user)
    big = b"\x42" * (2 * crypto.SEGMENT + 17)  # three segments: streamed in blocks
    with src.lock(exclusive=False):
        sid = src.write_snapshot(manifest(src, {"files/big": big, "files/small": b"s"}))
    src.pack(sid, tmp_path / "p.tar.gz")
    dst = azure_place(azurite, prefix="packs")
    report = Repository.unpack(tmp_path / "p.tar.gz", dst.location, auth=dst.auth, key=user)
    assert report.encrypted and report.snapshots == [sid]
    digest = src.load_snapshot(sid).files[0].digest
    assert dst.read(object_key(digest)) == src.object_path(digest).read_bytes()
    assert dst.keys("keys/") == {f"keys/{k}.json" for k in keys.key_ids(src.store)}
    repo = Repository.open(dst.location, auth=dst.auth, key=user)
    assert repo.id == src.id and repo.verify().ok
    assert repo.get_bytes(digest) == big
    again = Repository.unpack(tmp_path / "p.tar.gz", dst.location, auth=dst.auth, key=user)
    assert again.objects_added == 0 and again.snapshots == [sid]
