"""The import target's writes through obstore (docs/design/0005-obstore-data-path.md).

A blob shorter than a block is one create-only (or overwriting) Put Blob through obstore; a
longer one that may replace what is there is a multipart upload through obstore, read once
from the caller's stream, committed only if its SHA-256 is the one given, then stamped with
the Content-MD5 of the bytes sent. A longer one that must not replace anything, and a name
obstore cannot address, go through the SDK. Every test counts the SDK's requests to show
which client did the writing.
"""

from __future__ import annotations

import base64
import hashlib
import io
import os
import tracemalloc
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.pipeline.transport import RequestsTransport
from helpers import azurite as az
from helpers.data import digest

from amlport.errors import IntegrityError
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.auth import StorageAuth
from amlport.storage.azure_target import AzureTarget, open_azure_target
from amlport.storage.object_writes import BlobWriter
from amlport.storage.retry import FAST_RETRY
from amlport.storage.target import DIGEST_METADATA, TargetConflict

pytestmark = pytest.mark.azurite
MIB = 1 << 20


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


@pytest.fixture
def target(azurite: az.Azurite) -> Iterator[AzureTarget]:
    account, tag = azurite.target, uuid.uuid4().hex[:10]
    with open_azure_target(
        account.url,
        descriptor=WorkspaceDescriptor(account.name, f"ow-{tag}-blobstore", f"ow-{tag}-azureml"),
        auth=StorageAuth(account_key=account.key),
        retry=FAST_RETRY,
    ) as made:
        made.ensure_containers()
        yield made
    # The target account is the session's: blobs named with control characters would break
    # the listing of every later test that walks the whole account (Azurite answers 500).
    service = account.service_client()
    for container in (made.descriptor.blobstore_container, made.descriptor.artifact_container):
        service.delete_container(container)


class SdkRequests:
    """(method, query) of every request the SDK sends from now on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, str]] = []
        real = RequestsTransport.send

        def send(transport: RequestsTransport, request: Any, **kwargs: Any) -> Any:
            self.seen.append((request.method, urlsplit(request.url).query))
            return real(transport, request, **kwargs)

        monkeypatch.setattr(RequestsTransport, "send", send)

    @property
    def puts(self) -> list[str]:
        return [query for method, query in self.seen if method == "PUT"]


def props(azurite: az.Azurite, container: str, name: str) -> Any:
    client = azurite.target.service_client()
    try:
        return client.get_blob_client(container, name).get_blob_properties()
    finally:
        client.close()


def test_the_target_writes_through_obstore(target: AzureTarget) -> None:
    assert isinstance(target.objects, BlobWriter)


def test_a_small_blob_is_one_create_only_put_through_obstore(
    azurite: az.Azurite, target: AzureTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, data = target.descriptor.blobstore_container, b"small content"
    sdk = SdkRequests(monkeypatch)
    target.write_bytes(c, "a/small.txt", data, metadata={DIGEST_METADATA: digest(data)},
                       overwrite=False)  # fmt: skip
    assert sdk.puts == []  # the SDK only asked whether it was there (HEAD)
    found = props(azurite, c, "a/small.txt")
    assert found.metadata == {DIGEST_METADATA: digest(data)}
    assert base64.b64encode(found.content_settings.content_md5).decode() == md5_b64(data)
    assert found.content_settings.content_type == "application/octet-stream"
    # The service holds the condition: a writer that slipped in after the check loses.
    monkeypatch.setattr(target, "stat", lambda *args: None)
    with pytest.raises(TargetConflict, match="on-conflict"):
        target.write_bytes(c, "a/small.txt", b"late", metadata={}, overwrite=False)
    assert target.read_bytes(c, "a/small.txt") == data
    target.write_bytes(c, "a/small.txt", b"replaced", metadata={}, overwrite=True)
    assert target.read_bytes(c, "a/small.txt") == b"replaced"
    assert sdk.puts == []


def test_a_large_overwrite_is_a_bounded_multipart_upload_with_md5(
    azurite: az.Azurite, target: AzureTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, data = target.descriptor.blobstore_container, os.urandom(12 * MIB + 5)
    target.write_bytes(c, "model.bin", b"old", metadata={}, overwrite=False)
    sdk = SdkRequests(monkeypatch)
    stream = io.BufferedReader(io.BytesIO(data), 256 * 1024)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        target.write_stream(c, "model.bin", stream, metadata={DIGEST_METADATA: digest(data)},
                            overwrite=True)  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MIB, f"peak {peak / MIB:.1f} MiB"  # under two 4 MiB blocks per write
    assert sdk.puts == ["comp=properties"]  # only the Content-MD5; the bytes went via obstore
    found = props(azurite, c, "model.bin")
    assert found.size == len(data) and found.metadata == {DIGEST_METADATA: digest(data)}
    assert base64.b64encode(found.content_settings.content_md5).decode() == md5_b64(data)
    stat = target.stat(c, "model.bin")
    assert stat is not None and stat.sha256 == digest(data)
    assert target.read_bytes(c, "model.bin") == data


def test_a_large_overwrite_with_the_wrong_digest_commits_nothing(target: AzureTarget) -> None:
    c, data = target.descriptor.blobstore_container, os.urandom(9 * MIB)
    target.write_bytes(c, "kept.bin", b"kept", metadata={}, overwrite=False)
    with pytest.raises(IntegrityError, match="nothing was written"):
        target.write_bytes(c, "kept.bin", data, metadata={DIGEST_METADATA: digest(b"other")},
                           overwrite=True)  # fmt: skip
    assert target.read_bytes(c, "kept.bin") == b"kept"
    with pytest.raises(IntegrityError):
        target.write_bytes(c, "new.bin", data, metadata={DIGEST_METADATA: digest(b"other")},
                           overwrite=True)  # fmt: skip
    assert target.stat(c, "new.bin") is None


def test_a_large_create_only_write_keeps_the_sdks_conditional_commit(
    target: AzureTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    c, data = target.descriptor.blobstore_container, os.urandom(5 * MIB)
    sdk = SdkRequests(monkeypatch)
    target.write_bytes(c, "once.bin", data, metadata={DIGEST_METADATA: digest(data)},
                       overwrite=False)  # fmt: skip
    assert sdk.puts[-1] == "comp=blocklist" and "comp=block" in sdk.puts[0]
    monkeypatch.setattr(target, "stat", lambda *args: None)
    with pytest.raises(TargetConflict):  # If-None-Match: * on the block list
        target.write_bytes(c, "once.bin", os.urandom(5 * MIB), metadata={}, overwrite=False)
    monkeypatch.undo()
    assert target.read_bytes(c, "once.bin") == data


@pytest.mark.parametrize("name", ["a//b.txt", "/leading.txt", "ctl\x01name", "trailing/"])
def test_names_obstore_cannot_carry_are_written_by_the_sdk(target: AzureTarget, name: str) -> None:
    c = target.descriptor.blobstore_container
    small, large = b"small " + name.encode(), os.urandom(5 * MIB)
    target.write_bytes(c, name, small, metadata={DIGEST_METADATA: digest(small)},
                       overwrite=False)  # fmt: skip
    assert target.read_bytes(c, name) == small
    target.write_bytes(c, name, large, metadata={DIGEST_METADATA: digest(large)},
                       overwrite=True)  # fmt: skip
    found = target.stat(c, name)
    assert found is not None and found.sha256 == digest(large)
    assert target.read_bytes(c, name) == large


HOSTILE = [
    "brackets/[0]/a]b[.txt",
    "query?x=1#frag.txt",
    "percent/%2F%41%.txt",
    "plus+and&amp;;semi.txt",
    "ü/名前/💾.bin",
    "/".join(["d" * 200] * 5)[:1024],
]


@pytest.mark.parametrize(
    "name", HOSTILE, ids=["brackets", "query", "percent", "plus", "unicode", "1024"]
)
def test_hostile_names_round_trip_through_obstore(
    target: AzureTarget, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    c, small, large = target.descriptor.blobstore_container, name.encode(), os.urandom(5 * MIB)
    sdk = SdkRequests(monkeypatch)
    target.write_bytes(c, name, small, metadata={DIGEST_METADATA: digest(small)}, overwrite=False)
    target.write_bytes(c, name, large, metadata={DIGEST_METADATA: digest(large)}, overwrite=True)
    assert sdk.puts == ["comp=properties"]  # both went through obstore, under this very name
    monkeypatch.undo()
    assert list(target.list_names(c, "")) == [name]
    found = target.stat(c, name)
    assert found is not None and found.size == len(large) and found.sha256 == digest(large)
    assert target.read_bytes(c, name) == large
