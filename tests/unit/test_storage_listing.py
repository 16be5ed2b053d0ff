"""The List Blobs parser of storage/listing.py against hostile and odd answers (pure logic;
tests/integration/test_azure_listing.py drives it on Azurite)."""

from __future__ import annotations

import base64
import hashlib
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers.armreplay import FixedToken, _self_signed

import amlport.storage.azure_location as azure_location
import amlport.storage.listing as listing
from amlport.errors import SourceError
from amlport.storage.auth import StorageAuth
from amlport.storage.azure import open_azure_source
from amlport.storage.azure_errors import Where

WHERE = Where("listing", container="c")
MD5 = hashlib.md5(b"x").digest()


def _page(blobs: str, marker: str = "") -> bytes:
    return (
        '<?xml version="1.0" encoding="utf-8"?><EnumerationResults ContainerName="c">'
        f"<Blobs>{blobs}</Blobs><NextMarker>{marker}</NextMarker></EnumerationResults>"
    ).encode()


def _blob(name: str, *, encoded: bool = False, md5: str = "", meta: str = "") -> str:
    attr = ' Encoded="true"' if encoded else ""
    return (
        f"<Blob><Name{attr}>{name}</Name><Properties><Content-Length>5</Content-Length>"
        f"<Etag>0x8D1</Etag><Content-MD5>{md5}</Content-MD5><BlobType>BlockBlob</BlobType>"
        "</Properties>"
        f"<Metadata>{meta}</Metadata></Blob>"
    )


def _pieces(data: bytes, size: int) -> Iterator[bytes]:
    return (data[i : i + size] for i in range(0, len(data), size))


@pytest.mark.parametrize("piece", [1, 7, 1 << 20])
def test_a_page_parses_the_same_whatever_the_pieces(piece: int) -> None:
    b64 = base64.b64encode(MD5).decode()
    page = _page(
        _blob("a/b.txt", md5=b64)
        + _blob("tab%09x%7F", encoded=True)
        + _blob("[x]/..y &amp; &lt;z&gt;")
        + _blob("d", meta="<hdi_isfolder>true</hdi_isfolder>")
        + _blob("L" * 1024),
        marker="2!24!bWFya2Vy",
    )
    items, marker = listing._parse(_pieces(page, piece), WHERE)
    assert marker == "2!24!bWFya2Vy"
    assert [i.name for i in items] == ["a/b.txt", "tab\tx\x7f", "[x]/..y & <z>", "d", "L" * 1024]
    assert items[0].content_md5 == MD5.hex() and items[1].content_md5 is None
    assert [i.is_folder for i in items] == [False, False, False, True, False]
    assert items[0].size == 5 and items[0].etag == "0x8D1"


BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa">'
    b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
    b"<EnumerationResults><Blobs><Blob><Name>&b;</Name></Blob></Blobs></EnumerationResults>"
)


@pytest.mark.parametrize(
    ("body", "what"),
    [
        (BILLION_LAUGHS, "markup declaration"),
        (_page(_blob("x")).replace(b"<Blobs>", b"<Blobs><!-- hi -->"), "markup declaration"),
        (_page(_blob("x")).replace(b"<Name>x", b"<Name><![CDATA[x]]>"), "markup declaration"),
        (_page(_blob("x"))[:-10], "malformed XML"),
        (b"<html>not storage", "malformed XML"),
        (_page("<Blob><Properties/></Blob>"), "without a name"),
        (_page(_blob("x").replace(">5<", ">five<")), "not a number"),
        (_page(_blob("x", md5="!!not-base64!!")), "not base64"),
    ],
)
def test_hostile_answers_are_refused(body: bytes, what: str) -> None:
    for piece in (1, len(body)):  # "<!" split across two pieces is caught too
        with pytest.raises(SourceError, match=what):
            listing._parse(_pieces(body, piece), WHERE)


# Metadata are elements named by their keys; these names are legal keys (C# identifiers).
METADATA_NAMED_LIKE_THE_ANSWER = (
    "<Blob>v</Blob><NextMarker>2!8!bWV0YQ</NextMarker><Name>n</Name><Blobs>b</Blobs>"
    "<Properties>p</Properties><Metadata>m</Metadata><hdi_isfolder>false</hdi_isfolder>"
)


@pytest.mark.parametrize("piece", [1, 5, 1 << 20])
@pytest.mark.parametrize("marker", ["", "2!24!bWFya2Vy"])
def test_metadata_keys_named_like_the_answer_are_metadata(piece: int, marker: str) -> None:
    """A blob whose metadata has a key ``Blob`` made the whole listing a SourceError, and a
    key ``NextMarker`` could stand for the page's marker (the parser took every element of
    those names, at any depth)."""
    page = _page(
        _blob("[a]/..b", meta=METADATA_NAMED_LIKE_THE_ANSWER)
        + _blob("c", meta="<Blob>w</Blob><hdi_isfolder>true</hdi_isfolder>")
        + _blob("d"),
        marker=marker,
    )
    items, got = listing._parse(_pieces(page, piece), WHERE)
    assert got == marker
    assert [(i.name, i.size, i.is_folder) for i in items] == [
        ("[a]/..b", 5, False),
        ("c", 5, True),
        ("d", 5, False),
    ]


def test_a_marker_inside_a_blob_is_not_the_pages() -> None:
    """Without the root's own NextMarker (the service always sends one) the page is the
    last: a metadata key of that name inside a blob does not continue the listing."""
    page = _page(_blob("x", meta="<NextMarker>2!8!bWV0YQ</NextMarker>")).replace(
        b"<NextMarker></NextMarker></EnumerationResults>", b"</EnumerationResults>"
    )
    assert b"</Blobs></EnumerationResults>" in page
    items, marker = listing._parse(_pieces(page, 3), WHERE)
    assert [i.name for i in items] == ["x"] and marker == ""


@pytest.mark.parametrize(
    "blobs",
    [
        "<Blob/>" + _blob("x"),  # a childless Blob in the list itself: not metadata
        _blob("x") + "<Blob>text</Blob>",
        _blob("x").replace("<Metadata>", "<Metadata><Blob>v</Blob></Metadata><Blob/><Metadata>"),
    ],
)
def test_a_childless_blob_outside_metadata_is_refused(blobs: str) -> None:
    body = _page(blobs)
    for piece in (1, len(body)):
        with pytest.raises(SourceError, match="without a name"):
            listing._parse(_pieces(body, piece), WHERE)


def test_the_folder_flag_is_the_first_metadata_that_has_one() -> None:
    """As ElementPath's ``Metadata/hdi_isfolder`` (the expression before): the first Metadata
    holding the key decides; another key, an empty value or "True" is not a folder."""
    two = "<Metadata><k>v</k></Metadata><Metadata><hdi_isfolder>true</hdi_isfolder></Metadata>"
    cases = [
        (_blob("a").replace("<Metadata></Metadata>", two), True),
        (_blob("b", meta="<hdi_isfolder>True</hdi_isfolder>"), False),
        (_blob("c", meta="<hdi_isfolder></hdi_isfolder>"), False),
        (_blob("d", meta="<x><hdi_isfolder>true</hdi_isfolder></x>"), False),
        (_blob("e").replace("<Metadata></Metadata>", ""), False),
    ]
    items, _ = listing._parse(_pieces(_page("".join(b for b, _ in cases)), 4), WHERE)
    assert [i.is_folder for i in items] == [folder for _, folder in cases]


def test_a_page_larger_than_the_bound_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "MAX_PAGE_BYTES", 1000)
    body = _page("".join(_blob(f"n{i}") for i in range(100)))
    with pytest.raises(SourceError, match="larger than"):
        listing._parse(_pieces(body, 64), WHERE)


# --- an Entra token: the listing rides the SDK's bearer-token policy -----------------------


def test_an_entra_token_signs_the_listing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Azurite over http cannot check a token: a local TLS server records what is sent."""
    cert, key = _self_signed(tmp_path)
    page = _page(_blob("a/b.txt", md5=base64.b64encode(MD5).decode()))
    seen: list[tuple[str, str | None]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            self.send_response(200)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            pass

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    monkeypatch.setattr(azure_location, "default_credential", lambda loc: FixedToken())
    url = f"https://127.0.0.1:{httpd.server_address[1]}/acct/cont"
    try:
        source = open_azure_source(url, auth=StorageAuth(use_default_credential=True))
        try:
            listed = [b for b in source.list_blobs() if b.container == "cont"]
            assert [(b.name, b.content_md5) for b in listed] == [("a/b.txt", MD5.hex())]
        finally:
            source.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
    listing_calls = [(p, a) for p, a in seen if "comp=list" in p and "maxresults=5000" in p]
    assert listing_calls and all((a or "").startswith("Bearer ") for _, a in listing_calls)


# --- ListingAhead: pages fetched on a thread of their own (docs/design/0005, "Scan and Azure
# re-backup (D, session 8)") ---------------------------------------------------------------

HOSTILE_NAMES = ["x[/]y", "[bold]", "a..b/../c", "tab\there", "cr\rlf\n", "del\x7f\x85", "L" * 1024]


def _listing_thread(ahead: listing.ListingAhead[str]) -> threading.Thread:
    return ahead._thread


def test_a_listing_read_ahead_yields_every_page_in_order() -> None:
    pages = [HOSTILE_NAMES[:3], [], HOSTILE_NAMES[3:], [], ["last"]]
    ahead = listing.ListingAhead(lambda: iter(pages), ahead=1)
    assert list(ahead) == [n for page in pages for n in page]
    _listing_thread(ahead).join(10)
    assert not _listing_thread(ahead).is_alive()


def test_a_listing_error_is_raised_where_its_pages_end() -> None:
    error = SourceError("listing container c: HTTP 503")

    def pages() -> Iterator[list[str]]:
        yield HOSTILE_NAMES[:2]
        yield HOSTILE_NAMES[2:]
        raise error

    got: list[str] = []
    with pytest.raises(SourceError) as raised:
        for name in listing.ListingAhead(pages):
            got.append(name)
    assert raised.value is error  # the listing's own error, not a wrapper
    assert got == HOSTILE_NAMES  # every blob listed before it


def test_an_abandoned_listing_stops_its_thread() -> None:
    made: list[int] = []

    def endless() -> Iterator[list[str]]:
        n = 0
        while True:
            made.append(n)
            yield [f"{n}[..]\x00{i}" for i in range(3)]
            n += 1

    ahead = listing.ListingAhead(endless, ahead=2)
    items = iter(ahead)
    assert [next(items) for _ in range(4)] == [
        "0[..]\x000",
        "0[..]\x001",
        "0[..]\x002",
        "1[..]\x000",
    ]
    items.close()  # the reader gives up (an error, Ctrl-C)
    _listing_thread(ahead).join(10)
    assert not _listing_thread(ahead).is_alive()
    assert len(made) <= 2 + 3  # read, queued (2), in the making: nothing listed past that


def test_a_listing_started_and_never_read_stops_when_closed_or_collected() -> None:
    def endless() -> Iterator[list[str]]:
        while True:
            yield ["a"]

    closed = listing.ListingAhead(endless)
    closed.close()
    thread = _listing_thread(closed)
    thread.join(10)
    assert not thread.is_alive()
    collected = listing.ListingAhead(endless)
    thread = _listing_thread(collected)
    del collected  # no reference left: the thread holds none either
    thread.join(10)
    assert not thread.is_alive()


def test_a_listing_read_ahead_is_read_once() -> None:
    ahead = listing.ListingAhead(lambda: iter([["a"]]))
    assert list(ahead) == ["a"]
    with pytest.raises(RuntimeError, match="read once"):
        iter(ahead)
