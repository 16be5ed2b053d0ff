"""The obstore data path of an Azure source (storage/objects.py), on Azurite.

Listing, discovery and signing stay on azure-storage-blob; blob reads go through obstore.
These tests check what the SDK's own tests cannot see: every credential form reaches obstore,
a stream that breaks mid-body resumes where it broke (counted as a retry), obstore's errors
become the same amlport errors with no secret in them, and obstore honours the proxy
settings of the environment.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, cast

import pytest
from helpers import azurite as az
from helpers.bundle import new_repo
from helpers.bytescan import scan_reusing_one_buffer
from helpers.relay import Relay

import amlport.storage.objects as objects_mod
from amlport.bundle.objects import CHUNK_SIZE
from amlport.errors import (
    AccessDenied,
    IntegrityError,
    SourceError,
    SourceNotFound,
    TransientStorageError,
)
from amlport.secrets import ByteScanner, find_secrets_in_bytes
from amlport.storage.auth import StorageAuth
from amlport.storage.azure import STREAM_PIECE, open_azure_source
from amlport.storage.azure_location import parse_location
from amlport.storage.objects import TokenBridge, obstore_failure, store_options
from amlport.storage.retry import FAST_RETRY
from amlport.streams import Tee

pytestmark = pytest.mark.azurite

BIG = 9 << 20  # more than a stream piece, several obstore chunks


@dataclass
class Files:
    account: az.AzuriteAccount
    container: str
    big: bytes
    small: bytes = b"small file\n"

    @property
    def url(self) -> str:
        return f"{self.account.url}/{self.container}"


@pytest.fixture(scope="module")
def files(azurite: az.Azurite) -> Files:
    container = f"obs-{uuid.uuid4().hex[:8]}"
    big = os.urandom(BIG)
    admin = azurite.source.service_client()
    client = admin.create_container(container)
    client.upload_blob("model/weights.bin", big)
    client.upload_blob("notes/small.txt", Files.small)
    client.upload_blob("empty.bin", b"")
    admin.close()
    return Files(azurite.source, container, big)


@pytest.fixture
def relay(azurite: az.Azurite) -> Iterator[Relay]:
    r = Relay(azurite.port)
    yield r
    r.close()


# --- reads through obstore -------------------------------------------------------------------


@pytest.mark.parametrize("form", ["key", "connection-string", "account-sas", "container-sas"])
def test_every_credential_form_reads_through_obstore(files: Files, form: str) -> None:
    acct, url = files.account, files.url
    auth = {
        "key": StorageAuth(account_key=acct.key),
        "connection-string": StorageAuth(connection_string=acct.connection_string),
        "account-sas": StorageAuth(sas_token=az.read_list_account_sas(acct)),
        "container-sas": StorageAuth(sas_token=az.read_list_container_sas(acct, files.container)),
    }[form]
    with open_azure_source(url, auth=auth) as src:
        assert src.read_bytes(files.container, "notes/small.txt") == files.small
        assert src.read_bytes(files.container, "notes/small.txt", max_bytes=5) == b"small"
        assert src.read_bytes(files.container, "empty.bin", max_bytes=5) == b""
        assert src.read_bytes(files.container, "notes/small.txt", max_bytes=0) == b""
        with pytest.raises(SourceNotFound, match="not found"):
            src.read_bytes(files.container, "notes/missing.txt", max_bytes=0)
        with src.open_stream(files.container, "model/weights.bin") as stream:
            assert hashlib.sha256(stream.read()).digest() == hashlib.sha256(files.big).digest()


@pytest.mark.parametrize("form", ["key", "account-sas"])
def test_credentials_in_the_environment_do_not_override_amlports(
    files: Files, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """obstore reads AZURE_* variables; one meant for another tool must not replace the
    credential amlport was given (an explicit account key lost to AZURE_STORAGE_TOKEN)."""
    monkeypatch.setenv("AZURE_STORAGE_TOKEN", "not-a-token")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", "bm90LWEta2V5")
    monkeypatch.setenv("AZURE_STORAGE_SAS_KEY", "sv=2020&sig=bm90")
    acct = files.account
    auth = (
        StorageAuth(account_key=acct.key)
        if form == "key"
        else StorageAuth(sas_token=az.read_list_account_sas(acct))
    )
    with open_azure_source(files.url, auth=auth) as src:
        assert src.read_bytes(files.container, "notes/small.txt") == files.small


def test_a_stream_cut_mid_body_resumes_where_it_broke(files: Files, relay: Relay) -> None:
    path = f"/{files.account.name}/{files.container}/model/weights.bin"
    url = f"{relay.endpoint}/{files.account.name}/{files.container}"
    with open_azure_source(url, auth=StorageAuth(account_key=files.account.key)) as src:
        relay.cut.add(path)
        with src.open_stream(files.container, "model/weights.bin") as stream:
            data = stream.read()
        assert data == files.big
        assert src.retry_count == 1
    gets = [h for m, p, h in relay.seen if m == "GET" and p == path]
    assert len(gets) == 2 and "range" not in gets[0]
    start = int(gets[1]["range"].removeprefix("bytes=").split("-")[0])
    assert 0 < start <= BIG // 2  # from where it broke, not from the start
    assert gets[1].get("if-match")  # and only if the blob is still the same


def test_a_stream_that_keeps_breaking_fails_after_its_retries(files: Files, relay: Relay) -> None:
    """Every answer cut: each resume is one retry, and when the budget is spent the read fails
    as a broken connection does (``TransientStorageError``), not with a short file."""
    path = f"/{files.account.name}/{files.container}/model/weights.bin"
    url = f"{relay.endpoint}/{files.account.name}/{files.container}"
    auth = StorageAuth(account_key=files.account.key)
    with open_azure_source(url, auth=auth, retry=FAST_RETRY) as src:
        relay.cut_always.add(path)
        stream = src.open_stream(files.container, "model/weights.bin")
        with pytest.raises(TransientStorageError) as info, stream:
            stream.read()
        assert src.retry_count == FAST_RETRY.total
    assert "the connection broke reading blob" in str(info.value)
    assert f"after {FAST_RETRY.total} retries" in str(info.value)
    gets = [h for m, p, h in relay.seen if m == "GET" and p == path]
    assert len(gets) == FAST_RETRY.total + 1
    starts = [int(h["range"].removeprefix("bytes=").split("-")[0]) for h in gets[1:]]
    assert starts == sorted(starts) and starts[0] > 0  # each resume from where the last broke
    assert all(h.get("if-match") for h in gets[1:])


def test_a_blob_replaced_during_a_stream_is_not_spliced(
    files: Files, relay: Relay, azurite: az.Azurite
) -> None:
    """The stream breaks, and before it resumes the blob is replaced: the resume's
    ``If-Match`` fails, and the read fails naming the change, instead of joining the first
    blob's head to the second one's tail."""
    name = f"model/changing-{uuid.uuid4().hex[:6]}.bin"
    first, second = os.urandom(BIG), os.urandom(BIG)
    admin = azurite.source.service_client()
    blob = admin.get_blob_client(files.container, name)
    blob.upload_blob(first)
    path = f"/{files.account.name}/{files.container}/{name}"
    url = f"{relay.endpoint}/{files.account.name}/{files.container}"
    relay.on_cut = lambda: blob.upload_blob(second, overwrite=True)
    try:
        with open_azure_source(url, auth=StorageAuth(account_key=files.account.key)) as src:
            relay.cut.add(path)
            stream = src.open_stream(files.container, name)
            with pytest.raises(SourceError) as info, stream:
                stream.read()
            assert src.retry_count == 1  # the resume was tried once, then refused
    finally:
        admin.close()
    assert not isinstance(info.value, TransientStorageError)  # re-reading now would not help
    assert "changed while it was being read" in str(info.value)
    assert name in str(info.value)
    gets = [h for m, p, h in relay.seen if m == "GET" and p == path]
    assert len(gets) == 2 and gets[1].get("if-match")


def _planted(size: int, at: list[int], secret: bytes) -> bytes:
    """Random bytes with ``secret`` written so that it straddles each offset of ``at``."""
    data = bytearray(os.urandom(size))
    for offset in at:
        start = offset - len(secret) // 2
        data[start : start + len(secret)] = secret
    return bytes(data)


def test_a_stream_read_as_a_transfer_reads_it_is_the_blob_and_its_secrets(
    files: Files, azurite: az.Azurite, tmp_path: Path
) -> None:
    """The stream hands the body over in ``STREAM_PIECE`` pieces, smaller than the 1 MiB a
    transfer reads into its one buffer (docs/design/0005, "CPU per MiB of large models (E,
    session 8)"). Read that way, the bytes are the blob's; UTF-16 account keys straddling piece
    and chunk boundaries are each found, and the scan of the stream counts what the scan of the
    same bytes fed from one buffer does; the object stored is the blob; a wrong MD5 is still
    refused, storing nothing; reads of other sizes (a line, a few bytes, the rest) give the
    same bytes."""
    key = base64.b64encode(b"K" * 20 + bytes(range(44))).decode()
    wide = f"AccountKey={key}".encode("utf-16-le")
    cuts = [STREAM_PIECE, 3 * STREAM_PIECE + 1, CHUNK_SIZE, 2 * CHUNK_SIZE - 7]
    body = _planted(5 * CHUNK_SIZE + 12345, cuts, wide)
    body = body[:-4096] + b"\x01" + f"AccountKey={key}".encode() + b"\x01" + body[-3000:]
    name = f"model/planted-{uuid.uuid4().hex[:6]}.bin"
    admin = azurite.source.service_client()
    try:
        admin.get_blob_client(files.container, name).upload_blob(body)
    finally:
        admin.close()
    expected = find_secrets_in_bytes(body)
    assert expected["account_key"] == len(cuts)  # each straddling key, found in the whole
    repo = new_repo(tmp_path)
    with open_azure_source(files.url, auth=StorageAuth(account_key=files.account.key)) as src:
        scanner = ByteScanner()
        with src.open_stream(files.container, name) as stream:
            digest, size = repo.objects.put_stream(
                cast(BinaryIO, Tee(stream, lambda d: scanner.feed(d) if d else None))
            )
        assert (size, repo.objects.get_bytes(digest)) == (len(body), body)
        # as the same bytes fed from one buffer in the transfer's chunks (a key seen in two
        # rounds, as one-byte text in one and UTF-16 in another, counts in each: secrets.py)
        assert scanner.close() == scan_reusing_one_buffer(body, CHUNK_SIZE)
        wrong = hashlib.md5(body[:-1], usedforsecurity=False).hexdigest()
        other = new_repo(tmp_path, "other")
        stream = src.open_stream(files.container, name)
        with stream, pytest.raises(IntegrityError, match="content MD5 mismatch"):
            other.objects.put_stream(stream, expected_md5=wrong)
        assert [p for p in (tmp_path / "other" / "objects").rglob("*") if p.is_file()] == []
        with src.open_stream(files.container, name) as stream:
            parts = [stream.readline(), stream.read(7), stream.read(STREAM_PIECE + 3)]
            buffer = bytearray(CHUNK_SIZE)
            got = stream.readinto(buffer)
            parts += [bytes(buffer[:got]), stream.read()]
        assert b"".join(parts) == body


def test_copies_of_one_model_are_scanned_once_and_a_lookalike_whole(
    files: Files, azurite: az.Azurite, tmp_path: Path
) -> None:
    """Three blobs of the same bytes streamed from Azurite as the transfer streams them
    (``open_stream``; ``put_stream`` with the scan as its ``judge`` and ``again`` opening the
    blob anew): one object, its bytes scanned and staged once, no blob read twice; a blob
    that begins as they do and holds an account key near its end is read again, scanned
    whole and refused, nothing stored for it (docs/design/0005, "CPU per MiB of a
    large-model backup (G, session 9)")."""
    key = base64.b64encode(b"K" * 20 + bytes(range(44))).decode()
    body = os.urandom(3 * CHUNK_SIZE + 4321)
    lookalike = body[:-4000] + b"\x01" + f"AccountKey={key}".encode() + b"\x01" + body[-3000:]
    tag = uuid.uuid4().hex[:6]
    names = [f"model/copy{i}-{tag}/[w]..bin" for i in range(3)] + [f"model/other-{tag}.bin"]
    admin = azurite.source.service_client()
    try:
        for name in names:
            data = lookalike if "other" in name else body
            admin.get_blob_client(files.container, name).upload_blob(data)
    finally:
        admin.close()
    repo = new_repo(tmp_path)
    seen: list[int] = []
    opened: list[str] = []

    def judge_of(counts: list[int]) -> Callable[[bytes | memoryview], None]:
        scanner = ByteScanner()
        counts.append(0)

        def judge(data: bytes | memoryview) -> None:
            if data:
                counts[-1] += len(data)
                scanner.feed(data)
            elif found := scanner.close():
                raise IntegrityError(f"holds {sorted(found)}")  # (the transfer: _Withheld)

        return judge

    digests = []
    with open_azure_source(files.url, auth=StorageAuth(account_key=files.account.key)) as src:

        def again(name: str) -> Callable[[], BinaryIO]:
            def reopen() -> BinaryIO:
                opened.append(name)
                return src.open_stream(files.container, name)

            return reopen

        for name in names[:3]:
            with src.open_stream(files.container, name) as stream:
                put = repo.objects.put_stream(stream, judge=judge_of(seen), again=again(name))
                digests.append(put[0])
        stored = sorted(p for p in (tmp_path / "repo" / "objects").rglob("*") if p.is_file())
        stream = src.open_stream(files.container, names[3])
        with stream, pytest.raises(IntegrityError, match="account_key"):
            repo.objects.put_stream(stream, judge=judge_of(seen), again=again(names[3]))
    assert len(set(digests)) == 1 and repo.objects.get_bytes(digests[0]) == body
    assert seen == [len(body), 0, 0, len(lookalike)]
    assert opened == [names[3]]
    assert sorted(p for p in (tmp_path / "repo" / "objects").rglob("*") if p.is_file()) == stored


def test_obstore_errors_become_amlport_errors_without_secrets(files: Files) -> None:
    sas = az.read_list_container_sas(files.account, files.container)
    with open_azure_source(files.url, auth=StorageAuth(sas_token=sas)) as src:
        with pytest.raises(SourceNotFound) as missing:
            src.read_bytes(files.container, "nope/x.bin")
        with pytest.raises(SourceNotFound):
            src.open_stream(files.container, "nope/x.bin")
        # The container SAS does not cover another container: the service refuses (403).
        with pytest.raises(AccessDenied) as denied:
            src.read_bytes("someothercontainer", "notes/small.txt")
    for exc in (missing.value, denied.value):
        text = f"{exc} {exc.hint} {exc!r}"
        assert sas.split("sig=")[1] not in text
        assert exc.__cause__ is None and exc.__suppress_context__
        assert "Debug source" not in text and "http://" not in text


def test_unreachable_and_unresolvable_hosts_are_named_not_retried_forever(
    files: Files, relay: Relay
) -> None:
    url = f"{relay.endpoint}/{files.account.name}/{files.container}"
    src = open_azure_source(url, auth=StorageAuth(account_key=files.account.key), retry=FAST_RETRY)
    with src:
        relay.close()  # the endpoint goes away after the source was opened
        with pytest.raises(Exception) as info:
            src.read_bytes(files.container, "notes/small.txt")
        assert "cannot reach" in str(info.value) or isinstance(info.value, TransientStorageError)
        assert src.retry_count <= FAST_RETRY.total


def test_obstore_honours_the_environments_http_proxy(
    files: Files, relay: Relay, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", relay.endpoint)
    monkeypatch.setenv("http_proxy", relay.endpoint)
    with open_azure_source(files.url, auth=StorageAuth(account_key=files.account.key)) as src:
        assert src.read_bytes(files.container, "notes/small.txt") == files.small
    path = f"/{files.account.name}/{files.container}/notes/small.txt"
    assert ("GET", path) in [(m, p) for m, p, _ in relay.seen]


# --- options and errors (no emulator needed) -------------------------------------------------


class _Credential:
    """An azure-identity-shaped credential (``get_token``) standing in for a sign-in."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        self.scopes.append(scopes)
        return type("AccessToken", (), {"token": "tok", "expires_on": 2_000_000_000})()


def test_the_token_bridge_asks_for_the_storage_scope() -> None:
    cred = _Credential()
    token = TokenBridge(cred)()
    assert token == {
        "token": "tok",
        "expires_at": datetime.fromtimestamp(2_000_000_000, timezone.utc),
    }
    assert cred.scopes == [("https://storage.azure.com/.default",)]


@pytest.mark.parametrize(
    ("url", "endpoint", "http"),
    [
        ("https://acct.blob.core.windows.net/ctr", "https://acct.blob.core.windows.net", False),
        ("https://acct.blob.core.chinacloudapi.cn/ctr", "https://acct.blob.core.chinacloudapi.cn",
         False),
        ("abfss://ctr@acct.dfs.core.usgovcloudapi.net", "https://acct.blob.core.usgovcloudapi.net",
         False),
        ("http://127.0.0.1:10000/acct/ctr", "http://127.0.0.1:10000/acct", True),
    ],
)  # fmt: skip
def test_store_options_keep_the_resolved_endpoint(url: str, endpoint: str, http: bool) -> None:
    options = store_options(parse_location(url), None, 4)
    assert options["endpoint"] == endpoint and options["account_name"] == "acct"
    assert options["client_options"]["allow_http"] is http
    assert options["retry_config"] == {"max_retries": 0}  # amlport retries and counts
    assert options["skip_signature"] is True  # no credential: anonymous


def test_store_options_take_the_sdks_credential() -> None:
    loc = parse_location("https://acct.blob.core.windows.net/ctr?sv=1&sig=abc")
    key = type("SharedKey", (), {"account_key": "a2V5"})()
    keyed = store_options(loc, key, 4)["credential_provider"]
    assert keyed() == {"access_key": "a2V5", "expires_at": None} and "a2V5" not in repr(keyed)
    signed = store_options(loc, None, 4)["credential_provider"]
    assert signed() == {"sas_token": "sv=1&sig=abc", "expires_at": None}
    assert "abc" not in repr(signed)
    bridged = store_options(loc, _Credential(), 4)["credential_provider"]
    assert isinstance(bridged, TokenBridge)


def test_non_storage_exceptions_are_not_failures() -> None:
    assert obstore_failure(ValueError("x")) is None
    assert obstore_failure(FileNotFoundError("x")) is not None


def test_the_obstore_reader_only_reads() -> None:
    """The static half of the read-only guarantee for the obstore path (the SDK client of a
    source refuses writes at run time; obstore has no such hook): objects.py calls obstore's
    reading functions only."""
    tree = ast.parse(Path(objects_mod.__file__).read_text(encoding="utf-8"))
    attrs = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute)]
    called = {a.attr for a in attrs if isinstance(a.value, ast.Name) and a.value.id == "obstore"}
    assert called and called <= {"get", "get_range", "get_ranges", "head", "list"}
