"""amlport's own listing client (storage/azure_list.py), its pure parts: Shared Key signed
byte for byte as azure-storage-blob signs, the service version the SDK sends, proxies as
requests chooses them, connection strings read as the SDK reads them, and List Containers
answers parsed within the listing's bounds."""

from __future__ import annotations

import base64
from urllib.parse import quote

import pytest
import requests
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob import BlobServiceClient
from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

from amlport.errors import SourceError
from amlport.storage.azure_errors import ErrorTranslator, Where
from amlport.storage.azure_list import (
    API_VERSION,
    ListClient,
    _connection_string,
    _parse_containers,
    proxy_for,
    shared_key,
    string_to_sign,
)
from amlport.storage.azure_location import parse_location
from amlport.storage.listing import MAX_PAGE_BYTES
from amlport.storage.retry import CountingRetry

KEY = base64.b64encode(b"k" * 64).decode()
HOSTILE = ["x[/]y.txt", "a..b/..c", "tab\there", "cr\rlf\nx", "é/ü/ß", "q?x=1&y#z%2F%", "L" * 1024]


def _sdk_authorization(account: str, url: str, headers: dict[str, str]) -> str:
    request = PipelineRequest(HttpRequest("GET", url, headers=dict(headers)), PipelineContext(None))
    SharedKeyCredentialPolicy(account, KEY).on_request(request)
    return str(request.http_request.headers["Authorization"])


@pytest.mark.parametrize("name", HOSTILE)
@pytest.mark.parametrize(
    "base",
    [
        "https://acct.blob.core.windows.net/azureml-blobstore-1",
        "https://acct.blob.core.chinacloudapi.cn/$root",
        "http://127.0.0.1:10000/acct/c-1",  # Azurite, path-style: the account twice
    ],
)
def test_shared_key_is_the_sdks_byte_for_byte(base: str, name: str) -> None:
    marker = quote(f"2!120!{name}", safe="")
    prefix = quote(name, safe="")
    query = f"restype=container&comp=list&maxresults=5000&include=metadata&prefix={prefix}"
    url = f"{base}?{query}&marker={marker}"
    headers = {
        "x-ms-version": API_VERSION,
        "x-ms-date": "Mon, 07 Dec 2026 19:00:00 GMT",
        "x-ms-client-request-id": "0b7e",
        "User-Agent": "amlport",
        "Accept": "application/xml",
    }
    ours = shared_key("acct", KEY, string_to_sign("acct", url, headers))
    assert ours == _sdk_authorization("acct", url, headers)


def test_a_key_that_is_not_base64_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as info:
        shared_key("acct", "not base64!!", "x")
    assert "base64!!" not in str(info.value)


def test_the_service_version_is_the_sdks() -> None:
    assert BlobServiceClient("https://a.blob.core.windows.net").api_version == API_VERSION


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"HTTPS_PROXY": "http://proxy.example:3128", "HTTP_PROXY": "http://proxy.example:3128"},
        {"HTTPS_PROXY": "http://proxy.example:3128", "NO_PROXY": ".core.windows.net,127.0.0.1"},
        {"ALL_PROXY": "http://all.example:1"},
        {"https_proxy": "http://u:p@proxy.example:3128", "no_proxy": "*"},
        {"HTTP_PROXY": "http://proxy.example:3128", "NO_PROXY": "127.0.0.1:10000"},
    ],
)
def test_proxies_are_the_ones_requests_would_use(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for url in (
        "https://acct.blob.core.windows.net/c",
        "https://acct.blob.core.usgovcloudapi.net/c",
        "http://127.0.0.1:10000/acct/c",
    ):
        scheme, _, rest = url.partition("://")
        theirs = requests.Session().merge_environment_settings(url, {}, None, None, None)
        want = requests.utils.select_proxy(url, theirs["proxies"])
        assert proxy_for(scheme, rest.split("/", 1)[0]) == want, (env, url)


@pytest.mark.parametrize(
    "conn",
    [
        "DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={k};"
        "BlobEndpoint=http://127.0.0.1:10000/acct;",
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={k};"
        "EndpointSuffix=core.chinacloudapi.cn",
        "AccountName=acct;AccountKey={k}",
        "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature=sv=1&sig=x",
    ],
)
def test_connection_strings_resolve_where_the_sdks_do(conn: str) -> None:
    text = conn.format(k=KEY)
    parsed = _connection_string(text)
    assert parsed is not None
    loc, key, sas = parsed
    client = BlobServiceClient.from_connection_string(text)
    assert loc.account_url.rstrip("/") == client.url.split("?")[0].rstrip("/")
    assert loc.account == client.account_name
    assert key == getattr(client.credential, "account_key", None)
    assert sas == (None if key else "sv=1&sig=x")


@pytest.mark.parametrize(
    "conn",
    [
        "UseDevelopmentStorage=true",
        "AccountName=acct",  # no credential: the SDK path decides
        "BlobEndpoint=https://files.example.com;AccountName=acct;AccountKey=" + KEY,  # custom
        "garbage",
    ],
)
def test_other_connection_strings_keep_the_sdk_path(conn: str) -> None:
    assert _connection_string(conn) is None


def _answer(body: bytes, piece: int = 7) -> list[bytes]:
    return [body[i : i + piece] for i in range(0, len(body), piece)]


def test_a_list_containers_answer_gives_names_and_marker() -> None:
    body = (
        b'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="x">'
        b"<Containers><Container><Name>azureml</Name><Properties><Etag>1</Etag></Properties>"
        b"</Container><Container><Name>azureml-blobstore-1</Name></Container></Containers>"
        b"<NextMarker>/acct/azureml-z</NextMarker></EnumerationResults>"
    )
    names, marker = _parse_containers(iter(_answer(body)), Where("listing the containers of"))
    assert names == ["azureml", "azureml-blobstore-1"]
    assert marker == "/acct/azureml-z"


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;">]>'
        b"<EnumerationResults><Containers><Container><Name>&b;</Name></Container>"
        b"</Containers></EnumerationResults>",
        b"<EnumerationResults><Containers><Container><Name>x</Name>",
        b"<EnumerationResults>" + b" " * (MAX_PAGE_BYTES + 1),
    ],
    ids=["entity-bomb", "malformed", "oversize"],
)
def test_a_hostile_list_containers_answer_is_a_clear_error(body: bytes) -> None:
    where = Where("listing the containers of")
    with pytest.raises(SourceError, match="not a listing answer"):
        _parse_containers(iter(_answer(body, 1 << 20)), where)


def test_the_client_never_shows_its_key_or_sas() -> None:
    loc = parse_location("https://acct.blob.core.windows.net/cont")
    policy = CountingRetry()
    client = ListClient(
        loc,
        account_key=KEY,
        sas=None,
        policy=policy,
        translator=ErrorTranslator(loc, policy, False),
    )
    assert KEY not in repr(client) and KEY not in str(vars(client).get("_loc"))
