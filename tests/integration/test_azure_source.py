"""AzureSource against Azurite: listing, reads, streams, errors, read-only, no leaked secrets."""

from __future__ import annotations

import ast
import hashlib
import os
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import ContainerClient
from helpers import azurite as az
from helpers.data import assert_clean
from helpers.rel_proxy import Fault, FaultProxy

import amlport.storage.azure as azure_mod
from amlport.errors import (
    AccessDenied,
    AmlportError,
    ExitCode,
    ReadOnlyViolation,
    SourceError,
    SourceNotFound,
    TransientStorageError,
    UsageError,
)
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.azure import CHUNK_SIZE, AzureSource, open_azure_source, parse_location
from amlport.storage.base import BlobInfo, Source
from amlport.storage.local import LocalSource, load_descriptor_file
from amlport.storage.opener import StorageAuth, open_source
from amlport.storage.retry import FAST_RETRY

pytestmark = pytest.mark.azurite

BIG_SIZE = 9 * (1 << 20) + 123  # > 8 MiB and not a multiple of the chunk size
MINI_FILES: dict[str, bytes] = {
    "azureml/3f1e/Trained_model/_meta.yaml": b"type: ModelDirectory\n",
    "azureml/3f1e/Trained_model/data.ilearner": os.urandom(100_000),
    "LocalUpload/0123456789abcdef0123456789abcdef/data/train.csv": b"a,b\n1,2\n",
    "UI/2024-01-02_030405_UTC/with space & sign%.csv": b"x\n",
    "données/été.txt": b"unicode\n",
    "deep/a/b/c/d/e/f.txt": b"deep\n",
    "empty.txt": b"",
}
MINI_ARTIFACTS: dict[str, bytes] = {
    "ExperimentRun/dcid.3f1e/logs/azureml/executionlogs.txt": b"[2022-07-22 11:45:38Z] ok\n",
    "ExperimentRun/dcid.3f1e/outputs/model.pkl": os.urandom(5000),
}


@dataclass(frozen=True)
class Mini:
    """A small hub-style workspace in the ``amlsrc`` account (``<wsid>-blobstore/-azureml``)."""

    local_dir: Path
    account: az.AzuriteAccount
    blobstore: str
    artifacts: str

    @property
    def url(self) -> str:
        return f"{self.account.url}/{self.blobstore}"


@pytest.fixture(scope="module")
def mini(azurite: az.Azurite, tmp_path_factory: pytest.TempPathFactory) -> Mini:
    wsid = uuid.uuid4().hex[:12]
    root = tmp_path_factory.mktemp("mini")
    blobstore, artifacts = f"{wsid}-blobstore", f"{wsid}-azureml"
    for container, files in ((blobstore, MINI_FILES), (artifacts, MINI_ARTIFACTS)):
        for name, data in files.items():
            path = root / container / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
    created = az.upload_workspace(azurite.source.connection_string, root)
    assert created == sorted([blobstore, artifacts])
    return Mini(root, azurite.source, blobstore, artifacts)


@dataclass(frozen=True)
class Big:
    container: str
    data: bytes
    url: str


@pytest.fixture(scope="module")
def big(azurite: az.Azurite) -> Big:
    """A > 8 MiB blob and an empty one in a container of their own (admin upload)."""
    container = f"big-{uuid.uuid4().hex[:8]}"
    data = os.urandom(BIG_SIZE)
    admin = azurite.source.service_client()
    client = admin.create_container(container)
    client.upload_blob("model/weights.bin", data)
    client.upload_blob("empty.bin", b"")
    admin.close()
    return Big(container, data, f"{azurite.source.url}/{container}")


def key_auth(account: az.AzuriteAccount) -> StorageAuth:
    return StorageAuth(account_key=account.key)


def listing(source: Source) -> set[tuple[str, str, int]]:
    return {(b.container, b.name, b.size) for b in source.list_blobs()}


def assert_clean_error(exc: AmlportError, *secrets: str) -> None:
    """No secret in the message, the hint, or a chained SDK exception (tracebacks)."""
    assert_clean(str(exc), *secrets)
    assert_clean(repr(exc), *secrets)
    assert exc.__cause__ is None
    assert exc.__context__ is None or exc.__suppress_context__


# --- URL forms (no emulator needed) ----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "account", "container", "suffix", "account_url"),
    [
        ("https://acct1.blob.core.windows.net", "acct1", None, "core.windows.net", None),
        ("https://acct1.blob.core.windows.net/", "acct1", None, "core.windows.net", None),
        ("https://acct1.blob.core.windows.net/azureml-blobstore-1a2b", "acct1",
         "azureml-blobstore-1a2b", "core.windows.net", None),
        ("https://acct1.blob.core.chinacloudapi.cn/c1c", "acct1", "c1c",
         "core.chinacloudapi.cn", None),
        ("https://acct1.blob.core.usgovcloudapi.net", "acct1", None, "core.usgovcloudapi.net",
         None),
        ("https://ACCT1.dfs.core.windows.net/c1c", "acct1", "c1c", "core.windows.net",
         "https://acct1.blob.core.windows.net"),
        ("az://c1c@acct1.blob.core.windows.net", "acct1", "c1c", "core.windows.net", None),
        ("abfss://c1c@acct1.dfs.core.windows.net/", "acct1", "c1c", "core.windows.net",
         "https://acct1.blob.core.windows.net"),
        ("az://c1c", None, "c1c", "core.windows.net", None),
        ("https://acct1.privatelink.blob.core.windows.net/c1c", "acct1", "c1c",
         "core.windows.net", "https://acct1.privatelink.blob.core.windows.net"),
        ("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1", None,
         "core.windows.net", "http://127.0.0.1:10000/devstoreaccount1"),
        ("http://localhost:10000/amlsrc/azureml", "amlsrc", "azureml", "core.windows.net",
         "http://localhost:10000/amlsrc"),
    ],
)  # fmt: skip
def test_parse_location(
    url: str, account: str | None, container: str | None, suffix: str, account_url: str | None
) -> None:
    loc = parse_location(url)
    assert (loc.account, loc.container, loc.suffix) == (account, container, suffix)
    if account_url:
        assert loc.account_url == account_url


def test_parse_location_takes_sas_from_query_and_never_displays_it() -> None:
    loc = parse_location("https://acct1.blob.core.windows.net/c1c?sv=2024&sp=rl&sig=SeCrEt%3D")
    assert loc.sas_token == "sv=2024&sp=rl&sig=SeCrEt%3D"
    assert loc.display == "https://acct1.blob.core.windows.net/c1c"
    assert "SeCrEt" not in repr(loc)


@pytest.mark.parametrize(
    "url",
    [
        "https://acct1.blob.core.windows.net/c1c/some/folder",  # not a whole container
        "https://acct1.blob.core.windows.net/Bad_Name",
        "http://127.0.0.1:10000",  # no account
        "s3://bucket",
    ],
)
def test_parse_location_rejects(url: str) -> None:
    with pytest.raises(UsageError):
        parse_location(url)


def test_source_never_calls_a_write_api() -> None:
    """A static guard next to the runtime one: no write method is named in the module."""
    writes = {
        "upload_blob", "create_container", "delete_blob", "delete_container", "delete_blobs",
        "start_copy_from_url", "stage_block", "commit_block_list", "set_blob_metadata",
        "set_blob_tags", "set_http_headers", "set_standard_blob_tier", "create_snapshot",
        "acquire_lease", "set_container_metadata", "set_container_access_policy",
        "undelete_blob", "upload_blob_from_url", "set_service_properties",
    }  # fmt: skip
    tree = ast.parse(Path(azure_mod.__file__).read_text(encoding="utf-8"))
    called = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not called & writes
    assert not {a for a in called if a.startswith(("set_", "upload", "delete", "create_"))}


# --- listing ---------------------------------------------------------------------------------


def test_mini_listing_matches_local_copy(mini: Mini) -> None:
    with open_source(mini.url, auth=key_auth(mini.account)) as src:
        assert src.descriptor.containers == (mini.blobstore, mini.artifacts)
        blobs = list(src.list_blobs())
    local = LocalSource(mini.local_dir, WorkspaceDescriptor(mini.account.name, mini.blobstore,
                                                            mini.artifacts))  # fmt: skip
    assert {(b.container, b.name, b.size) for b in blobs} == listing(local)
    assert len(blobs) == len({b.key for b in blobs}) == len(MINI_FILES) + len(MINI_ARTIFACTS)
    for blob in blobs:
        data = (mini.local_dir / blob.container / blob.name).read_bytes()
        assert blob.etag
        assert blob.content_md5 == hashlib.md5(data).hexdigest()  # lowercase hex


def test_fixture_workspace_listing_matches_local_copy(
    azurite_workspaces: dict[str, az.LoadedWorkspace],
) -> None:
    if not azurite_workspaces:
        pytest.skip("no fixture workspaces in fixtures/workspaces yet")
    for name, ws in azurite_workspaces.items():
        descriptor = load_descriptor_file(ws.descriptor_file)
        local = LocalSource(ws.local_dir)
        with open_source(
            ws.url, auth=key_auth(ws.account), workspace_file=ws.descriptor_file
        ) as src:
            assert src.descriptor == descriptor, name
            blobs = list(src.list_blobs())
        assert {(b.container, b.name, b.size) for b in blobs} == listing(local), name
        for blob in blobs:
            assert blob.etag, (name, blob.name)
            if blob.size <= 1 << 20:  # single-shot uploads carry an MD5
                data = (ws.local_dir / blob.container / blob.name).read_bytes()
                assert blob.content_md5 == hashlib.md5(data).hexdigest(), (name, blob.name)


def test_fixture_workspace_discovery_finds_the_described_containers(
    azurite_workspaces: dict[str, az.LoadedWorkspace],
) -> None:
    """Without workspace.yaml, listing the account finds the containers it names."""
    if not azurite_workspaces:
        pytest.skip("no fixture workspaces in fixtures/workspaces yet")
    for name, ws in azurite_workspaces.items():
        described = load_descriptor_file(ws.descriptor_file)
        with open_source(ws.url, auth=key_auth(ws.account)) as src:
            assert src.descriptor.account == ws.account.name
            assert src.descriptor.workspace is None and src.descriptor.subscription_id is None
            present = [c for c in described.containers if c in ws.containers]
            assert list(src.containers) == present, name


def test_container_url_finds_hub_partner_and_descriptor_overrides(mini: Mini) -> None:
    with open_source(mini.url, auth=key_auth(mini.account)) as src:
        assert src.descriptor.blobstore_container == mini.blobstore
        assert src.descriptor.artifact_container == mini.artifacts
        assert src.descriptor.datastores["workspaceartifactstore"] == mini.artifacts
    with open_source(f"{mini.account.url}/{mini.artifacts}", auth=key_auth(mini.account)) as src:
        assert src.containers == (mini.blobstore, mini.artifacts)  # the partner, both ways
    given = WorkspaceDescriptor(
        account="somethingelse", blobstore_container=mini.artifacts, workspace="ws-1"
    )
    with open_azure_source(mini.account.url, descriptor=given, auth=key_auth(mini.account)) as s:
        assert s.descriptor is given
        assert {b.container for b in s.list_blobs()} == {mini.artifacts}


def test_descriptor_naming_no_existing_container_is_not_found(mini: Mini) -> None:
    given = WorkspaceDescriptor(mini.account.name, "azureml-blobstore-nope", "nope-azureml")
    with pytest.raises(SourceNotFound, match="none of the workspace containers"):
        open_azure_source(mini.account.url, descriptor=given, auth=key_auth(mini.account))


def test_account_with_several_blobstores_asks_which(azurite: az.Azurite, mini: Mini) -> None:
    admin = azurite.source.service_client()
    other = f"{uuid.uuid4().hex[:12]}-blobstore"
    admin.create_container(other)
    try:
        with pytest.raises(UsageError, match="workspace blobstores") as info:
            open_source(azurite.source.url, auth=key_auth(azurite.source))
        assert mini.blobstore in str(info.value) and other in str(info.value)
    finally:
        admin.delete_container(other)
        admin.close()


def test_az_url_takes_the_account_from_the_connection_string(mini: Mini) -> None:
    auth = StorageAuth(connection_string=mini.account.connection_string)
    with open_source(f"az://{mini.blobstore}", auth=auth) as src:
        assert src.describe() == mini.url
        assert src.descriptor.account == mini.account.name
        assert {b.name for b in src.list_blobs() if b.container == mini.blobstore} == set(
            MINI_FILES
        )


# --- reading ---------------------------------------------------------------------------------


def test_read_bytes_and_max_bytes(big: Big, azurite: az.Azurite) -> None:
    with open_source(big.url, auth=key_auth(azurite.source)) as src:
        blobs = {b.name: b for b in src.list_blobs()}
        assert blobs["model/weights.bin"].size == BIG_SIZE
        assert blobs["model/weights.bin"].content_md5 == hashlib.md5(big.data).hexdigest()
        assert src.read_bytes(big.container, "model/weights.bin") == big.data
        assert src.read_bytes(big.container, "model/weights.bin", max_bytes=1000) == big.data[:1000]
        assert (
            src.read_bytes(big.container, "model/weights.bin", max_bytes=BIG_SIZE * 2) == big.data
        )
        assert src.read_bytes(big.container, "model/weights.bin", max_bytes=0) == b""
        assert src.read_bytes(big.container, "empty.bin") == b""
        assert src.read_bytes(big.container, "empty.bin", max_bytes=10) == b""
        with pytest.raises(SourceNotFound, match="not found") as info:
            src.read_bytes(big.container, "model/missing.bin", max_bytes=0)
        assert_clean_error(info.value, azurite.source.key)


def test_open_stream_streams_in_chunks(big: Big, azurite: az.Azurite) -> None:
    with open_source(big.url, auth=key_auth(azurite.source)) as src:
        stream = src.open_stream(big.container, "model/weights.bin")
        raw: Any = stream.raw  # type: ignore[attr-defined]  # the BufferedReader's raw stream
        assert stream.read(10) == big.data[:10]
        assert raw.bytes_received <= CHUNK_SIZE  # only the first chunk so far
        digest, total = hashlib.sha256(big.data[:10]), 10
        while piece := stream.read(1 << 20):
            digest.update(piece)
            total += len(piece)
        stream.close()
        assert total == BIG_SIZE and raw.bytes_received == BIG_SIZE
        assert digest.hexdigest() == hashlib.sha256(big.data).hexdigest()
        with src.open_stream(big.container, "empty.bin") as empty:
            assert empty.read() == b""
        with pytest.raises(SourceNotFound):
            src.open_stream(big.container, "nope.bin")


def test_read_many_is_bounded_and_reports_errors(mini: Mini) -> None:
    with open_source(mini.url, auth=key_auth(mini.account)) as src:
        blobs = list(src.list_blobs())
        missing = BlobInfo(mini.blobstore, "not/there.txt", 1)
        in_flight, peak, lock = 0, 0, threading.Lock()
        real_read = src.read_bytes

        def counting_read(container: str, name: str, *, max_bytes: int | None = None) -> bytes:
            nonlocal in_flight, peak
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            try:
                return real_read(container, name, max_bytes=max_bytes)
            finally:
                with lock:
                    in_flight -= 1

        src.read_bytes = counting_read  # type: ignore[method-assign]
        results = list(src.read_many([*blobs, missing], workers=2, max_bytes=64))
    assert 1 <= peak <= 2
    by_key = {r.blob.key: r for r in results}
    assert len(results) == len(by_key) == len(blobs) + 1
    assert isinstance(by_key[missing.key].error, SourceNotFound)
    for blob in blobs:
        expected = (mini.local_dir / blob.container / blob.name).read_bytes()[:64]
        assert by_key[blob.key].data == expected and by_key[blob.key].error is None


# --- errors ----------------------------------------------------------------------------------


def test_wrong_account_key_is_access_denied_without_the_key(mini: Mini) -> None:
    wrong = az.new_account_key()
    with pytest.raises(AccessDenied) as info:
        open_source(mini.url, auth=StorageAuth(account_key=wrong))
    assert info.value.exit_code == ExitCode.ERROR == 2
    assert_clean_error(info.value, wrong, mini.account.key)
    assert "\n" not in str(info.value)


def test_wrong_connection_string_is_access_denied_without_secrets(mini: Mini) -> None:
    wrong = mini.account.connection_string.replace(mini.account.key, az.new_account_key())
    with pytest.raises(AccessDenied) as info:
        open_source(mini.account.url, auth=StorageAuth(connection_string=wrong))
    assert_clean_error(info.value, wrong, wrong.split("AccountKey=")[1].split(";")[0])


def test_missing_container_and_account_are_not_found(azurite: az.Azurite) -> None:
    acct = azurite.source
    with pytest.raises(SourceNotFound, match="container no-such-container not found"):
        open_source(f"{acct.url}/no-such-container", auth=key_auth(acct))
    with pytest.raises(SourceNotFound, match="storage account nosuchacct not found"):
        open_source(f"{azurite.endpoint}/nosuchacct", auth=key_auth(acct))


def test_unreachable_endpoint_is_a_source_error(azurite: az.Azurite) -> None:
    url = f"http://127.0.0.1:{az.free_port()}/{azurite.source.name}"
    with pytest.raises(SourceError) as info:
        open_azure_source(url, auth=key_auth(azurite.source), retry=FAST_RETRY)
    assert type(info.value) is SourceError
    assert info.value.hint is not None and "check the URL / network" in info.value.hint
    assert_clean_error(info.value, azurite.source.key)


@pytest.mark.parametrize("kind", ["account", "container"])
def test_expired_sas_is_access_denied(mini: Mini, kind: str) -> None:
    past = timedelta(hours=-1)
    if kind == "account":
        sas = az.read_list_account_sas(mini.account, expires_in=past)
    else:
        sas = az.read_list_container_sas(mini.account, mini.blobstore, expires_in=past)
    with pytest.raises(AccessDenied, match="expired") as info:
        open_source(f"{mini.url}?{sas}")
    assert_clean_error(info.value, sas, sas.split("sig=")[1])


def test_anonymous_access_is_denied_with_a_hint(mini: Mini) -> None:
    with pytest.raises(AccessDenied) as info:
        open_source(mini.url)
    assert info.value.hint and "--sas-token" in info.value.hint


def test_credential_misuse_is_a_usage_error(mini: Mini, monkeypatch: pytest.MonkeyPatch) -> None:
    sas = az.read_list_account_sas(mini.account)
    cases: list[tuple[str, StorageAuth]] = [
        (mini.url, StorageAuth(account_key=mini.account.key, sas_token=sas)),
        (f"{mini.url}?{sas}", StorageAuth(connection_string=mini.account.connection_string)),
        (f"az://{mini.blobstore}", StorageAuth(account_key=mini.account.key)),
        (mini.url, StorageAuth(connection_string="AccountKey=abc;nonsense")),
        (mini.url.replace(mini.account.name, "otheracct"),
         StorageAuth(connection_string=mini.account.connection_string)),
        (mini.url, StorageAuth(use_default_credential=True)),  # http: no token credential
    ]  # fmt: skip
    for url, auth in cases:
        with pytest.raises(UsageError) as info:
            open_source(url, auth=auth)
        assert_clean_error(info.value, mini.account.key, sas, mini.account.connection_string)
    monkeypatch.setitem(__import__("sys").modules, "azure.identity", None)
    with pytest.raises(UsageError) as info:
        open_source("https://acct1.blob.core.windows.net/c1c", auth=StorageAuth(
            use_default_credential=True))  # fmt: skip
    assert info.value.hint == "pip install amlport[identity]"


# --- read-only -------------------------------------------------------------------------------


def test_read_only_sas_reads_and_the_server_refuses_writes(mini: Mini) -> None:
    sas = az.read_list_container_sas(mini.account, mini.blobstore)
    with open_source(f"{mini.url}?{sas}") as src:
        assert mini.blobstore in src.containers
        assert mini.artifacts in src.skipped_containers  # the SAS covers one container
        blobs = [b for b in src.list_blobs() if b.container == mini.blobstore]
        assert {b.name for b in blobs} == set(MINI_FILES)
        assert src.read_bytes(mini.blobstore, "deep/a/b/c/d/e/f.txt") == b"deep\n"
        assert_clean(src.describe() + repr(src), sas)
    # The same credential through a plain SDK client (no amlport guard): the server says no.
    raw = ContainerClient.from_container_url(f"{mini.url}?{sas}")
    attempts = [
        lambda: raw.upload_blob("intruder.txt", b"x"),
        lambda: raw.upload_blob("empty.txt", b"overwritten", overwrite=True),
        lambda: raw.delete_blob("empty.txt"),
        lambda: raw.get_blob_client("empty.txt").set_blob_metadata({"a": "b"}),
        lambda: raw.create_container(),
    ]
    for attempt in attempts:
        with pytest.raises(HttpResponseError) as info:
            attempt()
        assert info.value.status_code == 403
    account_sas = az.read_list_account_sas(mini.account)
    acct_raw = ContainerClient.from_container_url(f"{mini.account.url}/newc?{account_sas}")
    with pytest.raises(HttpResponseError) as info:
        acct_raw.create_container()
    assert info.value.status_code == 403
    admin = mini.account.service_client().get_container_client(mini.blobstore)
    assert {b.name for b in admin.list_blobs()} == set(MINI_FILES)
    assert admin.download_blob("empty.txt").readall() == b""


def test_source_refuses_any_write_before_it_leaves_the_process(mini: Mini) -> None:
    with open_source(mini.url, auth=key_auth(mini.account)) as src:
        assert isinstance(src, AzureSource)
        client = src._service.get_container_client(mini.blobstore)  # the source's own pipeline
        with pytest.raises(ReadOnlyViolation, match="read-only"):
            client.upload_blob("intruder.txt", b"x")
        with pytest.raises(ReadOnlyViolation):
            client.delete_blob("empty.txt")
    admin = mini.account.service_client().get_container_client(mini.blobstore)
    assert {b.name for b in admin.list_blobs()} == set(MINI_FILES)


def test_no_credential_in_describe_repr_or_errors(mini: Mini) -> None:
    sas = az.read_list_account_sas(mini.account)
    auths = [
        StorageAuth(sas_token=sas),
        StorageAuth(account_key=mini.account.key),
        StorageAuth(connection_string=mini.account.connection_string),
    ]
    secrets = (sas, sas.split("sig=")[1], mini.account.key, mini.account.connection_string)
    for auth in auths:
        assert_clean(repr(auth) + str(auth), *secrets)
        with open_source(mini.url, auth=auth) as src:
            assert src.describe() == mini.url
            assert_clean(src.describe() + repr(src), *secrets)
            with pytest.raises(SourceNotFound) as info:
                src.read_bytes(mini.blobstore, "no/such/blob")
            assert_clean_error(info.value, *secrets)
    with open_source(f"{mini.url}?{sas}") as src:
        assert src.describe() == mini.url


# --- retries ---------------------------------------------------------------------------------


class _Faults:
    """Fault rules for a proxy in front of Azurite, armed once the source is open: listing
    goes through the SDK and reads through obstore, so faults are injected on the wire."""

    def __init__(self, listing: list[int], reads: list[int], blob: str) -> None:
        self.listing, self.reads, self.blob = list(listing), list(reads), blob
        self.armed = False

    def __call__(self, method: str, path: str, seen: int) -> Fault | None:
        if not self.armed or method != "GET":
            return None
        if path.endswith("/" + self.blob):
            queue = self.reads
        elif path.count("/") == 2:  # /<account>/<container>: a listing
            queue = self.listing
        else:
            return None
        return Fault(status=queue.pop(0), retry_after="0") if queue else None


def _port(mini: Mini) -> int:
    return int(urlsplit(mini.account.url).port or 0)


def _via(proxy: FaultProxy, mini: Mini) -> str:
    return f"{proxy.endpoint}/{mini.account.name}/{mini.blobstore}"


def test_throttling_is_retried_and_counted(mini: Mini) -> None:
    faults = _Faults([503, 429], [500, 503], "empty.txt")
    with FaultProxy(_port(mini), faults) as proxy:
        src = open_azure_source(_via(proxy, mini), auth=key_auth(mini.account), retry=FAST_RETRY)
        with src:
            assert src.retry_count == 0
            faults.armed = True
            assert len(list(src.list_blobs())) == len(MINI_FILES) + len(MINI_ARTIFACTS)
            assert src.retry_count == 2
            assert src.read_bytes(mini.blobstore, "empty.txt") == b""
            assert src.retry_count == 4


def test_retries_exhausted_is_transient_error(mini: Mini) -> None:
    faults = _Faults([], [503] * (FAST_RETRY.total + 1), "empty.txt")
    with FaultProxy(_port(mini), faults) as proxy:
        src = open_azure_source(_via(proxy, mini), auth=key_auth(mini.account), retry=FAST_RETRY)
        with src:
            faults.armed = True
            with pytest.raises(TransientStorageError, match="503") as info:
                src.read_bytes(mini.blobstore, "empty.txt")
            assert src.retry_count == FAST_RETRY.total
        assert_clean_error(info.value, mini.account.key)


def _requests_to_open(azurite: az.Azurite, ws: az.LoadedWorkspace, form: str) -> list[str]:
    """The paths of the requests ``open_azure_source`` sends for the workspace's account
    URL (discovery) with one credential form; the source then lists every blob."""
    with FaultProxy(azurite.port, lambda _method, _path, _seen: None) as proxy:
        url = f"{proxy.endpoint}/{ws.account.name}"
        auths = {
            "account key": key_auth(ws.account),
            "connection string": StorageAuth(
                connection_string=f"DefaultEndpointsProtocol=http;AccountName={ws.account.name};"
                f"AccountKey={ws.account.key};BlobEndpoint={url};"
            ),
            "account SAS": StorageAuth(sas_token=az.read_list_account_sas(ws.account)),
        }
        with open_azure_source(url, auth=auths[form]) as src:
            opened = [path for _method, path in proxy.log]
            assert set(src.containers) == set(ws.containers)
            listed = {(b.container, b.name) for b in src.list_blobs()}
    admin = ws.account.service_client()
    try:
        expected = {
            (c, b.name) for c in ws.containers for b in admin.get_container_client(c).list_blobs()
        }
    finally:
        admin.close()
    assert listed == expected
    return opened


@pytest.mark.parametrize("form", ["account key", "connection string"])
def test_a_keyed_discovery_probes_no_container(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace], form: str
) -> None:
    """The account's key reads every container the account's listing names: discovery is
    one call, and the listing starts after it (no one-item probe of each container)."""
    ws = azurite_workspaces[sorted(azurite_workspaces)[0]]
    assert _requests_to_open(azurite, ws, form) == [f"/{ws.account.name}/"]


def test_a_sas_discovery_still_probes_each_container(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace]
) -> None:
    """A SAS that lists the account's containers may not list their blobs: each container
    is still probed before the source is open."""
    ws = azurite_workspaces[sorted(azurite_workspaces)[0]]
    opened = _requests_to_open(azurite, ws, "account SAS")
    assert opened[0] == f"/{ws.account.name}/"
    assert sorted(opened[1:]) == sorted(f"/{ws.account.name}/{c}" for c in ws.containers)
