"""Azure storage locations and credentials, shared by the source (``azure.py``) and the target
(``azure_target.py``).

Locations (a SAS may follow any of them as the query string)::

    https://<account>.blob.<suffix>               whole account: find the workspace containers
    https://<account>.blob.<suffix>/<container>   that container is the blobstore
    az://<container>                              account from the connection string
    az://<container>@<account>.blob.<suffix>      (abfs[s]:// with .dfs. too, as fsspec writes)
    http://127.0.0.1:<port>/<account>[/<container>]   Azurite / emulators (path-style)

``<suffix>`` is ``core.windows.net`` or a sovereign cloud's (``core.chinacloudapi.cn``,
``core.usgovcloudapi.net``).

Nothing here contacts the service, and no credential is ever part of a message: the SAS of a
location is kept apart (``AzureLocation.sas_token``, hidden from ``repr``) and ``display``
shows the location without it.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from amlport.errors import UsageError
from amlport.model.workspace import DEFAULT_ENDPOINT
from amlport.storage.auth import StorageAuth
from amlport.storage.retry import CountingRetry

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, UserDelegationKey

# Nothing at the top of this module imports azure-core, azure-storage-blob or requests: the
# functions that build SDK clients import them (``azure_transport``), so a source listed by
# amlport's own client (``azure_list``) parses its location and credential without them.

DEFAULT_MAX_CONNECTIONS = 16  # >= the default read_many workers, with room for listings
CONNECT_TIMEOUT_S = 20
# Blobs per listing request. The service allows 5,000, but the SDK parses a whole page into
# objects at once, and the process keeps that as its high-water mark after they are freed:
# listing 100k blobs from Azurite raised peak RSS by 83 MB at 5,000 per page, 34 MB at 2,000
# and 17 MB at 1,000 — for 5x the round trips (39 s -> 48 s against Azurite, which spends
# ~90 ms per page; a few seconds per 100k blobs against Azure). docs/design/0003-scale.md.
READ_TIMEOUT_S = 120
CREDENTIAL_HINT = "give --connection-string, --account-key, --sas-token or --credential default"
AUTHORITY_HOSTS = {  # DefaultAzureCredential must sign in where the storage lives
    "core.chinacloudapi.cn": "login.chinacloudapi.cn",
    "core.usgovcloudapi.net": "login.microsoftonline.us",
}

_VHOST = re.compile(
    r"^(?P<account>[a-z0-9]+)\.(?:privatelink\.)?(?P<service>blob|dfs)\.(?P<suffix>[a-z0-9.-]+)\Z"
)
_CONTAINER = re.compile(r"^(\$root|\$logs|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})\Z")


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
        return parse_http(scheme, rest, sas)
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
    return replace(parse_http("https", host, sas), container=_container_name(container))


def parse_http(scheme: str, rest: str, sas: str | None) -> AzureLocation:
    """``rest`` is what follows ``<scheme>://``: host[:port][/<account>][/<container>]."""
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


def client_options(policy: CountingRetry, max_connections: int) -> dict[str, Any]:
    """Transport and retry options every amlport client shares (callers add their own)."""
    from amlport.storage.azure_transport import client_options as options

    return options(policy, max_connections, CONNECT_TIMEOUT_S, READ_TIMEOUT_S)


def one_credential(loc: AzureLocation, auth: StorageAuth) -> str | None:
    """Refuse two credentials at once; return the SAS (option or URL) if one was given."""
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


def default_credential(loc: AzureLocation) -> Any:
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


def is_anonymous(loc: AzureLocation, auth: StorageAuth) -> bool:
    """No credential at all (``loc`` as resolved by ``connect``)."""
    return not (
        auth.connection_string or auth.account_key or loc.sas_token or auth.use_default_credential
    )


def connect(
    loc: AzureLocation, auth: StorageAuth, options: dict[str, Any]
) -> tuple[BlobServiceClient, AzureLocation, Any]:
    """The service client, the location resolved against it, and a credential to close."""
    sas = one_credential(loc, auth)
    if auth.connection_string:
        return _from_connection_string(loc, auth.connection_string, options)
    if loc.account is None or loc.host is None:
        raise UsageError(
            f"{loc.display} does not say which storage account to use",
            hint="give --connection-string, or use https://<account>.blob.<suffix>/<container>",
        )
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
    from azure.storage.blob import BlobServiceClient

    credential: Any = None
    if auth.account_key:
        credential = AzureNamedKeyCredential(loc.account, auth.account_key)
    elif sas:
        credential = AzureSasCredential(sas)
    elif auth.use_default_credential:
        credential = default_credential(loc)
    try:
        client = BlobServiceClient(loc.account_url, credential=credential, **options)
    except (ValueError, TypeError) as exc:
        raise UsageError(f"cannot use this credential with {loc.display}: {exc}") from None
    return client, replace(loc, sas_token=sas), credential


def _from_connection_string(
    loc: AzureLocation, conn_str: str, options: dict[str, Any]
) -> tuple[BlobServiceClient, AzureLocation, Any]:
    from azure.storage.blob import BlobServiceClient

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
        resolved = parse_http(client.scheme, client.primary_hostname, None)
    except UsageError:  # a custom BlobEndpoint (custom domain): keep it as it is
        resolved = AzureLocation(client.scheme, client.primary_hostname, client.account_name)
    sas = sas_of_connection_string(conn_str)
    return client, replace(resolved, container=loc.container, sas_token=sas), None


def sas_of_connection_string(conn_str: str) -> str | None:
    for part in conn_str.split(";"):
        key, _, value = part.partition("=")
        if key.strip().lower() == "sharedaccesssignature":
            return value.strip() or None
    return None


def is_service_sas(sas: str | None) -> bool:
    """A service SAS (``sr=``: one container or blob) cannot list an account's containers."""
    return bool(sas) and "sr" in parse_qs((sas or "").lstrip("?"))


def sas_fields(sas: str | None) -> dict[str, str]:
    """The non-secret fields of a SAS (``sp``, ``sr``, ``srt``, ``ss``, ``se``…), no ``sig``."""
    if not sas:
        return {}
    fields = {k: v[0] for k, v in parse_qs(sas.lstrip("?")).items() if v}
    fields.pop("sig", None)
    return fields


def sas_expiry(sas: str | None) -> datetime | None:
    """The ``se`` (signed expiry) of a SAS token: not secret, and it explains a 403."""
    value = sas_fields(sas).get("se")
    if not value:
        return None
    try:
        expiry = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return expiry if expiry.tzinfo else expiry.replace(tzinfo=timezone.utc)


# --- signing (server-side copies) ------------------------------------------------------------

SAS_START_SKEW = timedelta(minutes=15)  # tolerate clock skew between us and the service
SIGN_HINT = (
    "a server-side copy needs a source credential that can sign a read SAS: an account key "
    "(--account-key or a connection string), --credential default (an Entra identity with "
    "Storage Blob Data Reader, which may create user delegation keys), or a SAS that grants "
    "read (sp with r; an account SAS also needs srt with o)"
)


class BlobSigner:
    """Makes short-lived read-only SAS tokens for single blobs of one account.

    How depends on the credential the client was opened with: an account key signs a service
    SAS; a token credential asks the service for a user delegation key (cached and reused
    while it stays valid) and signs with it; a SAS that already grants read is reused as it
    is; an anonymous client needs none (``None``). The tokens are secrets: callers put them in
    a URL for the storage service only and never print, log or store them.
    """

    def __init__(self, service: BlobServiceClient, loc: AzureLocation, anonymous: bool) -> None:
        self._service = service
        self._loc = loc
        self._anonymous = anonymous
        self._lock = threading.Lock()
        self._delegation_key: UserDelegationKey | None = None
        self._delegation_expiry = datetime.min.replace(tzinfo=timezone.utc)

    def sign(self, container: str, name: str, minutes: int) -> str | None:
        if minutes <= 0:
            raise UsageError("a signed URL must live at least a minute")
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        now = datetime.now(timezone.utc)
        start, expiry = now - SAS_START_SKEW, now + timedelta(minutes=minutes)
        credential = self._service.credential
        read = BlobSasPermissions(read=True)
        account = self._service.account_name or self._loc.account or ""
        if getattr(credential, "account_key", None):
            return generate_blob_sas(
                account, container, name, account_key=credential.account_key,
                permission=read, start=start, expiry=expiry,
            )  # fmt: skip
        if hasattr(credential, "get_token"):
            key = self._user_delegation_key(start, expiry)
            return generate_blob_sas(
                account, container, name, user_delegation_key=key,
                permission=read, start=start, expiry=expiry,
            )  # fmt: skip
        if self._loc.sas_token:
            return self._reusable_sas(self._loc.sas_token, now)
        if self._anonymous:
            return None  # the source reads anonymously, so can the service
        raise UsageError("cannot sign a read URL with this credential", hint=SIGN_HINT)

    def _user_delegation_key(self, start: datetime, expiry: datetime) -> UserDelegationKey:
        with self._lock:
            if self._delegation_key is None or self._delegation_expiry < expiry:
                # One key for a day of copies (the service allows up to 7 days).
                until = max(expiry, start + timedelta(days=1))
                self._delegation_key = self._service.get_user_delegation_key(start, until)
                self._delegation_expiry = until
            return self._delegation_key

    @staticmethod
    def _reusable_sas(sas: str, now: datetime) -> str:
        fields = sas_fields(sas)
        grants_read = "r" in fields.get("sp", "")
        if "sr" not in fields:  # an account SAS: must cover the blob service and objects
            grants_read = grants_read and "b" in fields.get("ss", "b")
            grants_read = grants_read and "o" in fields.get("srt", "")
        if not grants_read:
            raise UsageError(
                "the source SAS does not grant read, so it cannot sign a copy source",
                hint=SIGN_HINT,
            )
        expiry = sas_expiry(sas)
        if expiry is not None and expiry <= now:
            raise UsageError(
                f"the source SAS expired at {expiry:%Y-%m-%d %H:%M} UTC", hint=SIGN_HINT
            )
        return sas.lstrip("?")
