"""Azure Blob Storage (a live account or Azurite) as a read-only workspace source.

Locations (a SAS may follow any of them as the query string)::

    https://<account>.blob.<suffix>               whole account: find the workspace containers
    https://<account>.blob.<suffix>/<container>   that container is the blobstore
    az://<container>                              account from the connection string
    az://<container>@<account>.blob.<suffix>      (abfs[s]:// with .dfs. too, as fsspec writes)
    http://127.0.0.1:<port>/<account>[/<container>]   Azurite / emulators (path-style)

``<suffix>`` is ``core.windows.net`` or a sovereign cloud's (``core.chinacloudapi.cn``,
``core.usgovcloudapi.net``). A workspace descriptor given by the caller names the containers
and skips discovery.

Read-only by construction: besides never calling a write API, every client carries a request
hook that refuses any HTTP method but GET and HEAD (``ReadOnlyViolation``) before it leaves
the process.
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

import requests
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.transport import RequestsTransport
from azure.storage.blob import BlobProperties, BlobServiceClient
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from amlport.errors import (
    AccessDenied,
    AmlportError,
    ReadOnlyViolation,
    SourceError,
    SourceNotFound,
    TransientStorageError,
    UsageError,
)
from amlport.model.workspace import (
    ARTIFACT_CONTAINER,
    DEFAULT_ENDPOINT,
    WorkspaceDescriptor,
    guess_containers,
)
from amlport.storage.base import BlobInfo, Source
from amlport.storage.opener import StorageAuth
from amlport.storage.retry import RETRIED_STATUSES, CountingRetry, RetryConfig, is_dns_failure

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 << 20  # first GET and each further ranged GET: bounds a stream's memory
DEFAULT_MAX_CONNECTIONS = 16  # >= the default read_many workers, with room for listings
LIST_PAGE_SIZE = 5000  # the service maximum: fewest round trips
CONNECT_TIMEOUT_S = 20
READ_TIMEOUT_S = 120
SAFE_METHODS = frozenset({"GET", "HEAD"})
CREDENTIAL_HINT = "give --connection-string, --account-key, --sas-token or --credential default"
AUTHORITY_HOSTS = {  # DefaultAzureCredential must sign in where the storage lives
    "core.chinacloudapi.cn": "login.chinacloudapi.cn",
    "core.usgovcloudapi.net": "login.microsoftonline.us",
}

_VHOST = re.compile(
    r"^(?P<account>[a-z0-9]+)\.(?:privatelink\.)?(?P<service>blob|dfs)\.(?P<suffix>[a-z0-9.-]+)$"
)
_CONTAINER = re.compile(r"^(\$root|\$logs|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$")


# --- locations -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AzureLocation:
    """A parsed storage location. ``sas_token`` (from the URL) is never displayed."""

    scheme: str | None  # None: az:// without an account, the connection string decides
    host: str | None
    account: str | None
    container: str | None = None
    path_style: bool = False
    suffix: str = DEFAULT_ENDPOINT
    sas_token: str | None = field(default=None, repr=False)

    @property
    def account_url(self) -> str:
        base = f"{self.scheme}://{self.host}"
        return f"{base}/{self.account}" if self.path_style else base

    @property
    def display(self) -> str:
        """The location without credentials: what ``describe()`` and messages show."""
        if self.host is None:
            return f"az://{self.container}"
        return f"{self.account_url}/{self.container}" if self.container else self.account_url


def parse_location(location: str) -> AzureLocation:
    """Parse a storage URL (see the module docstring) without contacting anything."""
    base, _, query = location.partition("?")
    sas = query.split("#", 1)[0].strip() or None
    scheme, sep, rest = base.split("#", 1)[0].partition("://")
    scheme = scheme.lower()
    if sep and scheme in ("az", "abfs", "abfss"):
        return _parse_fsspec(rest, sas)
    if sep and scheme in ("http", "https"):
        return _parse_http(scheme, rest, sas)
    raise UsageError(
        f"not a storage URL: {location.split('?', 1)[0]}",
        hint="use https://<account>.blob.core.windows.net[/<container>] or az://<container>",
    )


def _parse_fsspec(rest: str, sas: str | None) -> AzureLocation:
    head, _, path = rest.partition("/")
    container, at, host = head.partition("@")
    _whole_containers_only(path)
    if not at:
        return AzureLocation(None, None, None, _container_name(container), sas_token=sas)
    return replace(_parse_http("https", host, sas), container=_container_name(container))


def _parse_http(scheme: str, rest: str, sas: str | None) -> AzureLocation:
    netloc, _, path = rest.partition("/")
    host = netloc.lower()
    parts = [p for p in path.split("/") if p]
    m = _VHOST.match(host.rsplit(":", 1)[0] if host.count(":") == 1 else host)
    if m:
        if m["service"] == "dfs":  # same data through the blob endpoint
            host = host.replace(".dfs.", ".blob.", 1)
        account, suffix, path_style = m["account"], m["suffix"], False
    elif parts:  # Azurite and other emulators: http://host:port/<account>/<container>
        account, parts, suffix, path_style = parts[0], parts[1:], DEFAULT_ENDPOINT, True
    else:
        raise UsageError(
            f"{scheme}://{netloc} names no storage account",
            hint="use https://<account>.blob.<suffix>[/<container>], or for Azurite "
            "http://127.0.0.1:<port>/<account>[/<container>]",
        )
    _whole_containers_only("/".join(parts[1:]))
    container = _container_name(parts[0]) if parts else None
    return AzureLocation(scheme, host, account, container, path_style, suffix, sas)


def _whole_containers_only(path: str) -> None:
    if path.strip("/"):
        raise UsageError(
            "amlport reads whole containers, not a folder inside one",
            hint="drop everything after the container name from the URL",
        )


def _container_name(name: str) -> str:
    if not _CONTAINER.match(name):
        raise UsageError(
            f"{name!r} is not a valid container name",
            hint="3-63 lowercase letters, digits and single hyphens",
        )
    return name


# --- clients and credentials -----------------------------------------------------------------


def _refuse_writes(request: PipelineRequest) -> None:
    """Request hook on every source client: only GET and HEAD may leave the process."""
    method = request.http_request.method.upper()
    if method not in SAFE_METHODS:
        path = urlsplit(request.http_request.url).path
        raise ReadOnlyViolation(f"refused {method} {path}: an amlport source is read-only")


def _client_options(policy: CountingRetry, max_connections: int) -> dict[str, Any]:
    session = requests.Session()
    # Retries belong to the storage policy, not urllib3; the pool must cover the workers.
    adapter = HTTPAdapter(
        pool_connections=4,
        pool_maxsize=max_connections,
        max_retries=Retry(total=False, redirect=False, raise_on_status=False),
    )
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    transport = RequestsTransport(
        session=session,
        session_owner=True,
        connection_timeout=CONNECT_TIMEOUT_S,
        read_timeout=READ_TIMEOUT_S,
    )
    return {
        "retry_policy": policy,
        "transport": transport,
        "max_single_get_size": CHUNK_SIZE,
        "max_chunk_get_size": CHUNK_SIZE,
        "raw_request_hook": _refuse_writes,
    }


def _one_credential(loc: AzureLocation, auth: StorageAuth) -> str | None:
    sas = (auth.sas_token or "").lstrip("?") or None
    url_sas = (loc.sas_token or "").lstrip("?") or None
    if sas and url_sas and sas != url_sas:
        raise UsageError("two different SAS tokens given (in the URL and --sas-token)")
    sas = sas or url_sas
    given = [
        bool(auth.connection_string),
        bool(auth.account_key),
        bool(sas),
        auth.use_default_credential,
    ]
    if sum(given) > 1:
        raise UsageError(
            "more than one credential given",
            hint="give only one of a connection string, an account key, a SAS token "
            "(option or URL) and --credential default",
        )
    return sas


def _default_credential(loc: AzureLocation) -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise UsageError(
            "--credential default needs the azure-identity package",
            hint="pip install amlport[identity]",
        ) from None
    if loc.scheme != "https":
        raise UsageError("--credential default needs an https:// storage URL")
    authority = AUTHORITY_HOSTS.get(loc.suffix)
    return DefaultAzureCredential(authority=authority) if authority else DefaultAzureCredential()


def _connect(
    loc: AzureLocation, auth: StorageAuth, options: dict[str, Any]
) -> tuple[BlobServiceClient, AzureLocation, Any]:
    """The service client, the location resolved against it, and a credential to close."""
    sas = _one_credential(loc, auth)
    if auth.connection_string:
        return _from_connection_string(loc, auth.connection_string, options)
    if loc.account is None or loc.host is None:
        raise UsageError(
            f"{loc.display} does not say which storage account to read",
            hint="give --connection-string, or use https://<account>.blob.<suffix>/<container>",
        )
    credential: Any = None
    if auth.account_key:
        credential = AzureNamedKeyCredential(loc.account, auth.account_key)
    elif sas:
        credential = AzureSasCredential(sas)
    elif auth.use_default_credential:
        credential = _default_credential(loc)
    try:
        client = BlobServiceClient(loc.account_url, credential=credential, **options)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot use this credential with {loc.display}: {exc}") from None
    return client, replace(loc, sas_token=sas), credential


def _from_connection_string(
    loc: AzureLocation, conn_str: str, options: dict[str, Any]
) -> tuple[BlobServiceClient, AzureLocation, Any]:
    try:
        client = BlobServiceClient.from_connection_string(conn_str, **options)
    except (ValueError, KeyError, IndexError):
        raise UsageError(
            "the storage connection string is malformed",
            hint="copy it from the portal (storage account > Access keys > Connection string)",
        ) from None
    if loc.account and client.account_name and loc.account != client.account_name:
        raise UsageError(
            f"the connection string is for account {client.account_name}, "
            f"but the URL names account {loc.account}",
        )
    try:
        resolved = _parse_http(client.scheme, client.primary_hostname, None)
    except UsageError:  # a custom BlobEndpoint (custom domain): keep it as it is
        resolved = AzureLocation(client.scheme, client.primary_hostname, client.account_name)
    sas = _sas_of_connection_string(conn_str)
    return client, replace(resolved, container=loc.container, sas_token=sas), None


def _sas_of_connection_string(conn_str: str) -> str | None:
    for part in conn_str.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "sharedaccesssignature":
            return value.strip() or None
    return None


def _is_service_sas(sas: str | None) -> bool:
    """A service SAS (``sr=``: one container or blob) cannot list an account's containers."""
    return bool(sas) and "sr" in parse_qs((sas or "").lstrip("?"))


def sas_expiry(sas: str | None) -> datetime | None:
    """The ``se`` (signed expiry) of a SAS token: not secret, and it explains a 403."""
    if not sas:
        return None
    values = parse_qs(sas.lstrip("?")).get("se")
    if not values:
        return None
    try:
        expiry = datetime.fromisoformat(values[0].replace("Z", "+00:00"))
    except ValueError:
        return None
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=timezone.utc)


# --- errors ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Where:
    """What a failed call was about; messages are built from these names only."""

    action: str
    container: str | None = None
    blob: str | None = None


def _code(exc: AzureError) -> str:
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))


class _ErrorTranslator:
    """Maps SDK exceptions to one-line amlport errors without any secret in them."""

    def __init__(self, loc: AzureLocation, policy: CountingRetry, anonymous: bool) -> None:
        self.loc = loc
        self.policy = policy
        self.anonymous = anonymous

    def __call__(self, exc: AzureError, where: _Where) -> AmlportError:
        acct = self.loc.account or "?"
        if where.blob:
            obj = f"blob {where.container}/{where.blob} in account {acct}"
        elif where.container:
            obj = f"container {where.container} in account {acct}"
        else:
            obj = f"account {acct}"
        status = getattr(exc, "status_code", None)
        code = _code(exc)
        if isinstance(exc, ServiceRequestError):
            return self._unreachable(exc, where, obj)
        if isinstance(exc, ServiceResponseError):
            return TransientStorageError(
                f"the connection broke {where.action} {obj}, "
                f"after {self.policy.config.total} retries",
                hint="re-run; check the network",
            )
        if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
            return self._denied(code, status, where, obj)
        if isinstance(exc, ResourceNotFoundError) or status == 404:
            return self._not_found(code, where)
        if status in RETRIED_STATUSES:
            return TransientStorageError(
                f"{where.action} {obj} failed after {self.policy.config.total} retries: "
                f"HTTP {status} {code}".rstrip(),
                hint="storage is throttling or unavailable; re-run later or with fewer workers",
            )
        detail = f"HTTP {status} {code}".rstrip() if status else type(exc).__name__
        return SourceError(f"{where.action} {obj} failed: {detail}")

    def _unreachable(self, exc: AzureError, where: _Where, obj: str) -> AmlportError:
        if is_dns_failure(exc):
            return SourceNotFound(
                f"storage account {self.loc.account}: {self.loc.host} does not resolve",
                hint="check the account name and the endpoint suffix (sovereign clouds differ), "
                "or the network / DNS",
            )
        return SourceError(
            f"cannot reach {self.loc.account_url} ({where.action} {obj})",
            hint="check the URL / network",
        )

    def _denied(self, code: str, status: int | None, where: _Where, obj: str) -> AmlportError:
        expiry = sas_expiry(self.loc.sas_token)
        if expiry is not None and expiry <= datetime.now(timezone.utc):
            return AccessDenied(
                f"access denied {where.action} {obj}: the SAS token expired at "
                f"{expiry:%Y-%m-%d %H:%M} UTC",
                hint="create a new SAS with read and list permissions",
            )
        if status is None:  # no HTTP answer: the credential could not get a token
            hint = "sign in (az login) or set up a managed/workload identity; or " + CREDENTIAL_HINT
        elif self.anonymous:
            hint = f"this storage does not allow anonymous reads: {CREDENTIAL_HINT}"
        elif code == "AuthorizationPermissionMismatch":
            hint = "the credential may not read/list: a SAS needs r and l; an Entra identity "
            hint += "needs the Storage Blob Data Reader role"
        elif code == "AuthorizationResourceTypeMismatch":
            hint = "an account SAS needs resource types service, container and object (srt=sco)"
        else:
            hint = "the account key or SAS token is wrong, expired, or for another account "
            hint += "or container"
        detail = f": HTTP {status} {code}".rstrip() if status else ""
        return AccessDenied(f"access denied {where.action} {obj}{detail}", hint=hint)

    def _not_found(self, code: str, where: _Where) -> AmlportError:
        acct = self.loc.account
        if code == "BlobNotFound" or (where.blob and code != "ContainerNotFound"):
            return SourceNotFound(
                f"blob {where.container}/{where.blob} not found in storage account {acct}",
                hint="it may have been deleted since it was listed; re-run",
            )
        if code == "ContainerNotFound":
            return SourceNotFound(
                f"container {where.container} not found in storage account {acct}",
                hint="check the container name, or give --workspace-file naming the containers",
            )
        return SourceNotFound(
            f"storage account {acct} not found at {self.loc.account_url}",
            hint="check the account name and the endpoint",
        )


# --- the source ------------------------------------------------------------------------------


class AzureSource(Source):
    """A workspace's containers in one storage account, read through azure-storage-blob.

    ``retry_count`` says how many times calls were retried (throttling or broken
    connections); ``skipped_containers`` names workspace containers that could not be read
    and why (missing, or not readable with this credential).
    """

    def __init__(
        self,
        service: BlobServiceClient,
        location: AzureLocation,
        *,
        retry_policy: CountingRetry,
        descriptor: WorkspaceDescriptor | None = None,
        credential: Any = None,
        anonymous: bool = False,
    ) -> None:
        self._service = service
        self._credential = credential
        self._retry = retry_policy
        self.location = location
        self._translate = _ErrorTranslator(location, retry_policy, anonymous)
        self.skipped_containers: dict[str, str] = {}
        self._present: tuple[str, ...] = ()
        try:
            self.descriptor = self._resolve(descriptor)
        except BaseException:
            self.close()
            raise

    @property
    def retry_count(self) -> int:
        return self._retry.count

    @property
    def blob_service_client(self) -> BlobServiceClient:
        """The read-only client (GET/HEAD only) for data-plane facts such as the audit's."""
        return self._service

    @property
    def containers(self) -> tuple[str, ...]:
        """The workspace containers that exist and are listed, blobstore first."""
        return self._present

    def describe(self) -> str:
        return self.location.display

    def __repr__(self) -> str:
        return f"AzureSource({self.describe()!r})"

    def close(self) -> None:
        self._service.close()
        closer: Callable[[], None] | None = getattr(self._credential, "close", None)
        if closer is not None:
            closer()

    @contextmanager
    def _translating(self, where: _Where) -> Iterator[None]:
        try:
            yield
        except AzureError as exc:
            # `from None`: the SDK's own message may carry a signed URL.
            raise self._translate(exc, where) from None

    # -- discovery --

    def _resolve(self, descriptor: WorkspaceDescriptor | None) -> WorkspaceDescriptor:
        loc = self.location
        if descriptor is not None:
            wanted = list(dict.fromkeys(descriptor.containers))
            # Like a local copy, a described container that does not exist is skipped; one
            # that exists but this credential cannot read is an error for the blobstore.
            self._present = tuple(
                c for c in wanted if self._probe(c, must_exist=False, must_read=c == wanted[0])
            )
            if not self._present:
                raise SourceNotFound(
                    f"none of the workspace containers ({', '.join(wanted)}) exists in "
                    f"storage account {loc.account}",
                    hint="check 'containers:' in the workspace descriptor",
                )
            return descriptor
        if loc.container is not None:
            blob, art = self._pair_for(loc.container)
        else:
            blob, art = self._discover_pair()
        self._present = tuple(
            c
            for c in (blob, art)
            if c
            and self._probe(c, must_exist=c == loc.container, must_read=c in (blob, loc.container))
        )
        return WorkspaceDescriptor(
            account=loc.account or str(loc.host),
            blobstore_container=blob or "azureml-blobstore-unknown",
            artifact_container=art or ARTIFACT_CONTAINER,
            endpoint=loc.suffix,
        )

    @staticmethod
    def _pair_for(container: str) -> tuple[str | None, str | None]:
        """(blobstore, artifacts) for a named container and its usual partner."""
        if container == ARTIFACT_CONTAINER:
            return None, container
        if container.endswith("-azureml"):
            return container.removesuffix("-azureml") + "-blobstore", container
        if container.endswith("-blobstore"):  # hub/project: <wsid>-blobstore, <wsid>-azureml
            return container, container.removesuffix("-blobstore") + "-azureml"
        return container, ARTIFACT_CONTAINER

    def _discover_pair(self) -> tuple[str, str | None]:
        where = _Where("listing the containers of")
        try:
            with self._translating(where):
                names = [c.name for c in self._service.list_containers()]
        except AccessDenied as exc:
            if not _is_service_sas(self.location.sas_token) or "expired" in exc.message:
                raise
            raise AccessDenied(
                exc.message,
                hint="this credential cannot list the account's containers (a container SAS "
                "never can): put the container in the URL, or give --workspace-file",
            ) from None
        blobs = sorted(n for n in names if guess_containers([n])[0] == n)
        if len(blobs) > 1:
            raise UsageError(
                f"storage account {self.location.account} holds {len(blobs)} workspace "
                f"blobstores ({', '.join(blobs)})",
                hint="name one in the URL (…/<container>) or give --workspace-file",
            )
        blob, art = guess_containers(names)
        if blob is None and art is None:
            raise SourceNotFound(
                f"storage account {self.location.account} holds no Azure ML workspace "
                "containers (azureml-blobstore-*, azureml, *-blobstore, *-azureml)",
                hint="give the container URL, or --workspace-file naming the containers",
            )
        if blob is not None:
            partner = self._pair_for(blob)[1]
            art = partner if partner in names else art
        return blob or "azureml-blobstore-unknown", art

    def _probe(self, container: str, *, must_exist: bool, must_read: bool) -> bool:
        """Whether ``container`` exists and can be listed (one one-item listing call).

        Unless it must, a missing or unreadable container is skipped, the reason recorded.
        """
        pages = self._service.get_container_client(container).list_blobs(results_per_page=1)
        try:
            with self._translating(_Where("listing", container=container)):
                next(iter(pages.by_page()), None)
        except (SourceNotFound, AccessDenied) as exc:
            if must_exist if isinstance(exc, SourceNotFound) else must_read:
                raise
            self.skipped_containers[container] = exc.message
            if isinstance(exc, AccessDenied):
                log.warning("skipping container %s: %s", container, exc.message)
            return False
        return True

    # -- reading --

    def list_blobs(self) -> Iterator[BlobInfo]:
        for container in self._present:
            yield from self._list_container(container)

    def _list_container(self, container: str) -> Iterator[BlobInfo]:
        client = self._service.get_container_client(container)
        with self._translating(_Where("listing", container=container)):
            for props in client.list_blobs(include=["metadata"], results_per_page=LIST_PAGE_SIZE):
                if (props.metadata or {}).get("hdi_isfolder") == "true":
                    continue  # a directory marker of a hierarchical-namespace account
                yield _blob_info(container, props)

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        blob = self._service.get_blob_client(container, name)
        with self._translating(_Where("reading", container=container, blob=name)):
            if max_bytes is None:
                return bytes(blob.download_blob(max_concurrency=1).readall())
            if max_bytes <= 0:
                blob.get_blob_properties()  # still report a missing blob
                return b""
            try:
                stream = blob.download_blob(offset=0, length=max_bytes, max_concurrency=1)
            except HttpResponseError as exc:
                if exc.status_code == 416:  # a range of an empty blob
                    return b""
                raise
            return bytes(stream.readall())

    def open_stream(self, container: str, name: str) -> BinaryIO:
        where = _Where("reading", container=container, blob=name)
        blob = self._service.get_blob_client(container, name)
        with self._translating(where):
            # Fetches the first chunk only; the rest comes as the caller reads.
            downloader = blob.download_blob(max_concurrency=1)
        raw = ChunkReader(downloader.chunks(), lambda exc: self._translate(exc, where))
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=1 << 20))


def _blob_info(container: str, props: BlobProperties) -> BlobInfo:
    md5 = props.content_settings.content_md5 if props.content_settings else None
    return BlobInfo(
        container=container,
        name=props.name,
        size=int(props.size or 0),
        etag=props.etag,
        content_md5=bytes(md5).hex() if md5 else None,
        last_modified=props.last_modified,
    )


class ChunkReader(io.RawIOBase):
    """A raw stream over a blob's chunks: memory stays at one chunk (``CHUNK_SIZE``)."""

    def __init__(
        self, chunks: Iterator[bytes], translate: Callable[[AzureError], AmlportError]
    ) -> None:
        super().__init__()
        self._chunks = chunks
        self._translate = translate
        self._buf = memoryview(b"")
        self.bytes_received = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        while not self._buf:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                return 0
            except AzureError as exc:
                raise self._translate(exc) from None
            self.bytes_received += len(chunk)
            self._buf = memoryview(chunk)
        out = memoryview(buffer).cast("B")
        n = min(len(out), len(self._buf))
        out[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n

    def close(self) -> None:
        self._chunks = iter(())
        self._buf = memoryview(b"")
        super().close()


def open_azure_source(
    location: str,
    *,
    descriptor: WorkspaceDescriptor | None = None,
    auth: StorageAuth | None = None,
    retry: RetryConfig | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
) -> AzureSource:
    """Open an Azure storage location read-only (see the module docstring for the forms).

    Raises ``UsageError`` for a bad URL or conflicting credentials, ``AccessDenied``,
    ``SourceNotFound`` (account, container), ``SourceError`` (unreachable) or
    ``TransientStorageError`` (still throttled after retries). Contacts the service at once,
    so a wrong key or name fails here rather than halfway through a walk.
    """
    auth = auth or StorageAuth()
    loc = parse_location(location)
    policy = CountingRetry(retry)
    client, loc, credential = _connect(loc, auth, _client_options(policy, max_connections))
    anonymous = not (
        auth.connection_string or auth.account_key or loc.sas_token or auth.use_default_credential
    )
    return AzureSource(
        client,
        loc,
        retry_policy=policy,
        descriptor=descriptor,
        credential=credential,
        anonymous=anonymous,
    )
