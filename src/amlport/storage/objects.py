"""The bulk data path through obstore (Apache Arrow's Rust ``object_store``): blob reads
(the writes of the ``az://`` repository and of the import target: ``object_writes.BlobWriter``).

Why: the Python storage SDK spends 3 to 5.5 times rclone's client CPU on the same bytes; obstore
reads at rclone's speed with a tenth of the SDK's CPU (docs/design/0005-obstore-data-path.md).
The SDK keeps what obstore cannot do (listing with Content-MD5, containers, signing, copies,
properties, conditional block-list commits); both are built from the same resolved location
and credential (``connect``).

One ``AzureStore`` per container, built on first use with:

- the credential the SDK client was opened with, always as a credential provider (which
  nothing in the environment can override): its account key (a connection string's too, as
  the SDK parsed it), the SAS (URL, option or connection string), an Entra identity through
  ``TokenBridge`` (the same ``DefaultAzureCredential`` object, so the same sign-in, authority
  and token cache), or no signature at all for an anonymous location;
- the resolved endpoint (sovereign clouds, custom domains, path-style emulators alike);
- no retries of its own (``max_retries: 0``): amlport retries (``call``), so every retry is
  counted once in ``retry_count`` and backs off as ``RetryConfig`` says, as the SDK's do;
  a throttle is waited out through a probe that sees ``Retry-After`` (``Retrying``);
- the environment's ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY``, which reqwest honours as
  requests does (tests/integration/test_obstore_reads.py).

Errors become ``Failure`` (``azure_errors``) from the exception's class and the HTTP status
and error code in its text; the text itself is never shown (it holds the request URL, and so
a SAS). Only ``get``, ``get_range`` and ``head`` are called for a source: ``BlobReader`` has no
writing method, and this module calls no writing function of obstore (a test checks it).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, TypeVar

import obstore
from obstore.exceptions import (
    AlreadyExistsError,
    BaseError,
    PermissionDeniedError,
    PreconditionError,
    UnauthenticatedError,
)
from obstore.store import AzureStore

from amlport.errors import AmlportError, SourceError
from amlport.storage.azure_errors import ErrorTranslator, Failure, Where
from amlport.storage.azure_location import CONNECT_TIMEOUT_S, READ_TIMEOUT_S, AzureLocation
from amlport.storage.retry import RETRIED_STATUSES, THROTTLING_STATUSES, CountingRetry

if TYPE_CHECKING:
    from obstore import Bytes, GetOptions, GetResult

T = TypeVar("T")
STORAGE_SCOPE = "https://storage.azure.com/.default"  # the SDK's scope, in every cloud
# A whole request may take as long as its body does (an 800 MiB model on a slow link): the
# bound that matters is READ_TIMEOUT_S between two reads, as for the SDK's transport.
WHOLE_REQUEST_TIMEOUT = timedelta(hours=24)
_STATUS = re.compile(r"status code: (\d{3})")
# object_store's ``Path`` cannot carry every legal blob name: it refuses empty segments
# (``a//b``, a leading or trailing ``/``), ``.`` and ``..`` segments and ASCII control
# characters ("Could not parse path"). Such names are read through the SDK instead.
_UNCARRIED = re.compile(r"(?:^|/)\.{0,2}(?:/|$)|[\x00-\x1f\x7f]")


def carries(name: str) -> bool:
    """Can obstore address the blob ``name`` exactly (``_UNCARRIED``)?"""
    return bool(name) and _UNCARRIED.search(name) is None


_CODE = re.compile(r"<Code>([A-Za-z0-9]+)</Code>")
_RETRIED = re.compile(r", after (\d+) retries, max_retries")  # object_store's RetryError


class TokenBridge:
    """An obstore credential provider over an azure-identity credential (``get_token``)."""

    def __init__(self, credential: Any) -> None:
        self._credential = credential

    def __call__(self) -> dict[str, Any]:
        token = self._credential.get_token(STORAGE_SCOPE)
        expires = datetime.fromtimestamp(token.expires_on, timezone.utc)
        return {"token": token.token, "expires_at": expires}


class Fixed:
    """An obstore credential provider that always gives the same credential (a key, a SAS).
    ``repr`` names its kind only: the value is a secret."""

    def __init__(self, credential: dict[str, Any]) -> None:
        self._credential = credential

    def __call__(self) -> dict[str, Any]:
        return self._credential

    def __repr__(self) -> str:
        return f"Fixed({'access_key' if 'access_key' in self._credential else 'sas_token'})"


def store_options(loc: AzureLocation, sdk_credential: Any, max_connections: int) -> dict[str, Any]:
    """``AzureStore`` keyword arguments (all but the container) for a resolved location.

    ``sdk_credential`` is the SDK client's ``credential`` (a shared key policy holding the
    account key, a token credential, an ``AzureSasCredential`` or None).
    """
    options: dict[str, Any] = {
        "account_name": loc.account or "unknown",
        "endpoint": loc.account_url,
        "client_options": {
            "allow_http": loc.scheme == "http",
            "connect_timeout": timedelta(seconds=CONNECT_TIMEOUT_S),
            "read_timeout": timedelta(seconds=READ_TIMEOUT_S),
            "timeout": WHOLE_REQUEST_TIMEOUT,
            "pool_max_idle_per_host": str(max_connections),
            "user_agent": "amlport",
        },
        "retry_config": {"max_retries": 0},
    }
    # Always a credential provider: obstore ranks it above everything, whereas an explicit
    # account_key or sas_key loses to AZURE_STORAGE_TOKEN, AZURE_STORAGE_ACCOUNT_KEY or
    # AZURE_CLIENT_ID/SECRET/TENANT_ID found in the environment (tested).
    key = getattr(sdk_credential, "account_key", None)
    if key:
        options["credential_provider"] = Fixed({"access_key": key, "expires_at": None})
    elif hasattr(sdk_credential, "get_token"):
        options["credential_provider"] = TokenBridge(sdk_credential)
    elif loc.sas_token:
        sas = loc.sas_token.lstrip("?")
        options["credential_provider"] = Fixed({"sas_token": sas, "expires_at": None})
    else:
        options["skip_signature"] = True  # anonymous: public read access
    return options


def obstore_failure(exc: BaseException) -> Failure | None:
    """The ``Failure`` an obstore exception stands for; None for anything else (a bug)."""
    if not isinstance(exc, (BaseError, FileNotFoundError)):
        return None
    text = str(exc)
    found = _STATUS.search(text)
    status = int(found.group(1)) if found else None
    code_found = _CODE.search(text)
    code = code_found.group(1) if code_found else ""
    name = type(exc).__name__
    if isinstance(exc, FileNotFoundError):
        return Failure("missing", status or 404, code, name)
    if isinstance(exc, (PermissionDeniedError, UnauthenticatedError)):
        return Failure("denied", status, code, name)
    if isinstance(exc, (AlreadyExistsError, PreconditionError)) or status is not None:
        return Failure("http", status, code, name)
    if "dns error" in text:
        return Failure("dns", None, "", name)
    if "kind: Connect" in text:
        return Failure("connect", None, "", name)
    return Failure("broken", None, "", name)  # timed out, or the connection broke


@dataclass(frozen=True)
class Throttled:
    """A probe's answer that says storage still pushes back: its status (one of
    ``RETRIED_STATUSES``), error code and ``Retry-After`` in seconds (None if it sent none)."""

    status: int
    code: str = ""
    retry_after: float | None = None


# One request, not retried, that asks storage whether the throttle on ``where`` is over
# (``AzureClient._throttle_probe``: a HEAD through the SDK's pipeline, whose answer's headers
# amlport sees): None when it is (or when the probe says nothing about throttling).
Probe = Callable[[Where], Throttled | None]


# ``Where.action`` of the calls that write: their retries count as writes (``RetryTally``).
WRITE_ACTIONS = frozenset({"writing", "refreshing", "creating", "copying into", "deleting"})


class Retrying:
    """Runs obstore calls with amlport's retries: counted in ``policy``, translated once.

    obstore (object_store) keeps only the status and body of a failed answer, never its
    headers, so the ``Retry-After`` of a 429/503 it got is unseen here. When a call was
    throttled and a ``probe`` is given, the wait before the next obstore attempt goes on
    through the probe: each throttled probe answer counts as one retry and is waited out as
    the SDK path waits (``CountingRetry.delay``: the backoff, or its ``Retry-After`` when
    longer), within the same budget (``limit``); the call is sent again once storage answers
    the probe without throttling.
    """

    def __init__(
        self, policy: CountingRetry, translator: ErrorTranslator, probe: Probe | None = None
    ) -> None:
        self.policy = policy
        self.translator = translator
        self.probe = probe

    def call(self, where: Where, fn: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                return fn()
            except (BaseError, FileNotFoundError) as exc:
                failure = obstore_failure(exc)
                assert failure is not None
            attempt = self.retry(failure, attempt, where)

    def retry(self, failure: Failure, attempt: int, where: Where) -> int:
        """Count and wait out ``failure`` before attempt ``attempt + 1`` (and, for a throttle,
        until the probe says it is over); the number of retries used so far. Raises the
        translated error when the budget is spent."""
        probe = self.probe if failure.status in THROTTLING_STATUSES else None
        retry_after: float | None = None
        while True:
            if attempt >= self.limit(failure):
                raise self.translator.translate(failure, where) from None
            attempt += 1
            self.wait(failure, attempt, retry_after, write=where.action in WRITE_ACTIONS)
            if probe is None or (answer := probe(where)) is None:
                return attempt
            failure = Failure("http", answer.status, answer.code, "Throttled")
            retry_after = answer.retry_after

    def limit(self, failure: Failure) -> int:
        """How many times a call that failed so may be retried (DNS, 4xx: never)."""
        cfg = self.policy.config
        if failure.kind == "connect":
            return min(cfg.connect_total, cfg.total)
        if failure.kind == "broken" or failure.status in RETRIED_STATUSES:
            return cfg.total
        return 0

    def wait(
        self, failure: Failure, attempt: int, retry_after: float | None = None, *,
        write: bool = False,
    ) -> None:  # fmt: skip
        """Count the retry and wait: the backoff, or ``retry_after`` when that is longer."""
        self.policy.note(failure.status, write=write)
        delay = self.policy.delay(attempt, retry_after)
        if delay > 0:
            time.sleep(delay)

    def note_reported(self, exc: BaseException) -> int:
        """Count the retries obstore made itself (a store with its own retries: the parts of
        ``BlobWriter.put_stream``) of the request that failed with ``exc``, as its error text
        reports them ("after N retries"); the number counted. Retries of a request that
        later succeeded are reported nowhere and cannot be counted."""
        found = _RETRIED.search(str(exc)) if isinstance(exc, BaseError) else None
        failure = obstore_failure(exc)
        count = int(found.group(1)) if found and failure is not None else 0
        for _ in range(count):
            self.policy.note(failure.status if failure is not None else None, write=True)
        return count

    def error(self, exc: BaseException, where: Where) -> AmlportError | None:
        failure = obstore_failure(exc)
        return None if failure is None else self.translator.translate(failure, where)


class BlobReader:
    """Reads blobs of one account through obstore: whole, a prefix of, or streamed.

    Only reading calls exist here, so a source that reads through it cannot write.
    """

    def __init__(self, options: dict[str, Any], retrying: Retrying) -> None:
        self._options = options
        self._retrying = retrying
        self._stores: dict[str, AzureStore] = {}
        self._lock = threading.Lock()

    def store(self, container: str) -> AzureStore:
        with self._lock:
            found = self._stores.get(container)
            if found is None:
                found = self._stores[container] = AzureStore(container, **self._options)
            return found

    def read(self, container: str, name: str, max_bytes: int | None) -> bytes:
        """The blob's bytes, the first ``max_bytes`` of them when given (an empty blob and a
        ``max_bytes`` of 0 give b"", but a missing blob is still ``SourceNotFound``)."""
        store, where = self.store(container), Where("reading", container, name)
        call = self._retrying.call
        if max_bytes is None:
            return bytes(call(where, lambda: obstore.get(store, name).bytes()))
        if max_bytes <= 0:
            call(where, lambda: obstore.head(store, name))
            return b""

        def prefix() -> bytes:
            try:
                return bytes(obstore.get_range(store, name, start=0, length=max_bytes))
            except BaseError as exc:
                if "status code: 416" in str(exc):  # a range of an empty blob
                    return b""
                raise

        return call(where, prefix)

    def chunks(self, container: str, name: str, chunk_size: int) -> Iterator[Bytes]:
        """The blob as chunks of at least ``chunk_size`` bytes (the last may be shorter).

        The first request is sent before this returns, so a missing blob fails here. One GET
        streams the whole blob; if the connection breaks, the rest is asked for from where it
        broke, on condition that the blob is still the same (``If-Match``), as a retry.
        """
        store, where = self.store(container), Where("reading", container, name)
        result = self._retrying.call(where, lambda: obstore.get(store, name))
        return self.rest_of(container, name, result, chunk_size)

    def fetch(self, container: str, name: str) -> GetResult | None:
        """The answer to a GET of the blob (headers read, body not yet), None if there is no
        such blob or container: for stores where a missing key is an answer, not an error."""
        store, where = self.store(container), Where("reading", container, name)

        def get() -> GetResult | None:
            try:
                return obstore.get(store, name)
            except FileNotFoundError:
                return None

        return self._retrying.call(where, get)

    def rest_of(
        self, container: str, name: str, result: GetResult, chunk_size: int
    ) -> Iterator[Bytes]:
        """The body of ``result`` (from ``fetch``) as chunks, resumed if the connection breaks."""
        store, where = self.store(container), Where("reading", container, name)
        etag = result.meta["e_tag"]
        return self._stream(store, name, where, result.stream(chunk_size), etag, chunk_size)

    def _stream(
        self, store: AzureStore, name: str, where: Where, stream: Any, etag: str | None,
        chunk_size: int,
    ) -> Iterator[Bytes]:  # fmt: skip
        done, attempt = 0, 0
        while True:
            try:
                chunk = next(stream)
            except StopIteration:
                return
            except BaseError as exc:
                failure = obstore_failure(exc)
                assert failure is not None
                attempt = self._retrying.retry(failure, attempt, where)
                stream = self._resume(store, name, where, done, etag).stream(chunk_size)
                continue
            done += len(chunk)
            yield chunk

    def _resume(
        self, store: AzureStore, name: str, where: Where, offset: int, etag: str | None
    ) -> Any:
        """The rest of a blob from ``offset``, if it is still the one that was being read.

        A blob replaced since the first GET answers ``If-Match`` with 412: the bytes read so
        far and the rest would be of two blobs, so the read fails (``SourceError``) instead of
        resuming, and the file fails as any unreadable file does."""
        options: GetOptions = {"range": {"offset": offset}}
        if etag:
            options["if_match"] = etag

        def rest() -> Any:
            try:
                return obstore.get(store, name, options=options)
            except PreconditionError:
                raise SourceError(
                    f"blob {where.container}/{where.blob} changed while it was being read "
                    f"(its ETag is no longer the one of the first {offset} bytes read)",
                    hint="something wrote to it meanwhile; re-run when nothing else writes there",
                ) from None

        return self._retrying.call(where, rest)
