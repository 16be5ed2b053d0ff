"""Azure Blob Storage (a live account or Azurite) as a read-only workspace source.

Locations are parsed and credentials chosen in ``azure_location`` (the URL forms are listed
there), and SDK errors are mapped in ``azure_errors``; the target (``azure_target``) shares
both. A workspace descriptor given by the caller names the containers and skips discovery.

Read-only by construction: besides never calling a write API, every client carries a request
hook that refuses any HTTP method but GET and HEAD (``ReadOnlyViolation``) before it leaves
the process. The one exception is Get User Delegation Key (a POST that creates no data), which
``signed_url`` needs to sign a read SAS with an Entra identity.
"""

from __future__ import annotations

import io
import logging
from collections import deque
from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import parse_qs, urlsplit

from amlport.errors import (
    AccessDenied,
    AmlportError,
    ReadOnlyViolation,
    SourceNotFound,
    UsageError,
)
from amlport.model.workspace import ARTIFACT_CONTAINER, WorkspaceDescriptor, guess_containers
from amlport.secrets import install_log_redaction
from amlport.storage.auth import StorageAuth
from amlport.storage.azure_client import AzureClient
from amlport.storage.azure_errors import ErrorTranslator, Where, is_sdk_error
from amlport.storage.azure_list import ListClient, own_listing
from amlport.storage.azure_location import (
    AUTHORITY_HOSTS,  # noqa: F401 - re-exported
    CONNECT_TIMEOUT_S,  # noqa: F401 - re-exported
    CREDENTIAL_HINT,  # noqa: F401 - re-exported
    DEFAULT_MAX_CONNECTIONS,
    READ_TIMEOUT_S,  # noqa: F401 - re-exported
    AzureLocation,
    BlobSigner,
    client_options,
    connect,
    is_anonymous,
    is_service_sas,
    parse_location,
    sas_expiry,  # noqa: F401 - re-exported
)
from amlport.storage.base import BlobInfo, Source
from amlport.storage.listing import ListingAhead, list_pages
from amlport.storage.objects import carries
from amlport.storage.retry import CountingRetry, RetryConfig
from amlport.streams import ChunkStream

if TYPE_CHECKING:
    from azure.core.exceptions import AzureError
    from azure.core.pipeline import PipelineRequest
    from azure.storage.blob import BlobServiceClient

log = logging.getLogger(__name__)

CHUNK_SIZE = 4 << 20  # the most of a stream held in memory (received, not yet read)
# obstore hands a streamed body over in pieces of at least this (one GET per blob). Smaller
# than the 1 MiB a transfer reads at once, so ``open_stream``'s reader (its buffer this size)
# hands each piece straight to the caller's buffer instead of copying it twice, and each
# piece stays in the core's cache (docs/design/0005, "CPU per MiB of large models (E,
# session 8)").
STREAM_PIECE = 256 << 10
SAFE_METHODS = frozenset({"GET", "HEAD"})
# Containers listed at once (``AzureSource.list_blobs``): each holds up to
# ``listing.AHEAD_PAGES`` parsed pages ahead of its reader, so a source with hundreds of
# containers must not start them all.
LISTINGS_AHEAD = 4


def _refuse_writes(request: PipelineRequest) -> None:
    """Request hook on every source client: only GET and HEAD may leave the process."""
    method = request.http_request.method.upper()
    if method in SAFE_METHODS or _is_delegation_key_request(method, request.http_request.url):
        return
    path = urlsplit(request.http_request.url).path
    raise ReadOnlyViolation(f"refused {method} {path}: an amlport source is read-only")


def _is_delegation_key_request(method: str, url: str) -> bool:
    """POST ?restype=service&comp=userdelegationkey: returns a signing key, changes nothing."""
    query = parse_qs(urlsplit(url).query)
    return (
        method == "POST"
        and query.get("restype") == ["service"]
        and query.get("comp") == ["userdelegationkey"]
    )


def _source_options(policy: CountingRetry, max_connections: int) -> dict[str, Any]:
    options = client_options(policy, max_connections)
    options["max_single_get_size"] = CHUNK_SIZE
    options["max_chunk_get_size"] = CHUNK_SIZE
    options["raw_request_hook"] = _refuse_writes
    return options


# --- the source ------------------------------------------------------------------------------


class AzureSource(AzureClient, Source):
    """A workspace's containers in one storage account: listed, discovered and signed
    through azure-storage-blob, read through obstore (``AzureClient.objects``).

    ``retry_count`` says how many times calls were retried (throttling or broken
    connections); ``skipped_containers`` names workspace containers that could not be read
    and why (missing, or not readable with this credential).
    """

    def __init__(
        self,
        service: BlobServiceClient | None,
        location: AzureLocation,
        *,
        retry_policy: CountingRetry,
        descriptor: WorkspaceDescriptor | None = None,
        credential: Any = None,
        anonymous: bool = False,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        lister: ListClient | None = None,
        connector: Callable[[], tuple[BlobServiceClient, Any]] | None = None,
    ) -> None:
        super().__init__(
            service,
            location,
            retry_policy=retry_policy,
            translator=ErrorTranslator(location, retry_policy, anonymous),
            credential=credential,
            max_connections=max_connections,
            connector=connector,
        )
        # List Containers and List Blobs through amlport's own client (``azure_list``) for
        # a key, a SAS or anonymous access; through the SDK's pipeline otherwise.
        self._lister = lister
        self._anonymous = anonymous
        self._signer_made: BlobSigner | None = None
        self.skipped_containers: dict[str, str] = {}
        self._present: tuple[str, ...] = ()
        # Containers the account's listing named, when the credential is its key: each one
        # exists and can be listed, so no probe asks again (``_probe``).
        self._readable: frozenset[str] = frozenset()
        self._listing: list[ListingAhead[BlobInfo]] | None = None  # ``start_listing``
        try:
            self.descriptor = self._resolve(descriptor)
        except BaseException:
            self.close()
            raise

    @property
    def _signer(self) -> BlobSigner:
        if self._signer_made is None:
            self._signer_made = BlobSigner(self._service, self.location, self._anonymous)
        return self._signer_made

    def _sdk_credential(self) -> Any:
        if self._lister is None:
            return self._service.credential
        return _Key(self._lister.account_key)  # obstore signs as the listing does, no SDK

    @property
    def blob_service_client(self) -> BlobServiceClient:
        """The read-only client (GET/HEAD only) for data-plane facts such as the audit's."""
        return self._service

    @property
    def containers(self) -> tuple[str, ...]:
        """The workspace containers that exist and are listed, blobstore first."""
        return self._present

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
        where = Where("listing the containers of")
        try:
            if self._lister is not None:
                names = self._lister.list_containers()
            else:
                with self._translating(where):
                    names = [c.name for c in self._service.list_containers()]
        except AccessDenied as exc:
            if not is_service_sas(self.location.sas_token) or "expired" in exc.message:
                raise
            raise AccessDenied(
                exc.message,
                hint="this credential cannot list the account's containers (a container SAS "
                "never can): put the container in the URL, or give --workspace-file",
            ) from None
        if self._keyed():
            self._readable = frozenset(names)
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
        No call for a container the account's listing named when the credential is the
        account's key (``_discover_pair``): it exists, and the key reads every container.
        Two round trips fewer before the listing starts (docs/design/0005, "Start-up of the
        Azure re-backup and scan (E, session 9)").
        """
        if container in self._readable:
            return True
        try:
            if self._lister is not None:
                next(self._lister.pages(container, page_size=1, metadata=False), None)
            else:
                pages = self._service.get_container_client(container).list_blobs(results_per_page=1)
                with self._translating(Where("listing", container=container)):
                    next(iter(pages.by_page()), None)
        except (SourceNotFound, AccessDenied) as exc:
            if must_exist if isinstance(exc, SourceNotFound) else must_read:
                raise
            self.skipped_containers[container] = exc.message
            if isinstance(exc, AccessDenied):
                log.warning("skipping container %s: %s", container, exc.message)
            return False
        return True

    def _keyed(self) -> bool:
        """Is the credential the account's key (Shared Key: every container readable)?"""
        if self._lister is not None:
            return self._lister.has_key
        return bool(getattr(self._service.credential, "account_key", None))

    # -- reading --

    def start_listing(self) -> None:
        if self._listing is None:  # the first containers at once, each on a thread of its own
            self._listing = [self._ahead(c) for c in self._present[:LISTINGS_AHEAD]]

    def _ahead(self, container: str) -> ListingAhead[BlobInfo]:
        return ListingAhead(partial(self._pages, container))

    def list_blobs(self) -> Iterator[BlobInfo]:
        # Fetched and parsed pages ahead of the caller (``listing.ListingAhead``), the
        # containers in their order, one after the other; at most ``LISTINGS_AHEAD`` listed
        # at once, so the pages held ahead stay bounded however many containers there are.
        self.start_listing()
        started, self._listing = self._listing or [], None
        return self._chain(started, self._present[len(started) :])

    def _chain(
        self, started: list[ListingAhead[BlobInfo]], rest: tuple[str, ...]
    ) -> Iterator[BlobInfo]:
        window, waiting = deque(started), deque(rest)
        try:
            while window:
                listing = window[0]
                yield from listing
                window.popleft()
                if waiting:  # the next container starts as this one is done
                    window.append(self._ahead(waiting.popleft()))
        finally:  # an error or an abandoned read: the containers not reached stop too
            for listing in window:
                listing.close()

    def _pages(self, container: str) -> Iterator[list[BlobInfo]]:
        # List Blobs through the SDK's pipeline, parsed by amlport (``listing``): a fifth of
        # the SDK's client CPU, Content-MD5 and every legal name kept.
        if self._lister is not None:
            pages = self._lister.pages(container)
        else:
            client = self._service.get_container_client(container)
            pages = list_pages(client, self._retry, self._translate)
        for page in pages:
            yield [
                BlobInfo(container, item.name, item.size, item.etag, item.content_md5)
                for item in page
                if not item.is_folder  # a directory marker of a hierarchical namespace
            ]

    def close(self) -> None:
        for listing in self._listing or ():  # started and never read
            listing.close()
        self._listing = None
        if self._lister is not None:
            self._lister.close()
        super().close()

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        if not carries(name):
            return self._sdk_read(container, name, max_bytes)
        return self.objects.read(container, name, max_bytes)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        # Sends the GET now (a missing blob fails here); the body streams as the caller reads.
        where = Where("reading", container, name)
        if carries(name):
            chunks: Iterator[Any] = self.objects.chunks(container, name, STREAM_PIECE)
        else:
            with self._translating(where):
                downloader = self._service.get_blob_client(container, name).download_blob(
                    max_concurrency=1
                )
            chunks = downloader.chunks()
        raw = ChunkReader(chunks, lambda exc: self._translate(exc, where))
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=STREAM_PIECE))

    def _sdk_read(self, container: str, name: str, max_bytes: int | None) -> bytes:
        """A blob obstore cannot address (``objects.carries``), read through the SDK."""
        blob = self._service.get_blob_client(container, name)
        with self._translating(Where("reading", container, name)):
            if max_bytes is None:
                return bytes(blob.download_blob(max_concurrency=1).readall())
            if max_bytes <= 0:
                blob.get_blob_properties()  # still report a missing blob
                return b""
            if blob.get_blob_properties().size == 0:  # a range of an empty blob is a 416
                return b""
            return bytes(
                blob.download_blob(offset=0, length=max_bytes, max_concurrency=1).readall()
            )

    # -- server-side copies --

    def signed_url(self, container: str, name: str, *, minutes: int = 60) -> str:
        """A read-only URL of one blob, valid for ``minutes``, for a server-side copy.

        Signed with the source's own credential: an account key signs a blob SAS with read
        permission only; an Entra identity (``--credential default``) signs with a user
        delegation key; a SAS the source was opened with is reused when it grants read; an
        anonymous source gives the plain URL. Anything else is a ``UsageError`` naming the
        credential needed. Nothing is written to the source.

        The URL is a secret for its lifetime: hand it to the target's storage service only
        (``Target.copy_from_url``). amlport never prints, logs or stores it, and no message
        is built from it.
        """
        url = self._service.get_blob_client(container, name).url.split("?", 1)[0]
        with self._translating(Where("signing a read URL for", container, name)):
            sas = self._signer.sign(container, name, minutes)
        return f"{url}?{sas}" if sas else url


class ChunkReader(ChunkStream):
    """A raw stream over a blob's chunks: memory stays at one chunk (``CHUNK_SIZE``); storage
    errors become amlport errors, received bytes are counted."""

    def __init__(
        self, chunks: Iterator[Any], translate: Callable[[AzureError], AmlportError]
    ) -> None:
        super().__init__(chunks)
        self._translate = translate
        self.bytes_received = 0

    def next_chunk(self) -> bytes | None:
        try:
            chunk = next(self._chunks)
        except StopIteration:
            return None
        except Exception as exc:
            if not is_sdk_error(exc):
                raise
            raise self._translate(cast("AzureError", exc)) from None
        self.bytes_received += len(chunk)
        return chunk


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
    install_log_redaction()  # the SDK and urllib3 log request URLs (SAS included) at DEBUG
    auth = auth or StorageAuth()
    loc = parse_location(location)
    policy = CountingRetry(retry)
    own = own_listing(loc, auth, policy)
    if own is not None:  # listed by amlport's own client; the SDK loads if something needs it
        lister, resolved, anonymous = own

        def connector() -> tuple[BlobServiceClient, Any]:
            client, _, credential = connect(loc, auth, _source_options(policy, max_connections))
            return client, credential

        return AzureSource(
            None,
            resolved,
            retry_policy=policy,
            descriptor=descriptor,
            anonymous=anonymous,
            max_connections=max_connections,
            lister=lister,
            connector=connector,
        )
    client, loc, credential = connect(loc, auth, _source_options(policy, max_connections))
    anonymous = is_anonymous(loc, auth)
    return AzureSource(
        client,
        loc,
        retry_policy=policy,
        descriptor=descriptor,
        credential=credential,
        anonymous=anonymous,
        max_connections=max_connections,
    )


class _Key:
    """The account key as ``store_options`` reads it from an SDK credential."""

    def __init__(self, account_key: str | None) -> None:
        self.account_key = account_key

    def __repr__(self) -> str:
        return "_Key(***)"
