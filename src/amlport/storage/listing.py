"""List Blobs with amlport's own parser: the SDK's pipeline, not the SDK's deserializer.

Why (docs/design/0005-obstore-data-path.md, "The listing"): ``ContainerClient.list_blobs``
spends about 1 s of client CPU per 5,000 blobs, most of it reading the answer in small pieces
and deserializing it into model objects; obstore's listing is 25 times cheaper but drops
Content-MD5 (the end-to-end check of every source read) and fails as a whole on one name it
cannot address. This module sends the same List Blobs request through the SDK client's own
pipeline (so its credential: shared key, SAS, Entra token; its ``CountingRetry`` with
``Retry-After``; its proxies and its read-only request hook all apply unchanged), reads each
page in 1 MiB pieces and parses it incrementally with ElementTree's C parser, keeping only
what amlport uses: name, size, ETag, Content-MD5 and the ``hdi_isfolder`` metadata flag.

Hostile answers are bounded: a page larger than ``MAX_PAGE_BYTES`` is refused, and so is any
markup declaration (``<!``: a DTD, an entity declaration, a comment, CDATA), which a List
Blobs answer never holds; with no DTD, no entity can expand. Names the service marks
``Encoded="true"`` (characters XML cannot carry, control characters among them) are
percent-decoded, as the SDK does.

A page whose body breaks mid-read is asked for again (same marker), counted as a retry and
backed off through the same policy; throttling and server errors are retried by the
pipeline's ``CountingRetry`` before the body is read.
"""

from __future__ import annotations

import base64
import binascii
import queue
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast
from urllib.parse import quote, unquote

from amlport.errors import AmlportError, SourceError
from amlport.storage.azure_errors import ErrorTranslator, Failure, Where, answer_failure
from amlport.storage.retry import CountingRetry

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

PAGE_SIZE = 5000  # the service's largest page: fewer round trips, one page parsed at a time
# A page of 5,000 blobs with 1,024-character names (three times longer percent-encoded) and 8 KiB of
# metadata each stays under 64 MiB; anything larger is not a List Blobs answer.
MAX_PAGE_BYTES = 128 << 20
READ_SIZE = 1 << 20
_ERROR_BODY = 64 << 10
# Pages a listing fetches and parses ahead of its reader (``ListingAhead``): with 5,000 a
# page, at most ~15,000 parsed blobs wait (two queued, one in the making).
AHEAD_PAGES = 2
_PUT_WAIT_S = 0.1  # how often a thread waiting to hand over a page looks for a stop
T = TypeVar("T")


@dataclass(frozen=True)
class Listed:
    """One blob of a listing: what amlport reads from List Blobs."""

    name: str
    size: int
    etag: str | None
    content_md5: str | None  # hex, as ``BlobInfo`` holds it
    is_folder: bool  # ``hdi_isfolder=true``: a directory marker of a hierarchical namespace


class BrokenPage(Exception):
    """The connection broke while a page's body was read: ask for the page again."""


def list_container(
    client: ContainerClient,
    policy: CountingRetry,
    translator: ErrorTranslator,
    *,
    prefix: str = "",
    metadata: bool = True,
    page_size: int = PAGE_SIZE,
    missing_ok: bool = False,
) -> Iterator[Listed]:
    """Every blob of ``client``'s container whose name starts with ``prefix``, in the
    service's order (by name), one page at a time. Errors are amlport errors; with
    ``missing_ok`` a container that does not exist lists nothing."""
    for page in list_pages(
        client,
        policy,
        translator,
        prefix=prefix,
        metadata=metadata,
        page_size=page_size,
        missing_ok=missing_ok,
    ):
        yield from page


def list_pages(
    client: ContainerClient,
    policy: CountingRetry,
    translator: ErrorTranslator,
    *,
    prefix: str = "",
    metadata: bool = True,
    page_size: int = PAGE_SIZE,
    missing_ok: bool = False,
) -> Iterator[list[Listed]]:
    """``list_container``, one page (a list, possibly empty) at a time."""
    where = Where("listing", container=client.container_name)
    marker = ""
    while True:
        items, marker = _page(
            client, policy, translator, where, prefix, marker, metadata, page_size, missing_ok
        )
        yield items
        if not marker:
            return


class ListingAhead(Generic[T]):
    """The pages of a listing, fetched and parsed on a thread of their own while the reader
    takes the ones before (docs/design/0005, "Scan and Azure re-backup (D, session 8)").

    A listing is one request per page, each answered only after the service has gathered
    the page; read on the calling thread, the caller's work on each page (and the parsing)
    waits for the network and the network for it. Here the thread starts at construction
    and keeps up to ``ahead`` pages ready; iterating yields their items in order, exactly
    what ``pages()`` yields. An error of the listing is raised to the reader where the pages
    before it end, as on the calling thread. ``close`` (also when the iteration ends, is
    abandoned, or the object is collected) stops the thread after its current page; it is a
    daemon, so an interrupted command never waits for it.
    """

    def __init__(self, pages: Callable[[], Iterable[list[T]]], *, ahead: int = AHEAD_PAGES):
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=max(1, ahead))
        self._stop = threading.Event()
        self._taken = False
        self._thread = threading.Thread(
            target=_produce,
            args=(pages, self._queue, self._stop),
            name="amlport-listing",
            daemon=True,
        )
        self._thread.start()

    def __iter__(self) -> Iterator[T]:
        if self._taken:
            raise RuntimeError("a listing read ahead is read once")
        self._taken = True
        return self._items()

    def _items(self) -> Iterator[T]:
        try:
            while True:
                kind, value = self._queue.get()
                if kind == "page":
                    yield from value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            self.close()

    def close(self) -> None:
        self._stop.set()

    def __del__(self) -> None:
        self._stop.set()


def _produce(
    pages: Callable[[], Iterable[list[Any]]],
    out: queue.Queue[tuple[str, Any]],
    stop: threading.Event,
) -> None:
    """The thread of a ``ListingAhead``: every page, then "end"; or the error that ended it.
    Holds no reference to the ``ListingAhead`` (so that collecting it stops the thread)."""

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=_PUT_WAIT_S)
            except queue.Full:
                continue
            return True
        return False

    try:
        for page in pages():
            if stop.is_set() or not put(("page", page)):
                return
    except BaseException as exc:  # the reader's to raise, as if it had listed itself
        put(("error", exc))
        return
    put(("end", None))


def _page(
    client: ContainerClient,
    policy: CountingRetry,
    translator: ErrorTranslator,
    where: Where,
    prefix: str,
    marker: str,
    metadata: bool,
    page_size: int,
    missing_ok: bool,
) -> tuple[list[Listed], str]:
    from azure.core.exceptions import AzureError

    query = f"restype=container&comp=list&maxresults={page_size}"
    if metadata:
        query += "&include=metadata"
    if prefix:
        query += "&prefix=" + quote(prefix, safe="")
    if marker:
        query += "&marker=" + quote(marker, safe="")
    base = client.url  # with the SAS of a connection string, if any
    url = f"{base}{'&' if '?' in base else '?'}{query}"
    attempt = 0
    while True:
        try:
            return _fetch(client, url, translator, where, missing_ok)
        except BrokenPage:
            if attempt >= policy.config.total:
                raise translator.translate(Failure("broken"), where) from None
        except AzureError as exc:  # the pipeline gave up (after its own retries)
            raise translator(exc, where) from None
        attempt += 1
        policy.note(None)
        delay = policy.backoff(attempt)
        if delay > 0:
            time.sleep(delay)


def _fetch(
    client: ContainerClient, url: str, translator: ErrorTranslator, where: Where, missing_ok: bool
) -> tuple[list[Listed], str]:
    from azure.core.pipeline.transport import HttpRequest

    request = HttpRequest("GET", url, headers={"x-ms-version": client.api_version})
    response = client._pipeline.run(request, stream=True).http_response
    read = False
    try:
        if response.status_code != 200:
            failure = answer_failure(int(response.status_code), response.headers)
            if missing_ok and failure.code == "ContainerNotFound":
                return [], ""
            raise translator.translate(failure, where)
        page = _parse(_body(response), where)
        read = True  # the body was read to its end: the connection went back to the pool
        return page
    finally:
        if not read:
            response.internal_response.close()  # an unread or broken body: drop the connection


def _body(response: Any) -> Iterator[bytes]:
    """The body in ``READ_SIZE`` pieces (requests' ``raw``: no 10 KiB re-chunking)."""
    raw = response.internal_response.raw
    while True:
        try:
            piece = raw.read(READ_SIZE, decode_content=True)
        except Exception as exc:  # urllib3/requests/socket errors alike: the body broke
            raise BrokenPage(type(exc).__name__) from None
        if not piece:
            return
        yield piece


def _parse(body: Iterator[bytes], where: Where) -> tuple[list[Listed], str]:
    """The blobs of one List Blobs page and its ``NextMarker`` ("" on the last page).

    Metadata are elements named by their keys, and ``Blob``, ``NextMarker`` or ``Name`` are
    legal keys: a ``Blob`` is a blob only with children (a metadata value is text), and the
    marker is the root's own ``NextMarker`` child, never one inside a blob."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    page = _Page(where)
    try:
        for piece in bounded(body, where):
            parser.feed(piece)
            page.read(cast(Iterator[tuple[str, ET.Element]], parser.read_events()))
        parser.close()
        page.read(cast(Iterator[tuple[str, ET.Element]], parser.read_events()))
    except ET.ParseError:
        raise _refused(where, "malformed XML") from None
    if page.loose:  # a childless Blob outside any Metadata
        raise _refused(where, "a blob without a name or properties")
    root = page.last
    return page.items, (root.findtext("NextMarker") or "") if root is not None else ""


def bounded(body: Iterable[bytes], where: Where) -> Iterator[bytes]:
    """``body`` as it is, refused past ``MAX_PAGE_BYTES`` or at any markup declaration
    (``<!``: DTD, entity, comment, CDATA), which no storage listing answer holds: with no
    DTD no entity can expand. Every listing answer amlport parses is fed through here."""
    total, last = 0, b""
    for piece in body:
        total += len(piece)
        if total > MAX_PAGE_BYTES:
            raise _refused(where, f"a page larger than {MAX_PAGE_BYTES >> 20} MiB")
        if b"<!" in last + piece[:1] or b"<!" in piece:
            raise _refused(where, "a markup declaration (DTD, entity, comment)")
        last = piece[-1:]
        yield piece


class _Page:
    """What the "end" events of one page give (the last one is the root's)."""

    def __init__(self, where: Where) -> None:
        self.where = where
        self.items: list[Listed] = []
        self.loose: list[ET.Element] = []  # childless ``Blob`` elements not yet in a Metadata
        self.last: ET.Element | None = None

    def read(self, events: Iterator[tuple[str, ET.Element]]) -> None:
        element = None
        for _, element in events:
            tag = element.tag
            if tag == "Blob":
                if not len(element):  # a metadata key "Blob", if a Metadata holds it
                    self.loose.append(element)
                    continue
                if self.loose:
                    raise _refused(self.where, "a blob without a name or properties")
                self.items.append(_blob(element, self.where))
                element.clear()
            elif tag == "Metadata" and self.loose:
                self.loose = [e for e in self.loose if not any(e is c for c in element)]
        if element is not None:
            self.last = element


def _blob(element: ET.Element, where: Where) -> Listed:
    name_el = element.find("Name")
    props = element.find("Properties")
    if name_el is None or props is None:
        raise _refused(where, "a blob without a name or properties")
    name = name_el.text or ""
    if name_el.get("Encoded") == "true":
        name = unquote(name)
    try:
        size = int(props.findtext("Content-Length") or 0)
    except ValueError:
        raise _refused(where, "a size that is not a number") from None
    md5_text = props.findtext("Content-MD5")
    md5: str | None = None
    if md5_text:
        try:
            md5 = base64.b64decode(md5_text, validate=True).hex()
        except (binascii.Error, ValueError):
            raise _refused(where, "a Content-MD5 that is not base64") from None
    folder = False
    for metadata in element.findall("Metadata"):  # ElementTree's C path, not ElementPath's
        flag = metadata.findtext("hdi_isfolder")
        if flag is not None:
            folder = flag == "true"
            break
    return Listed(name, size, props.findtext("Etag"), md5, folder)


def _refused(where: Where, what: str) -> AmlportError:
    obj = f"container {where.container}" if where.container else "the account"
    return SourceError(
        f"{where.action} {obj}: the storage answer holds {what}; it is not a listing answer",
        hint="check the endpoint URL (a proxy or another service answered)",
    )
