"""The source's listing (storage/listing.py) on Azurite: the SDK's pipeline, amlport's parser.

What it must keep from the SDK's ``list_blobs`` it replaced: every legal name exactly (control
characters, markup, ``..``, empty segments, 1,024 characters), size, ETag and Content-MD5
byte for byte, paging (a marker after a hostile name), every credential form, and the retry
rules (a page whose body breaks is asked for again and counted; throttling is retried by the
pipeline). Hostile answers (DTD, oversize, malformed) are tests/unit/test_storage_listing.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from helpers import azurite as az
from helpers.rel_proxy import Fault, FaultProxy

from amlport.errors import SourceNotFound, TransientStorageError
from amlport.storage.auth import StorageAuth
from amlport.storage.azure import LISTINGS_AHEAD, AzureSource, open_azure_source
from amlport.storage.base import BlobInfo
from amlport.storage.listing import list_container
from amlport.storage.retry import FAST_RETRY

pytestmark = pytest.mark.azurite

HOSTILE = az.HOSTILE_BLOB_NAMES


@pytest.fixture(scope="module")
def hostile(azurite: az.Azurite) -> Iterator[tuple[az.AzuriteAccount, str]]:
    container = f"lst-{uuid.uuid4().hex[:8]}"
    admin = azurite.source.service_client()
    client = admin.create_container(container)
    for i, name in enumerate(HOSTILE):
        # Metadata keys named like the answer's elements (a key "Blob" failed the listing).
        meta = dict.fromkeys(("Blob", "NextMarker", "Name", "Blobs", "Metadata"), "m")
        client.upload_blob(name, f"blob {i}".encode() * (i + 1), metadata=meta if i % 2 else None)
    client.upload_blob("dir", b"", metadata={"hdi_isfolder": "true"})  # an HNS folder marker
    try:
        yield azurite.source, container
    finally:
        client.delete_container()  # control characters in names upset later account listings
        admin.close()


def _sdk_listing(account: az.AzuriteAccount, container: str) -> list[BlobInfo]:
    admin = account.service_client()
    try:
        client = admin.get_container_client(container)
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
            for p in client.list_blobs(include=["metadata"])
            if (p.metadata or {}).get("hdi_isfolder") != "true"
        ]
    finally:
        admin.close()


def _direct(account: az.AzuriteAccount, container: str) -> AzureSource:
    """The container read straight from Azurite (connection string)."""
    return open_azure_source(
        f"{account.url}/{container}", auth=StorageAuth(connection_string=account.connection_string)
    )


def test_hostile_names_round_trip_with_md5_and_etag(
    hostile: tuple[az.AzuriteAccount, str],
) -> None:
    account, container = hostile
    expected = _sdk_listing(account, container)
    assert {b.name for b in expected} == set(HOSTILE)  # Azurite kept every name
    assert all(b.content_md5 for b in expected)
    source = _direct(account, container)
    try:
        assert list(source.list_blobs()) == expected  # the folder marker is left out
        assert source.retry_count == 0
    finally:
        source.close()


def test_a_listing_started_early_is_the_listing_and_ends_with_the_source(
    hostile: tuple[az.AzuriteAccount, str],
) -> None:
    """``start_listing`` (a backup lists while it opens its repository): the next
    ``list_blobs`` is that listing, hostile names and all; one never read stops when the
    source closes."""
    account, container = hostile
    expected = _sdk_listing(account, container)
    source = _direct(account, container)
    try:
        source.start_listing()
        source.start_listing()  # once: the second call starts nothing more
        assert source._listing is not None and len(source._listing) == 1
        assert list(source.list_blobs()) == expected
        source.start_listing()  # the next listing, never read
        threads = [listing._thread for listing in source._listing or ()]
        assert threads
    finally:
        source.close()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_many_containers_are_listed_in_order_a_few_at_a_time(azurite: az.Azurite) -> None:
    """Each container's listing holds pages ahead of its reader: a source of many containers
    lists at most ``LISTINGS_AHEAD`` of them at once (all at once held every container's
    pages), and still yields them in order, each whole."""
    account = azurite.source
    admin = account.service_client()
    tag = uuid.uuid4().hex[:8]
    names = [f"many-{tag}-{i:02d}" for i in range(2 * LISTINGS_AHEAD + 1)]
    try:
        for i, container in enumerate(names):
            client = admin.create_container(container)
            client.upload_blob(f"b[{i}]/..x", b"x" * (i + 1))
            client.upload_blob("L" * 1024, b"y")
        expected = [blob for c in names for blob in _sdk_listing(account, c)]
        source = _direct(account, names[0])
        source._present = tuple(names)  # the containers an account-wide source would list
        started: list[object] = []
        real = source._ahead

        def ahead(container: str) -> object:
            started.append(container)
            return real(container)

        source._ahead = ahead  # type: ignore[method-assign,assignment]
        got, most = [], 0
        try:
            for blob in source.list_blobs():
                got.append(blob)
                done = len({b.container for b in got}) - 1  # containers read to their end
                most = max(most, len(started) - done)
        finally:
            source.close()
        assert got == expected
        assert started == names  # each listed once, in order
        assert most <= LISTINGS_AHEAD  # a container starts only as one before it ends
    finally:
        for container in names:
            admin.delete_container(container)
        admin.close()


def test_pages_of_one_resume_after_every_hostile_name(
    hostile: tuple[az.AzuriteAccount, str],
) -> None:
    account, container = hostile
    expected = [b.name for b in _sdk_listing(account, container)]
    source = _direct(account, container)
    try:
        client = source.blob_service_client.get_container_client(container)
        listed = list_container(client, source._retry, source._translate, page_size=1)
        assert [b.name for b in listed if not b.is_folder] == expected
        under = list_container(client, source._retry, source._translate, prefix="a/", page_size=2)
        assert [b.name for b in under] == [n for n in expected if n.startswith("a/")]
    finally:
        source.close()


def _auths(account: az.AzuriteAccount, container: str) -> dict[str, tuple[str, StorageAuth]]:
    url = f"{account.url}/{container}"
    container_sas = az.read_list_container_sas(account, container)
    account_sas = az.read_list_account_sas(account)
    sas_conn = f"BlobEndpoint={account.url};SharedAccessSignature={account_sas}"
    return {
        "connection string": (url, StorageAuth(connection_string=account.connection_string)),
        "account key": (url, StorageAuth(account_key=account.key)),
        "container SAS in the URL": (f"{url}?{container_sas}", StorageAuth()),
        "account SAS option": (url, StorageAuth(sas_token=account_sas)),
        "connection string with a SAS": (url, StorageAuth(connection_string=sas_conn)),
    }


@pytest.mark.parametrize(
    "form",
    [
        "connection string",
        "account key",
        "container SAS in the URL",
        "account SAS option",
        "connection string with a SAS",
    ],
)
def test_every_credential_form_lists(hostile: tuple[az.AzuriteAccount, str], form: str) -> None:
    account, container = hostile
    url, auth = _auths(account, container)[form]
    source = open_azure_source(url, auth=auth)
    try:
        assert [b.name for b in source.list_blobs()] == [
            b.name for b in _sdk_listing(account, container)
        ]
    finally:
        source.close()


def _through(proxy: FaultProxy, account: az.AzuriteAccount, container: str) -> AzureSource:
    """The container read through ``proxy`` (key auth, the fast retry policy)."""
    return open_azure_source(
        f"{proxy.endpoint}/{account.name}/{container}",
        auth=StorageAuth(account_key=account.key),
        retry=FAST_RETRY,
    )


def test_a_listing_whose_body_breaks_is_asked_again_and_counted(
    azurite: az.Azurite, hostile: tuple[az.AzuriteAccount, str]
) -> None:
    account, container = hostile
    listing_path = f"/{account.name}/{container}"

    def rule(method: str, path: str, seen: int) -> Fault | None:
        if method == "GET" and path == listing_path and seen in (1, 2):
            return Fault(cut=True) if seen == 1 else Fault(status=503, retry_after="0")
        return None

    with FaultProxy(azurite.port, rule) as proxy:
        source = _through(proxy, account, container)
        try:  # seen 0 is the probe; 1 breaks mid-body, 2 is throttled, 3 answers
            assert [b.name for b in source.list_blobs()] == [
                b.name for b in _sdk_listing(account, container)
            ]
            assert source.retry_count == 2
            assert [what for _, _, what in proxy.injected] == ["cut", 503]
        finally:
            source.close()


def test_a_listing_that_keeps_breaking_is_a_transient_error(
    azurite: az.Azurite, hostile: tuple[az.AzuriteAccount, str]
) -> None:
    account, container = hostile
    listing_path = f"/{account.name}/{container}"

    def rule(method: str, path: str, seen: int) -> Fault | None:
        return Fault(cut=True) if method == "GET" and path == listing_path and seen else None

    with FaultProxy(azurite.port, rule) as proxy:
        source = _through(proxy, account, container)
        try:
            with pytest.raises(TransientStorageError, match="connection broke listing"):
                list(source.list_blobs())
            assert source.retry_count == FAST_RETRY.total
        finally:
            source.close()


def test_a_container_deleted_after_the_probe_is_not_found(azurite: az.Azurite) -> None:
    admin = azurite.source.service_client()
    container = f"gone-{uuid.uuid4().hex[:8]}"
    admin.create_container(container)
    source = open_azure_source(
        f"{azurite.source.url}/{container}",
        auth=StorageAuth(connection_string=azurite.source.connection_string),
    )
    try:
        admin.delete_container(container)
        with pytest.raises(SourceNotFound, match=f"container {container} not found"):
            list(source.list_blobs())
    finally:
        source.close()
        admin.close()
