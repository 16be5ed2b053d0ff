"""amlport's own listing client (storage/azure_list.py) on Azurite: List Containers and List
Blobs without the SDK, for the account key, a connection string, a SAS and anonymous access.

What it must give is the SDK's listing exactly (names the service encodes, ``[``, ``]``,
``..``, 1,024 characters; size, ETag, Content-MD5; pages resumed after every hostile name),
through the environment's proxy, with the same errors and exit codes; and a keyed re-backup's
first request must leave before ``azure.storage.blob`` is imported.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import PublicAccess
from helpers import azurite as az
from helpers.cliutil import amlport
from helpers.relay import Relay

from amlport.errors import AccessDenied
from amlport.storage.auth import StorageAuth
from amlport.storage.azure import open_azure_source
from amlport.storage.base import BlobInfo

pytestmark = pytest.mark.azurite

HOSTILE = az.HOSTILE_BLOB_NAMES


@pytest.fixture(scope="module")
def hostile(azurite: az.Azurite) -> Iterator[tuple[az.AzuriteAccount, str]]:
    """A container of hostile names, readable anonymously (public access ``container``)."""
    container = f"own-{uuid.uuid4().hex[:8]}"
    admin = azurite.source.service_client()
    client = admin.create_container(container, public_access=PublicAccess.CONTAINER)
    for i, name in enumerate(HOSTILE):
        meta = dict.fromkeys(("Blob", "NextMarker", "Name"), "m") if i % 2 else None
        client.upload_blob(name, f"blob {i}".encode() * (i + 1), metadata=meta)
    client.upload_blob("dir", b"", metadata={"hdi_isfolder": "true"})
    try:
        yield azurite.source, container
    finally:
        client.delete_container()
        admin.close()


def _sdk_listing(account: az.AzuriteAccount, container: str) -> list[BlobInfo]:
    admin = account.service_client()
    try:
        return [
            BlobInfo(
                container,
                p.name,
                p.size,
                p.etag,
                bytes(p.content_settings.content_md5).hex()
                if p.content_settings.content_md5
                else None,
            )
            for p in admin.get_container_client(container).list_blobs(include=["metadata"])
            if (p.metadata or {}).get("hdi_isfolder") != "true"
        ]
    finally:
        admin.close()


def _forms(account: az.AzuriteAccount, container: str) -> dict[str, tuple[str, StorageAuth]]:
    url = f"{account.url}/{container}"
    account_sas = az.read_list_account_sas(account)
    return {
        "account key": (url, StorageAuth(account_key=account.key)),
        "connection string": (url, StorageAuth(connection_string=account.connection_string)),
        "container SAS in the URL": (
            f"{url}?{az.read_list_container_sas(account, container)}",
            StorageAuth(),
        ),
        "account SAS option": (url, StorageAuth(sas_token=account_sas)),
        "connection string with a SAS": (
            url,
            StorageAuth(
                connection_string=f"BlobEndpoint={account.url};SharedAccessSignature={account_sas}"
            ),
        ),
        "anonymous": (url, StorageAuth()),
    }


FORMS = [
    "account key",
    "connection string",
    "container SAS in the URL",
    "account SAS option",
    "connection string with a SAS",
    "anonymous",
]


@pytest.mark.parametrize("form", FORMS)
def test_every_form_lists_without_the_sdk_what_the_sdk_lists(
    hostile: tuple[az.AzuriteAccount, str], form: str
) -> None:
    account, container = hostile
    url, auth = _forms(account, container)[form]
    expected = _sdk_listing(account, container)
    assert {b.name for b in expected} == set(HOSTILE)
    source = open_azure_source(url, auth=auth)
    try:
        assert source._lister is not None  # amlport's own client lists
        assert list(source.list_blobs()) == expected  # names, sizes, ETags, MD5s, order
        assert source._sdk is None  # and no SDK client was needed for it
        assert source.retry_count == 0
    finally:
        source.close()


def test_an_entra_identity_keeps_the_sdks_pipeline(
    hostile: tuple[az.AzuriteAccount, str],
) -> None:
    from amlport.storage.azure_list import own_listing
    from amlport.storage.azure_location import parse_location
    from amlport.storage.retry import CountingRetry

    loc = parse_location("https://acct.blob.core.windows.net/cont")
    assert own_listing(loc, StorageAuth(use_default_credential=True), CountingRetry()) is None


@pytest.mark.parametrize("form", ["account key", "container SAS in the URL", "anonymous"])
def test_pages_of_one_resume_after_every_hostile_name(
    hostile: tuple[az.AzuriteAccount, str], form: str
) -> None:
    account, container = hostile
    url, auth = _forms(account, container)[form]
    expected = [b.name for b in _sdk_listing(account, container)]
    source = open_azure_source(url, auth=auth)
    try:
        assert source._lister is not None
        pages = list(source._lister.pages(container, page_size=1))
        assert len(pages) == len(expected) + 1  # the folder marker is a page too
        names = [b.name for page in pages for b in page if not b.is_folder]
        assert names == expected
        under = [
            b.name for p in source._lister.pages(container, prefix="a/", page_size=2) for b in p
        ]
        assert under == [n for n in expected if n.startswith("a/")]
    finally:
        source.close()


def test_the_accounts_containers_are_listed_across_pages(azurite: az.Azurite) -> None:
    account = azurite.source
    admin = account.service_client()
    names = [f"pg-{uuid.uuid4().hex[:6]}-{i}" for i in range(5)]
    for name in names:
        admin.create_container(name)
    source = open_azure_source(
        f"{account.url}/{names[0]}", auth=StorageAuth(account_key=account.key)
    )
    try:
        assert source._lister is not None
        expected = [c.name for c in admin.list_containers()]
        assert source._lister.list_containers(page_size=2) == expected
        assert set(names) <= set(expected)
    finally:
        source.close()
        for name in names:
            admin.delete_container(name)
        admin.close()


@pytest.mark.parametrize("form", ["key", "sas"])
def test_a_wrong_credential_exits_as_before_without_the_secret(
    hostile: tuple[az.AzuriteAccount, str], form: str
) -> None:
    account, container = hostile
    url = f"{account.url}/{container}"
    private = f"own-priv-{uuid.uuid4().hex[:6]}"  # not public: a wrong credential is refused
    admin = account.service_client()
    admin.create_container(private)
    try:
        bad_key = az.new_account_key()
        sas = az.read_list_container_sas(account, container)  # for another container
        secret = bad_key if form == "key" else sas.split("sig=")[1].split("&")[0]
        args = ["--account-key", bad_key] if form == "key" else ["--sas-token", sas]
        url = f"{account.url}/{private}"
        with pytest.raises(AccessDenied) as info:
            auth = StorageAuth(account_key=bad_key) if form == "key" else StorageAuth(sas_token=sas)
            open_azure_source(url, auth=auth).close()
        assert secret not in str(info.value) and secret not in repr(info.value)
        res = amlport("scan", url, *args)
        assert res.returncode == int(AccessDenied("x").exit_code) != 0
        assert "access denied" in res.stderr
        assert secret not in res.stdout + res.stderr
    finally:
        admin.delete_container(private)
        admin.close()


def test_the_listing_goes_through_the_environments_proxy(
    azurite: az.Azurite, hostile: tuple[az.AzuriteAccount, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    account, container = hostile
    proxy = Relay(azurite.port)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.endpoint)
    monkeypatch.setenv("http_proxy", proxy.endpoint)
    try:
        source = open_azure_source(
            f"{account.url}/{container}", auth=StorageAuth(account_key=account.key)
        )
        try:
            assert list(source.list_blobs()) == _sdk_listing(account, container)
        finally:
            source.close()
        assert ("GET", f"/{account.name}/{container}") in [s[:2] for s in proxy.seen]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        seen = len(proxy.seen)
        source = open_azure_source(
            f"{account.url}/{container}", auth=StorageAuth(account_key=account.key)
        )
        try:
            assert len(list(source.list_blobs())) == len(HOSTILE)
        finally:
            source.close()
        assert len(proxy.seen) == seen  # NO_PROXY: straight to the service
    finally:
        proxy.close()


_FIRST_REQUEST = """
import runpy, socket, sys
port = {port}
seen = []
real = socket.socket.connect
def connect(self, address):
    if not seen and isinstance(address, tuple) and address[1] == port:
        seen.append('azure.storage.blob' in sys.modules)
    return real(self, address)
socket.socket.connect = connect
sys.argv = {argv!r}
try:
    runpy.run_module('amlport', run_name='__main__')
except SystemExit as exc:
    print('EXIT', exc.code)
print('SDK AT FIRST REQUEST', seen)
print('SDK AT THE END', 'azure.storage.blob' in sys.modules)
"""


def test_a_keyed_re_backup_sends_its_first_request_before_the_sdk_loads(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace], tmp_path: Path
) -> None:
    ws = azurite_workspaces[sorted(azurite_workspaces)[0]]
    repo = tmp_path / "repo [x] .."
    argv = ["amlport", "backup", ws.url, "--repo", str(repo), "--account-key", ws.account.key]
    code = _FIRST_REQUEST.format(port=azurite.port, argv=argv)
    outs = []
    for _ in range(2):  # a first backup, then the unchanged re-backup
        res = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=False
        )
        assert ws.account.key not in res.stdout + res.stderr
        assert res.stdout.splitlines()[-3:][0] in ("EXIT 0", "EXIT 1"), res.stderr[-2000:]
        outs.append(res.stdout.splitlines()[-3:])
    for out in outs:  # done (1: the workspace's own warnings, as a local backup gives them)
        assert out[0] == outs[0][0]
        assert out[1] == "SDK AT FIRST REQUEST [False]"
    assert outs[1][2] == "SDK AT THE END False"  # an unchanged re-backup never needs it
