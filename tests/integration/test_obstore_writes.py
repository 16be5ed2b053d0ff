"""The ``az://`` repository's writes through obstore (docs/design/0005-obstore-data-path.md).

Conditional Put Blob (create-only, refresh-only), the multipart upload of a spooled object
and its guards: a spool that no longer holds the hashed bytes is never committed, and the
source's obstore path has no writing method at all (the target's writes:
test_obstore_target_writes.py).
"""

from __future__ import annotations

import hashlib
import os
import uuid

import pytest
from helpers import azurite as az

from amlport.bundle.azure_store import AzureStore
from amlport.bundle.location import open_store
from amlport.errors import IntegrityError
from amlport.storage.auth import StorageAuth
from amlport.storage.object_writes import BlobWriter
from amlport.storage.objects import BlobReader
from amlport.storage.opener import open_source

MIB = 1 << 20
pytestmark = pytest.mark.azurite


def _store(azurite: az.Azurite, block_size: int = MIB) -> tuple[AzureStore, str]:
    container = f"wr-{uuid.uuid4().hex[:16]}"
    azurite.target.service_client().create_container(container)
    url = f"{azurite.target.url}/{container}/repo"
    store = open_store(url, StorageAuth(connection_string=azurite.target.connection_string))
    assert isinstance(store, AzureStore)
    store.block_size = block_size
    return store, container


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def test_create_refresh_and_overwrite_hold_their_conditions(azurite: az.Azurite) -> None:
    store, _ = _store(azurite)
    try:
        assert store.create("locks/a.json", b"first") is True
        assert store.create("locks/a.json", b"second") is False  # If-None-Match: *
        assert store.read("locks/a.json", limit=100) == b"first"
        assert store.replace_existing("locks/a.json", b"refreshed") is True  # If-Match: *
        assert store.read("locks/a.json", limit=100) == b"refreshed"
        # A refresh of a lock someone removed must not bring it back.
        assert store.replace_existing("locks/gone.json", b"x") is False
        assert store.size("locks/gone.json") is None
        store.write("locks/a.json", b"overwritten")
        assert store.read("locks/a.json", limit=100) == b"overwritten"
        assert store.retry_count == 0
    finally:
        store.close()


def test_a_spooled_object_is_a_multipart_upload_of_exactly_its_bytes(
    azurite: az.Azurite,
) -> None:
    store, container = _store(azurite)
    data = os.urandom(3 * MIB + 12345)  # 3 blocks and a short one
    key = "objects/big"
    try:
        with store.staging("objects") as stage:
            for i in range(0, len(data), 300_000):  # the caller writes in its own pieces
                stage.write(data[i : i + 300_000])
            stage.commit(key, _digest(data))
        assert store.read(key, limit=len(data)) == data
        blob = azurite.target.service_client().get_blob_client(container, store.name(key))
        committed, _ = blob.get_block_list("committed")
        assert len(committed) == 4  # Put Block x 4, then Put Block List: not one Put Blob
        etag = blob.get_blob_properties().etag
        with store.staging("objects") as stage:  # already stored: nothing is uploaded again
            stage.write(data)
            stage.commit(key, _digest(data))
        assert blob.get_blob_properties().etag == etag
    finally:
        store.close()


def test_a_spool_changed_under_the_upload_is_never_committed(azurite: az.Azurite) -> None:
    store, _ = _store(azurite)
    data = os.urandom(2 * MIB + 1)
    key = "objects/tampered"
    try:
        with store.staging("objects") as stage:
            stage.write(data)
            spool = stage._spool  # type: ignore[attr-defined]  # what a failing disk does
            assert spool is not None
            spool.seek(MIB + 17)
            spool.write(b"\x00" * 64)
            spool.seek(0, os.SEEK_END)
            with pytest.raises(IntegrityError, match="spool file no longer holds"):
                stage.commit(key, _digest(data))
        assert store.size(key) is None  # the block list was never committed
        assert list(store.list("objects/")) == []
    finally:
        store.close()


def test_a_source_gets_no_writing_obstore_path(azurite: az.Azurite) -> None:
    """The repository store and the import target write through obstore
    (tests/integration/test_obstore_target_writes.py); a source cannot."""
    store, _ = _store(azurite)
    container = f"src-{uuid.uuid4().hex[:16]}"
    azurite.source.service_client().create_container(container)
    source = open_source(
        f"{azurite.source.url}/{container}",
        auth=StorageAuth(connection_string=azurite.source.connection_string),
    )
    try:
        assert isinstance(store.objects, BlobWriter)
        assert type(source.objects) is BlobReader  # type: ignore[attr-defined]
        assert not hasattr(source.objects, "put")  # type: ignore[attr-defined]
    finally:
        store.close()
        source.close()
