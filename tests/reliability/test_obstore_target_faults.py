"""Faults during the import target's writes through obstore (design 0005, "Target writes").

Behind a proxy that answers 503 ServerBusy: a small blob's Put Blob is retried by amlport
(counted in ``retry_count``); a part of a multipart upload is retried by obstore itself (its
bytes were read once from the caller's stream and are not kept), with a backoff, and the blob
is committed whole; a fault that outlasts the retries leaves nothing behind and is the same
``TransientStorageError`` (exit 2) as elsewhere, without the URL in its message.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from helpers import azurite as az
from helpers.data import digest
from helpers.rel_proxy import Fault, FaultProxy

from amlport.errors import ExitCode, TransientStorageError
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.auth import StorageAuth
from amlport.storage.azure_target import AzureTarget, open_azure_target
from amlport.storage.retry import RetryConfig
from amlport.storage.target import DIGEST_METADATA

pytestmark = pytest.mark.azurite
MIB = 1 << 20
RETRY = RetryConfig(total=2, connect_total=1, initial_backoff=0.2, increment_base=1.0, jitter=0)


def busy_on(paths: dict[str, int]) -> object:
    """503 for the first ``n`` PUTs to a path ending with one of ``paths`` (after the first
    PUT, so a multipart upload's first Put Block goes through)."""

    def rule(method: str, path: str, seen: int) -> Fault | None:
        for suffix, n in paths.items():
            if method == "PUT" and path.endswith(suffix) and 1 <= seen <= n:
                return Fault(status=503)
        return None

    return rule


def open_target(proxy: FaultProxy, account: az.AzuriteAccount, tag: str) -> AzureTarget:
    return open_azure_target(
        f"{proxy.endpoint}/{account.name}",
        descriptor=WorkspaceDescriptor(account.name, f"of-{tag}-blobstore", f"of-{tag}-azureml"),
        auth=StorageAuth(account_key=account.key),
        retry=RETRY,
    )


@pytest.fixture
def tag(azurite: az.Azurite) -> Iterator[str]:
    made = uuid.uuid4().hex[:10]
    client = azurite.target.service_client()
    client.create_container(f"of-{made}-blobstore")
    yield made
    client.close()


def test_a_busy_part_is_retried_and_the_blob_committed_whole(azurite: az.Azurite, tag: str) -> None:
    data = os.urandom(9 * MIB)
    rule = busy_on({"/model.bin": 1, "/small.txt": 1})
    with (
        FaultProxy(azurite.port, rule) as proxy,  # type: ignore[arg-type]
        open_target(proxy, azurite.target, tag) as target,
    ):
        c = target.descriptor.blobstore_container
        target.write_bytes(c, "small.txt", b"a", metadata={}, overwrite=False)
        target.write_bytes(c, "small.txt", b"b", metadata={}, overwrite=True)  # 503, retried
        assert target.retry_count == 1  # amlport's own retry of the Put Blob
        target.write_bytes(c, "model.bin", data, metadata={DIGEST_METADATA: digest(data)},
                           overwrite=True)  # fmt: skip
        assert target.read_bytes(c, "model.bin") == data
        assert target.read_bytes(c, "small.txt") == b"b"
    injected = [p for _, p, _ in proxy.injected]
    assert injected.count(f"/{azurite.target.name}/{c}/model.bin") == 1
    times = proxy.times[("PUT", f"/{azurite.target.name}/{c}/model.bin")]
    assert times[-1] - times[1] >= 0.2  # the busy part (the second PUT) waited its backoff


def test_a_part_busy_for_longer_than_the_retries_leaves_nothing(
    azurite: az.Azurite, tag: str
) -> None:
    data = os.urandom(9 * MIB)
    with (
        FaultProxy(azurite.port, busy_on({"/model.bin": 99})) as proxy,  # type: ignore[arg-type]
        open_target(proxy, azurite.target, tag) as target,
    ):
        c = target.descriptor.blobstore_container
        with pytest.raises(TransientStorageError) as info:
            target.write_bytes(c, "model.bin", data, metadata={DIGEST_METADATA: digest(data)},
                               overwrite=True)  # fmt: skip
        assert target.stat(c, "model.bin") is None
        # obstore's own retries of the failed part, as its error reports them, are counted
        assert target.retry_count == RETRY.total
    assert info.value.exit_code == ExitCode.ERROR
    assert "503" in str(info.value) and "http" not in str(info.value)
    assert azurite.target.key not in str(info.value)
