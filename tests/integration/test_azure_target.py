"""AzureTarget against Azurite: server-side copies from a source account, signing, errors.

Copies go from ``amlsrc`` to ``amldst`` (two accounts of one Azurite instance) through
``AzureSource.signed_url`` + ``AzureTarget.copy_from_url``; every test uses containers of
its own. The target's contract (stat, writes, names, interruptions) is in
``tests/contract/test_targets.py``.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import (
    BlobClient,
    BlobProperties,
    ContainerSasPermissions,
    UserDelegationKey,
    generate_container_sas,
)
from helpers import azurite as az
from helpers.data import assert_clean, digest

import amlport.storage.azure_target as target_mod
from amlport.errors import (
    AccessDenied,
    AmlportError,
    ExitCode,
    IntegrityError,
    ReadOnlyViolation,
    SourceError,
    UsageError,
)
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.azure import AzureSource, open_azure_source
from amlport.storage.azure_location import BlobSigner, parse_location
from amlport.storage.azure_target import AzureTarget, CopyPolling, open_azure_target
from amlport.storage.opener import StorageAuth
from amlport.storage.retry import FAST_RETRY
from amlport.storage.target import DIGEST_METADATA, TargetConflict

pytestmark = pytest.mark.azurite

SOURCE_FILES: dict[str, bytes] = {
    "azureml/3f1e/Trained_model/data.ilearner": os.urandom(5 * (1 << 20) + 7),
    "azureml/3f1e/Trained_model/_meta.yaml": b"type: ModelDirectory\n",
    "UI/2024-01-02_030405_UTC/with space & 100%.csv": b"a,b\n1,2\n",
    "données/été.txt": b"unicode\n",
    "empty.txt": b"",
}


def copy_metadata(data: bytes) -> dict[str, str]:
    return {DIGEST_METADATA: digest(data), "amlport_source_account": "amlsrc"}


@dataclass(frozen=True)
class SourceBox:
    account: az.AzuriteAccount
    container: str

    @property
    def url(self) -> str:
        return f"{self.account.url}/{self.container}"

    def open(self, auth: StorageAuth | None = None, url: str | None = None) -> AzureSource:
        return open_azure_source(
            url or self.url,
            auth=auth or StorageAuth(account_key=self.account.key),
            descriptor=WorkspaceDescriptor(self.account.name, self.container),
        )


@pytest.fixture(scope="module")
def source(azurite: az.Azurite) -> SourceBox:
    container = f"tsrc-{uuid.uuid4().hex[:10]}"
    admin = azurite.source.service_client()
    client = admin.create_container(container)
    for name, data in SOURCE_FILES.items():
        client.upload_blob(name, data)
    admin.close()
    return SourceBox(azurite.source, container)


def target_descriptor(account: az.AzuriteAccount) -> WorkspaceDescriptor:
    tag = uuid.uuid4().hex[:10]
    return WorkspaceDescriptor(account.name, f"tdst-{tag}-blobstore", f"tdst-{tag}-azureml")


@pytest.fixture
def target(azurite: az.Azurite) -> Iterator[AzureTarget]:
    account = azurite.target
    with open_azure_target(
        account.url,
        descriptor=target_descriptor(account),
        auth=StorageAuth(account_key=account.key),
        retry=FAST_RETRY,
        copy_polling=CopyPolling(initial=0.01, maximum=0.02, timeout=5),
    ) as made:
        made.ensure_containers()
        yield made


class Traffic:
    """Records (method, account, path) of every request the SDK sends, queries left out."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.requests: list[tuple[str, str]] = []
        real_send = RequestsTransport.send
        traffic = self

        def send(transport: RequestsTransport, request: Any, **kwargs: Any) -> Any:
            traffic.requests.append((request.method, urlsplit(request.url).path))
            return real_send(transport, request, **kwargs)

        monkeypatch.setattr(RequestsTransport, "send", send)

    def to_account(self, account: str) -> list[tuple[str, str]]:
        return [(m, p) for m, p in self.requests if p.startswith(f"/{account}/")]


# --- server-side copy ------------------------------------------------------------------------


def test_server_side_copy_moves_no_payload_bytes(
    azurite: az.Azurite,
    source: SourceBox,
    target: AzureTarget,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    dest = target.descriptor.blobstore_container
    with source.open() as src:

        def no_download(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError("payload bytes went through the client")

        monkeypatch.setattr(BlobClient, "download_blob", no_download)
        monkeypatch.setattr(AzureSource, "open_stream", no_download)
        monkeypatch.setattr(AzureSource, "read_bytes", no_download)
        traffic = Traffic(monkeypatch)
        signatures = []
        for name, data in SOURCE_FILES.items():
            url = src.signed_url(source.container, name, minutes=10)
            signatures.append(parse_qs(urlsplit(url).query)["sig"][0])
            target.copy_from_url(
                dest, f"restored/{name}", url, metadata=copy_metadata(data), overwrite=False
            )
        # Signing with a key is local; the copies talk to the target account only.
        assert traffic.to_account(source.account.name) == []
        assert {m for m, _ in traffic.requests} <= {"HEAD", "PUT"}
        monkeypatch.undo()
    dst = azurite.target.service_client().get_container_client(dest)
    for name, data in SOURCE_FILES.items():
        blob = dst.get_blob_client(f"restored/{name}")
        assert blob.download_blob().readall() == data
        props = blob.get_blob_properties()
        assert props.metadata == copy_metadata(data)
        assert props.copy.status == "success"
        stat = target.stat(dest, f"restored/{name}")
        assert stat is not None and stat.size == len(data) and stat.sha256 == digest(data)
    assert_clean(caplog.text, *signatures)


def test_copy_respects_overwrite(
    source: SourceBox, target: AzureTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, name = target.descriptor.blobstore_container, "empty.txt"
    other = "azureml/3f1e/Trained_model/_meta.yaml"
    with source.open() as src:
        target.copy_from_url(dest, "x", src.signed_url(source.container, name),
                             metadata=copy_metadata(b""), overwrite=False)  # fmt: skip
        with pytest.raises(TargetConflict):
            target.copy_from_url(dest, "x", src.signed_url(source.container, other),
                                 metadata={}, overwrite=False)  # fmt: skip
        # The service enforces it too: a writer that slipped in after our check wins.
        monkeypatch.setattr(target, "stat", lambda *args: None)
        with pytest.raises(TargetConflict):
            target.copy_from_url(dest, "x", src.signed_url(source.container, other),
                                 metadata={}, overwrite=False)  # fmt: skip
        with pytest.raises(TargetConflict):
            target.write_bytes(dest, "x", b"late", metadata={}, overwrite=False)
        monkeypatch.undo()
        assert target.read_bytes(dest, "x") == b""
        url = src.signed_url(source.container, other)
        target.copy_from_url(dest, "x", url, metadata=copy_metadata(SOURCE_FILES[other]),
                             overwrite=True)  # fmt: skip
    assert target.read_bytes(dest, "x") == SOURCE_FILES[other]


def test_copy_from_an_unsigned_url_is_a_clear_error(source: SourceBox, target: AzureTarget) -> None:
    dest = target.descriptor.blobstore_container
    with source.open() as src:
        url = src.signed_url(source.container, "empty.txt")
    with pytest.raises(SourceError, match="could not read the copy source") as info:
        target.copy_from_url(dest, "y", url.split("?")[0], metadata={}, overwrite=False)
    assert info.value.exit_code == ExitCode.ERROR
    assert target.stat(dest, "y") is None


# --- signing ---------------------------------------------------------------------------------


def test_signed_url_is_read_only_and_short_lived(source: SourceBox) -> None:
    name = "données/été.txt"
    with source.open() as src:
        url = src.signed_url(source.container, name, minutes=5)
        with pytest.raises(UsageError):
            src.signed_url(source.container, name, minutes=0)
    fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert fields["sp"] == "r" and fields["sr"] == "b"
    expiry = datetime.fromisoformat(fields["se"].replace("Z", "+00:00"))
    assert expiry <= datetime.now(timezone.utc) + timedelta(minutes=6)
    blob = BlobClient.from_blob_url(url)
    assert blob.download_blob().readall() == SOURCE_FILES[name]
    for attempt in (
        lambda: blob.upload_blob(b"overwritten", overwrite=True),
        lambda: blob.set_blob_metadata({"a": "b"}),
        lambda: blob.delete_blob(),
    ):
        with pytest.raises(HttpResponseError) as info:
            attempt()
        assert info.value.status_code == 403


def _container_sas(box: SourceBox, **permissions: bool) -> str:
    now = datetime.now(timezone.utc)
    return generate_container_sas(
        box.account.name, box.container, account_key=box.account.key,
        permission=ContainerSasPermissions(**permissions),
        start=now - timedelta(minutes=15), expiry=now + timedelta(hours=1),
    )  # fmt: skip


@pytest.mark.parametrize("kind", ["account-sas-rl", "container-sas-rl", "connection-string"])
def test_sources_that_may_sign(source: SourceBox, target: AzureTarget, kind: str) -> None:
    if kind == "account-sas-rl":
        sas = az.read_list_account_sas(source.account)
        auth = StorageAuth(sas_token=sas)
    elif kind == "container-sas-rl":
        sas = _container_sas(source, read=True, list=True)
        auth = StorageAuth(sas_token=sas)
    else:
        sas, auth = "", StorageAuth(connection_string=source.account.connection_string)
    name, dest = "UI/2024-01-02_030405_UTC/with space & 100%.csv", "copies/" + kind
    with source.open(auth) as src:
        url = src.signed_url(source.container, name)
        if sas:  # a SAS that grants read is reused as it is
            assert urlsplit(url).query == sas
        target.copy_from_url(target.descriptor.blobstore_container, dest, url,
                             metadata=copy_metadata(SOURCE_FILES[name]),
                             overwrite=False)  # fmt: skip
    assert target.read_bytes(target.descriptor.blobstore_container, dest) == SOURCE_FILES[name]


def test_a_list_only_sas_cannot_sign(source: SourceBox) -> None:
    sas = _container_sas(source, list=True)
    with (
        source.open(StorageAuth(sas_token=sas)) as src,
        pytest.raises(UsageError, match="does not grant read") as info,
    ):
        src.signed_url(source.container, "empty.txt")
    hint = info.value.hint or ""
    assert "--account-key" in hint and "--credential default" in hint and "sp with r" in hint
    assert_clean(str(info.value), sas, source.account.key)


def test_user_delegation_signing_caches_the_key() -> None:
    calls: list[tuple[datetime, datetime]] = []

    def get_user_delegation_key(start: datetime, expiry: datetime) -> UserDelegationKey:
        calls.append((start, expiry))
        key = UserDelegationKey()
        key.signed_oid, key.signed_tid = str(uuid.uuid4()), str(uuid.uuid4())
        key.signed_start, key.signed_expiry = "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"
        key.signed_service, key.signed_version = "b", "2025-11-05"
        key.value = "a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U="
        return key

    token_credential = SimpleNamespace(get_token=lambda *scopes, **kw: None)
    service = SimpleNamespace(
        credential=token_credential,
        account_name="acct1",
        get_user_delegation_key=get_user_delegation_key,
    )
    location = parse_location("https://acct1.blob.core.windows.net")
    signer = BlobSigner(cast(Any, service), location, anonymous=False)
    first = signer.sign("c1c", "model/a.bin", 60)
    second = signer.sign("c1c", "model/b.bin", 60)
    assert first and second and len(calls) == 1
    fields = parse_qs(first)
    assert fields["sp"] == ["r"] and fields["sr"] == ["b"] and "skoid" in fields


def test_source_guard_lets_only_the_delegation_key_post_through(source: SourceBox) -> None:
    now = datetime.now(timezone.utc)
    with source.open() as src:
        service = src.blob_service_client
        # Reaches the service (which wants a token credential, not a key): not refused locally.
        with pytest.raises(HttpResponseError):
            service.get_user_delegation_key(now, now + timedelta(hours=1))
        container = service.get_container_client(source.container)
        with pytest.raises(ReadOnlyViolation):
            container.delete_blobs("empty.txt")  # a POST ?comp=batch
        with pytest.raises(ReadOnlyViolation):
            container.upload_blob("intruder.txt", b"x")


# --- errors ----------------------------------------------------------------------------------


def test_wrong_key_is_access_denied_without_the_secret(azurite: az.Azurite) -> None:
    account, wrong = azurite.target, az.new_account_key()
    conn = account.connection_string.replace(account.key, wrong)
    for auth in (StorageAuth(account_key=wrong), StorageAuth(connection_string=conn)):
        with pytest.raises(AccessDenied) as info:
            open_azure_target(account.url, descriptor=target_descriptor(account), auth=auth,
                              retry=FAST_RETRY)  # fmt: skip
        assert info.value.exit_code == ExitCode.ERROR == 2
        assert "Storage Blob Data Contributor" in (info.value.hint or "")
        assert_clean(str(info.value) + repr(info.value), wrong, conn, account.key)


def test_read_only_credential_cannot_write(azurite: az.Azurite, target: AzureTarget) -> None:
    account, dest = azurite.target, target.descriptor.blobstore_container
    box = SourceBox(account, dest)
    sas = _container_sas(box, read=True, list=True)
    with open_azure_target(
        f"{account.url}/{dest}?{sas}", descriptor=target.descriptor, retry=FAST_RETRY
    ) as read_only:
        assert_clean(read_only.describe() + repr(read_only), sas)
        with pytest.raises(AccessDenied) as info:
            read_only.write_bytes(dest, "nope.txt", b"x", metadata={}, overwrite=False)
        assert "Storage Blob Data Contributor" in (info.value.hint or "")
        assert_clean(str(info.value), sas)
        # It cannot create containers: its own exists, the other one is out of its reach.
        with pytest.raises(AccessDenied, match=target.descriptor.artifact_container):
            read_only.ensure_containers()
    assert target.stat(dest, "nope.txt") is None


def test_target_must_match_the_map_file(azurite: az.Azurite) -> None:
    account = azurite.target
    auth = StorageAuth(account_key=account.key)
    other = WorkspaceDescriptor("someotheracct", "azureml-blobstore-x")
    with pytest.raises(UsageError, match="names account someotheracct"):
        open_azure_target(account.url, descriptor=other, auth=auth)
    desc = target_descriptor(account)
    with pytest.raises(UsageError, match="not one of the map file"):
        open_azure_target(f"{account.url}/unrelated-container", descriptor=desc, auth=auth)


@pytest.mark.parametrize("size", [100, 9 * (1 << 20)], ids=["put-blob", "block-list"])
def test_wrong_digest_commits_nothing(target: AzureTarget, size: int) -> None:
    dest, data = target.descriptor.blobstore_container, os.urandom(size)
    with pytest.raises(IntegrityError) as info:
        target.write_bytes(dest, "bad.bin", data, metadata={DIGEST_METADATA: digest(b"other")},
                           overwrite=False)  # fmt: skip
    assert info.value.exit_code == ExitCode.INTEGRITY
    assert target.stat(dest, "bad.bin") is None
    with pytest.raises(UsageError):
        target.write_bytes(dest, "bad.bin", data, metadata={"not ok": "x"}, overwrite=False)


# --- copy polling (unit-style: Azurite completes copies at once) ------------------------------


def test_copy_polling_waits_out_a_pending_copy(
    source: SourceBox, target: AzureTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest, name = target.descriptor.blobstore_container, "azureml/3f1e/Trained_model/_meta.yaml"
    real_start, real_props = BlobClient.start_copy_from_url, BlobClient.get_blob_properties
    script: list[str] = []  # copy states the next polls report, then the real one

    def start(self: BlobClient, url: str, **kwargs: Any) -> dict[str, Any]:
        return {**real_start(self, url, **kwargs), "copy_status": "pending"}

    def props(self: BlobClient, **kwargs: Any) -> BlobProperties:
        real = real_props(self, **kwargs)
        if script:
            real.copy.status = script.pop(0)
        return real

    sleeps: list[float] = []
    monkeypatch.setattr(BlobClient, "start_copy_from_url", start)
    monkeypatch.setattr(BlobClient, "get_blob_properties", props)
    monkeypatch.setattr(target_mod.time, "sleep", sleeps.append)
    with source.open() as src:
        script[:] = ["pending", "pending", "pending"]
        url = src.signed_url(source.container, name)
        target.copy_from_url(dest, "polled", url, metadata=copy_metadata(SOURCE_FILES[name]),
                             overwrite=True)  # fmt: skip
        assert sleeps == [0.01, 0.02, 0.02, 0.02]  # backoff, capped at the maximum
        assert target.read_bytes(dest, "polled") == SOURCE_FILES[name]
        # While a copy is pending, stat must not vouch for the content.
        script[:] = ["pending"]
        pending = target.stat(dest, "polled")
        assert pending is not None and pending.sha256 is None and pending.metadata == {}
        done = target.stat(dest, "polled")
        assert done is not None and done.sha256 == digest(SOURCE_FILES[name])
        # A copy that fails is an error, and what it left is removed.
        script[:] = ["pending", "failed"]
        with pytest.raises(SourceError, match=r"copy into .*/failing failed"):
            target.copy_from_url(dest, "failing", src.signed_url(source.container, name),
                                 metadata={}, overwrite=True)  # fmt: skip
        assert target.stat(dest, "failing") is None


def test_no_secret_in_target_errors(azurite: az.Azurite, target: AzureTarget) -> None:
    with pytest.raises(AmlportError) as info:
        target.read_bytes(target.descriptor.blobstore_container, "no/such/blob")
    assert "not found" in str(info.value)
    assert_clean(str(info.value) + target.describe() + repr(target), azurite.target.key)
