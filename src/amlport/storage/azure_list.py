"""amlport's own client for two storage calls: List Containers and List Blobs.

Why (docs/design/0005, "Own listing client (A, session 10)"): an unchanged re-backup is a
listing, and loading azure-storage-blob with azure-core and requests (about a quarter of the
re-backup's CPU) held back its first request. For the credentials that need no SDK (an
account key: Shared Key; a SAS: a query string; anonymous access) these two calls go through
the standard library alone, and the SDK loads only when something else needs it (reads of
names obstore cannot address, signing, the audit's properties, the throttle probe). An Entra
identity (``--credential default``) keeps the SDK's pipeline (``listing.py``).

Read-only by construction: the client sends GET and nothing else (``_send`` has no method
parameter). The rules are the SDK path's: the same ``CountingRetry`` (408, 429, 5xx and
broken connections retried with its backoff or ``Retry-After``, each counted; a DNS failure
never; a refused connection ``connect_total`` times), the same ``Failure``s translated by the
same ``ErrorTranslator``, the same bounded parser (``listing._parse``: page size bound, no
markup declarations, ``Encoded`` names decoded). Proxies and CA bundle are taken from the
environment as requests takes them (``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``,
``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``, else certifi's bundle).

Shared Key is signed exactly as azure-storage-blob's ``SharedKeyCredentialPolicy`` signs a
GET without a body (``string_to_sign``; a unit test compares the two byte for byte). No
message, log record or exception built here holds the key, the signature or the SAS: errors
name the account and container only, and the request URL is never part of one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import socket
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any, cast
from urllib.parse import quote, unquote, urlsplit

from amlport.errors import AmlportError
from amlport.storage.azure_errors import ErrorTranslator, Failure, Where, answer_failure
from amlport.storage.azure_location import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, AzureLocation
from amlport.storage.listing import (
    PAGE_SIZE,
    READ_SIZE,
    BrokenPage,
    Listed,
    _parse,
    _refused,
    bounded,
)
from amlport.storage.retry import RETRIED_STATUSES, CountingRetry, retry_after_seconds

# The service version azure-storage-blob sends by default (``_SUPPORTED_API_VERSIONS[-1]``;
# tests/unit/test_azure_list_signing.py checks they agree), so both clients see one service.
API_VERSION = "2026-10-06"
USER_AGENT = "amlport"
# The headers Shared Key signs by position (empty when absent), in the SDK's order.
_SIGNED_HEADERS = (
    "content-encoding",
    "content-language",
    "content-length",
    "content-md5",
    "content-type",
    "date",
    "if-modified-since",
    "if-match",
    "if-none-match",
    "if-unmodified-since",
    "byte_range",
)


# --- Shared Key ------------------------------------------------------------------------------


def string_to_sign(account: str, url: str, headers: dict[str, str]) -> str:
    """The Shared Key string of a GET of ``url`` with ``headers`` (the SDK's, byte for byte):
    verb, the standard headers by position, the ``x-ms-`` headers sorted, then the
    canonical resource (``/account`` + the URL's path as sent) and each query parameter
    (lowercased name, decoded value) in sorted order."""
    lower = {k.lower(): v for k, v in headers.items() if v}
    if lower.get("content-length") == "0":
        del lower["content-length"]
    parts = ["GET\n", "\n".join(lower.get(h, "") for h in _SIGNED_HEADERS), "\n"]
    x_ms = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-ms-"))
    parts.extend(f"{name}:{value}\n" for name, value in x_ms)
    split = urlsplit(url)
    parts.append(f"/{account}{split.path}")
    query = sorted(_query_pairs(split.query))
    parts.extend(f"\n{name.lower()}:{unquote(value)}" for name, value in query)
    return "".join(parts)


def _query_pairs(query: str) -> list[tuple[str, str]]:
    """The query's (name, value) pairs as azure-core's ``HttpRequest.query`` holds them."""
    pairs = []
    for part in query.split("&"):
        if part:
            name, _, value = part.partition("=")
            pairs.append((name, value))
    return pairs


def shared_key(account: str, key: str, to_sign: str) -> str:
    """The ``Authorization`` header: HMAC-SHA256 of ``to_sign`` with the base64 key."""
    try:
        secret = base64.b64decode(key)
    except ValueError:
        raise ValueError("the account key is not base64") from None
    digest = hmac.new(secret, to_sign.encode("utf-8"), hashlib.sha256).digest()
    return f"SharedKey {account}:{base64.b64encode(digest).decode('ascii')}"


# --- the environment, as requests reads it -----------------------------------------------------


def proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment names for ``scheme://host`` (None: go direct), as
    requests chooses it: ``NO_PROXY`` first, then ``<scheme>_proxy``, then ``all_proxy``."""
    from urllib.request import getproxies, proxy_bypass

    hostname = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if proxy_bypass(hostname) or _no_proxy(host):
        return None
    proxies = getproxies()
    return proxies.get(scheme) or proxies.get("all")


def _no_proxy(host: str) -> bool:
    """``NO_PROXY`` as requests matches it (``should_bypass_proxies``): an IP address by
    CIDR or exactly, a name by suffix, with or without its port."""
    import ipaddress

    value = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
    hostname, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    entries = [e for e in value.replace(" ", "").split(",") if e]
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        with_port = f"{hostname}:{port}" if port else hostname
        return any(hostname.endswith(e) or with_port.endswith(e) for e in entries)
    for entry in entries:
        if "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
        elif entry == hostname:
            return True
    return False


def ssl_context() -> ssl.SSLContext:
    """Verification as requests does it: ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, else
    certifi's bundle."""
    cafile = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if not cafile:
        import certifi

        cafile = certifi.where()
    if os.path.isdir(cafile):
        return ssl.create_default_context(capath=cafile)
    return ssl.create_default_context(cafile=cafile)


# --- the client ------------------------------------------------------------------------------


class _Connect(Exception):
    """No connection (refused, reset before an answer, timed out): ``kind`` says which."""

    def __init__(self, kind: str, name: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.name = name


class ListClient:
    """List Containers and List Blobs of one account, GET only, signed by the account key,
    a SAS, or nothing (anonymous). Kept-alive connections, as many as requests in flight."""

    def __init__(
        self,
        location: AzureLocation,
        *,
        account_key: str | None,
        sas: str | None,
        policy: CountingRetry,
        translator: ErrorTranslator,
    ) -> None:
        if account_key:
            shared_key(location.account or "", account_key, "")  # a key that is not base64
        self._loc = location
        self._key = account_key
        self._sas = (sas or "").lstrip("?") or None
        self._policy = policy
        self._translate = translator
        self._lock = threading.Lock()
        self._idle: list[http.client.HTTPConnection] = []  # kept alive, free to take
        base = urlsplit(location.account_url)
        self._scheme, self._host = base.scheme, base.netloc
        self._base_path = base.path.rstrip("/")
        self._proxy = proxy_for(self._scheme, self._host)
        self._context: ssl.SSLContext | None = None

    @property
    def has_key(self) -> bool:
        return bool(self._key)

    @property
    def account_key(self) -> str | None:
        """The key obstore signs its reads with (a secret: never shown)."""
        return self._key

    def __repr__(self) -> str:
        return f"ListClient({self._loc.display!r})"

    def list_containers(self, *, page_size: int = PAGE_SIZE) -> list[str]:
        """The names of the account's containers, every page."""
        where = Where("listing the containers of")
        names: list[str] = []
        marker = ""
        while True:
            query = f"comp=list&maxresults={page_size}"
            if marker:
                query += "&marker=" + quote(marker, safe="")
            found, marker = self._get(f"{self._base_path}/", query, where, _parse_containers)
            names.extend(found)
            if not marker:
                return names

    def pages(
        self,
        container: str,
        *,
        prefix: str = "",
        metadata: bool = True,
        page_size: int = PAGE_SIZE,
        missing_ok: bool = False,
    ) -> Iterator[list[Listed]]:
        """The blobs of ``container``, one page (a list, possibly empty) at a time, as
        ``listing.list_pages`` gives them."""
        where = Where("listing", container=container)
        path = f"{self._base_path}/{quote(container, safe='$')}"
        marker = ""
        while True:
            query = f"restype=container&comp=list&maxresults={page_size}"
            if metadata:
                query += "&include=metadata"
            if prefix:
                query += "&prefix=" + quote(prefix, safe="")
            if marker:
                query += "&marker=" + quote(marker, safe="")
            try:
                items, marker = self._get(path, query, where, _parse)
            except _Missing as exc:
                if not missing_ok:
                    raise exc.error from None
                return
            yield items
            if not marker:
                return

    def close(self) -> None:
        with self._lock:
            connections, self._idle = self._idle, []
        for conn in connections:
            conn.close()

    # -- one GET, retried --

    def _get(self, path: str, query: str, where: Where, parse: Any) -> tuple[list[Any], str]:
        cfg = self._policy.config
        attempt = connects = 0
        while True:
            status: int | None = None
            retry_after: float | None = None
            try:
                return self._send(path, query, where, parse)
            except _Connect as exc:
                connects += exc.kind == "connect"
                over = connects > cfg.connect_total if exc.kind == "connect" else False
                if exc.kind == "dns" or over or attempt >= cfg.total:
                    failure = Failure(exc.kind, name=exc.name)
                    raise self._translate.translate(failure, where) from None
            except BrokenPage:
                if attempt >= cfg.total:
                    raise self._translate.translate(Failure("broken"), where) from None
            except _Retried as exc:
                if attempt >= cfg.total:
                    raise self._translate.translate(exc.failure, where) from None
                status, retry_after = exc.failure.status, exc.retry_after
            attempt += 1
            self._policy.note(status)
            delay = self._policy.delay(attempt, retry_after)
            if delay > 0:
                time.sleep(delay)

    def _send(self, path: str, query: str, where: Where, parse: Any) -> tuple[list[Any], str]:
        if self._sas:
            query = f"{query}&{self._sas}"
        url = f"{self._scheme}://{self._host}{path}?{query}"
        headers = {
            "x-ms-version": API_VERSION,
            "x-ms-date": formatdate(usegmt=True),
            "x-ms-client-request-id": str(uuid.uuid1()),
            "User-Agent": USER_AGENT,
            "Accept": "application/xml",
        }
        if self._key:
            account = self._loc.account or ""
            headers["Authorization"] = shared_key(
                account, self._key, string_to_sign(account, url, headers)
            )
        conn = self._connection()
        target = url if (self._proxy and self._scheme == "http") else f"{path}?{query}"
        try:
            if conn.sock is None:
                self._open(conn)
            conn.request("GET", target, headers=headers)
            response = conn.getresponse()
        except _Connect:
            self._drop(conn)
            raise
        except (OSError, http.client.HTTPException) as exc:
            self._drop(conn)  # sent, no answer: a kept-alive connection the server closed
            raise _Connect("broken", type(exc).__name__) from None
        done = False
        try:
            if response.status != 200:
                failure = answer_failure(int(response.status), response.headers)
                if failure.code == "ContainerNotFound":
                    raise _Missing(self._translate.translate(failure, where))
                if failure.status in RETRIED_STATUSES:
                    raise _Retried(failure, retry_after_seconds(response.headers))
                raise self._translate.translate(failure, where)
            result = parse(_body(response), where)
            done = not response.will_close  # read to its end: the connection is reusable
            return result
        finally:
            if done:
                with self._lock:
                    self._idle.append(conn)  # as many as requests were in flight at once
            else:
                self._drop(conn)  # an unread or broken body: never reuse the connection

    def _connection(self) -> http.client.HTTPConnection:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._new_connection()

    def _new_connection(self) -> http.client.HTTPConnection:
        host, port = _host_port(self._host, 443 if self._scheme == "https" else 80)
        if self._proxy:
            proxy = urlsplit(self._proxy if "://" in self._proxy else f"http://{self._proxy}")
            p_host, p_port = _host_port(proxy.netloc.rpartition("@")[2], 8080)
            if self._scheme == "https":
                conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                    p_host, p_port, timeout=CONNECT_TIMEOUT_S, context=self._ssl()
                )
                conn.set_tunnel(host, port, headers=_proxy_auth(proxy))
            else:
                conn = http.client.HTTPConnection(p_host, p_port, timeout=CONNECT_TIMEOUT_S)
            return conn
        if self._scheme == "https":
            return http.client.HTTPSConnection(
                host, port, timeout=CONNECT_TIMEOUT_S, context=self._ssl()
            )
        return http.client.HTTPConnection(host, port, timeout=CONNECT_TIMEOUT_S)

    def _ssl(self) -> ssl.SSLContext:
        if self._context is None:
            self._context = ssl_context()
        return self._context

    @staticmethod
    def _open(conn: http.client.HTTPConnection) -> None:
        try:
            conn.connect()
        except socket.gaierror:
            raise _Connect("dns", "NameResolutionError") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Connect("connect", type(exc).__name__) from None
        if conn.sock is not None:
            conn.sock.settimeout(READ_TIMEOUT_S)

    def _drop(self, conn: http.client.HTTPConnection) -> None:
        conn.close()  # not given back: the next request takes or opens another


class _Retried(Exception):
    def __init__(self, failure: Failure, retry_after: float | None) -> None:
        super().__init__(failure.status)
        self.failure = failure
        self.retry_after = retry_after


class _Missing(Exception):
    """A container that does not exist (``ContainerNotFound``), translated."""

    def __init__(self, error: AmlportError) -> None:
        super().__init__(error.message)
        self.error = error


def _host_port(netloc: str, default: int) -> tuple[str, int]:
    if netloc.startswith("["):  # [IPv6]:port
        host, _, rest = netloc[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default
    host, sep, port = netloc.rpartition(":")
    return (host, int(port)) if sep and port.isdigit() else (netloc, default)


def _proxy_auth(proxy: Any) -> dict[str, str]:
    if proxy.username is None:
        return {}
    user = f"{unquote(proxy.username)}:{unquote(proxy.password or '')}"
    return {"Proxy-Authorization": "Basic " + base64.b64encode(user.encode()).decode("ascii")}


def _body(response: http.client.HTTPResponse) -> Iterator[bytes]:
    while True:
        try:
            piece = response.read(READ_SIZE)
        except (OSError, http.client.HTTPException) as exc:
            raise BrokenPage(type(exc).__name__) from None
        if not piece:
            if response.length:  # http.client ends a short Content-Length body silently
                raise BrokenPage("IncompleteRead")
            return
        yield piece


def _parse_containers(body: Iterator[bytes], where: Where) -> tuple[list[str], str]:
    """The container names of one List Containers page and its ``NextMarker``, through the
    same bounds as a List Blobs page (``listing.bounded``)."""
    parser: ET.XMLPullParser[ET.Element] = ET.XMLPullParser(events=("end",))
    names: list[str] = []
    last: ET.Element | None = None
    try:
        for piece in bounded(body, where):
            parser.feed(piece)
            for _, element in cast(Iterator[tuple[str, ET.Element]], parser.read_events()):
                last = element
                if element.tag == "Container":
                    name = element.findtext("Name")
                    if name:
                        names.append(name)
                    element.clear()
        parser.close()
        for _, element in cast(Iterator[tuple[str, ET.Element]], parser.read_events()):
            last = element
    except ET.ParseError:
        raise _refused(where, "malformed XML") from None
    return names, (last.findtext("NextMarker") or "") if last is not None else ""


# --- which sources list through this client ----------------------------------------------------


def own_listing(
    loc: AzureLocation, auth: Any, policy: CountingRetry
) -> tuple[ListClient, AzureLocation, bool] | None:
    """The client, resolved location and whether it is anonymous, for a source whose
    credential needs no SDK: an account key (option or connection string), a SAS (URL,
    option or connection string) or none. None for an Entra identity, and for a connection
    string this does not read as the SDK would (the SDK path then decides, as before)."""
    from dataclasses import replace

    from amlport.storage.azure_location import one_credential

    if auth.use_default_credential:
        return None
    sas = one_credential(loc, auth)
    key = auth.account_key or None
    if auth.connection_string:
        parsed = _connection_string(auth.connection_string)
        if parsed is None:
            return None
        resolved, key, conn_sas = parsed
        if loc.account and resolved.account and loc.account != resolved.account:
            return None  # the SDK path says so, as before
        loc, sas = replace(resolved, container=loc.container), conn_sas
    elif loc.account is None or loc.host is None:
        return None
    loc = replace(loc, sas_token=sas)
    anonymous = not (key or sas)
    translator = ErrorTranslator(loc, policy, anonymous)
    try:
        client = ListClient(loc, account_key=key, sas=sas, policy=policy, translator=translator)
    except ValueError:
        return None  # a key that is not base64: the SDK path gives its usage error
    return client, loc, anonymous


def _connection_string(text: str) -> tuple[AzureLocation, str | None, str | None] | None:
    """(location, key, SAS) of a connection string with an account key or a SAS and an
    explicit endpoint or account; None for anything else (``UseDevelopmentStorage``, a
    string the SDK would refuse): those keep the SDK's reading."""
    from amlport.storage.azure_location import parse_http

    fields: dict[str, str] = {}
    for part in text.split(";"):
        if part.strip():
            name, sep, value = part.partition("=")
            if not sep:
                return None
            fields[name.strip().upper()] = value.strip()
    key, sas = fields.get("ACCOUNTKEY") or None, fields.get("SHAREDACCESSSIGNATURE") or None
    account = fields.get("ACCOUNTNAME")
    if "USEDEVELOPMENTSTORAGE" in fields or not (key or sas) or (key and not account):
        return None
    endpoint = fields.get("BLOBENDPOINT")
    if endpoint:
        scheme, sep, rest = endpoint.partition("://")
        if not sep or scheme.lower() not in ("http", "https"):
            return None
        rest = rest.rstrip("/")
        try:
            loc = parse_http(scheme.lower(), rest, None)
        except AmlportError:
            return None  # a custom domain: the SDK path keeps it as it is
    elif account:
        scheme = fields.get("DEFAULTENDPOINTSPROTOCOL", "https").lower()
        suffix = fields.get("ENDPOINTSUFFIX", "core.windows.net")
        try:
            loc = parse_http(scheme, f"{account}.blob.{suffix}", None)
        except AmlportError:
            return None
    else:
        return None
    if account and loc.account != account:
        return None
    return loc, (key if key else None), (None if key else sas)
