"""Azure Blob Storage (a live account or Azurite) as an import/restore target.

Same URL forms, credentials (``azure_location``), retries and error mapping (``azure_errors``,
with hints for writing: Storage Blob Data Contributor, or a SAS with ``racwl``) as the source.

- ``write_stream`` holds one block (4 MiB) at a time: a shorter stream is one Put Blob, a
  longer one staged blocks that become the blob only when the list is committed. A stream that
  fails half-way leaves nothing visible and an existing blob unchanged. Requests carry an MD5
  the service checks; the blob gets a Content-MD5, and the SHA-256 computed on the way must
  equal the caller's ``amlport_sha256`` metadata, else nothing is committed.
- ``overwrite=False`` is enforced by the service too (``If-None-Match: *``).
- ``copy_from_url``: a server-side copy (Copy Blob), waited for; no payload byte passes
  through this process. Its URL carries a SAS: never logged, printed or put in a message.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient, ContentSettings

from amlport.errors import (
    AccessDenied,
    AmlportError,
    IntegrityError,
    SourceError,
    TransientStorageError,
    UsageError,
)
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.auth import StorageAuth
from amlport.storage.azure_client import AzureClient
from amlport.storage.azure_errors import ConflictGuard, ErrorTranslator, Where, error_code
from amlport.storage.azure_location import (
    DEFAULT_MAX_CONNECTIONS,
    LIST_PAGE_SIZE,
    AzureLocation,
    client_options,
    connect,
    is_anonymous,
    parse_location,
)
from amlport.storage.retry import CountingRetry, RetryConfig
from amlport.storage.target import DIGEST_METADATA, Target, TargetBlob, TargetConflict

log = logging.getLogger(__name__)

BLOCK_SIZE = 4 << 20  # memory held per write: one block
MAX_BLOCKS = 50_000  # the service's limit per blob
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class CopyPolling:
    """How a pending server-side copy is waited for: backoff from ``initial`` to ``maximum``
    seconds between polls; after ``timeout`` seconds it is aborted."""

    initial: float = 0.2
    maximum: float = 5.0
    timeout: float = 3600.0


def normalize_digest(value: str | None) -> str | None:
    """``sha256:<hex>`` from metadata written as ``sha256:<hex>`` or bare hex; else None."""
    text = (value or "").strip().lower()
    hexpart = text.removeprefix("sha256:")
    return f"sha256:{hexpart}" if _HEX64.match(hexpart) else None


class AzureTarget(AzureClient, Target):
    """The containers of a target workspace in one storage account (``descriptor``)."""

    supports_copy = True

    def __init__(
        self,
        service: BlobServiceClient,
        location: AzureLocation,
        *,
        descriptor: WorkspaceDescriptor,
        retry_policy: CountingRetry,
        credential: Any = None,
        anonymous: bool = False,
        block_size: int = BLOCK_SIZE,
        copy_polling: CopyPolling | None = None,
    ) -> None:
        super().__init__(
            service,
            location,
            retry_policy=retry_policy,
            translator=ErrorTranslator(location, retry_policy, anonymous, for_target=True),
            credential=credential,
        )
        self.descriptor = descriptor
        self.block_size = block_size
        self.copy_polling = copy_polling or CopyPolling()
        try:
            self._check_descriptor()
            self._probe()
        except BaseException:
            self.close()
            raise

    def _check_descriptor(self) -> None:
        loc, desc = self.location, self.descriptor
        if loc.account and desc.account != loc.account:
            raise UsageError(
                f"the target location is storage account {loc.account}, but the map file's "
                f"target names account {desc.account}",
                hint="make 'target: account:' in the map file and --to name the same account",
            )
        known = {*desc.containers, *desc.datastores.values()}
        if loc.container and loc.container not in known:
            raise UsageError(
                f"container {loc.container} in the target URL is not one of the map file's "
                f"target containers ({', '.join(desc.containers)})",
                hint="give the account URL, or one of the target containers",
            )

    def _probe(self, container: str | None = None, *, missing_ok: bool = True) -> None:
        """List one blob: a wrong key or account fails here, not on the first write."""
        container = container or self.descriptor.blobstore_container
        pages = self._service.get_container_client(container).list_blobs(results_per_page=1)
        with self._translating(Where("opening", container=container)):
            try:
                next(iter(pages.by_page()), None)
            except ResourceNotFoundError as exc:
                if not missing_ok or error_code(exc) != "ContainerNotFound":
                    raise

    # -- containers --

    def ensure_containers(self) -> None:
        for container in dict.fromkeys(self.descriptor.containers):
            client = self._service.get_container_client(container)
            try:
                with self._translating(Where("creating", container=container)):
                    try:
                        client.create_container()
                    except ResourceExistsError as exc:
                        if error_code(exc) != "ContainerAlreadyExists":
                            raise
            except AccessDenied as denied:
                # A container SAS may not create containers, but the one it names may exist.
                try:
                    self._probe(container, missing_ok=False)
                except AmlportError:
                    raise denied from None

    # -- reading --

    def stat(self, container: str, name: str) -> TargetBlob | None:
        blob = self._service.get_blob_client(container, name)
        with self._translating(Where("checking", container, name)):
            try:
                props = blob.get_blob_properties()
            except ResourceNotFoundError:
                return None
        # A copy still running, failed or aborted carries our metadata but not the content:
        # nothing about it may vouch for the content (no digest, no metadata).
        complete = (props.copy.status if props.copy else None) in (None, "success")
        metadata = dict(props.metadata or {}) if complete else {}
        digest = normalize_digest(metadata.get(DIGEST_METADATA))
        return TargetBlob(container, name, int(props.size or 0), digest, metadata)

    def read_bytes(self, container: str, name: str) -> bytes:
        blob = self._service.get_blob_client(container, name)
        with self._translating(Where("reading", container, name)):
            return bytes(blob.download_blob(max_concurrency=1).readall())

    def list_names(self, container: str, prefix: str) -> Iterator[str]:
        """Blob names under ``prefix`` taken as a path, as ``LocalTarget`` does: ``a/b``
        matches ``a/b`` and ``a/b/…`` but not ``a/bc``."""
        client = self._service.get_container_client(container)
        folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        with self._translating(Where("listing", container=container)):
            try:
                names = client.list_blob_names(
                    name_starts_with=prefix or None, results_per_page=LIST_PAGE_SIZE
                )
                for name in names:
                    if name == prefix or name.startswith(folder):
                        yield name
            except ResourceNotFoundError:
                return  # no container: nothing in it, as for a missing local folder

    # -- writing --

    def write_stream(
        self,
        container: str,
        name: str,
        stream: BinaryIO,
        *,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> None:
        _check_metadata(metadata)
        blob = self._service.get_blob_client(container, name)
        if not overwrite and self.stat(container, name) is not None:
            raise self._conflict(container, name)
        sha, md5 = hashlib.sha256(), hashlib.md5()
        kwargs: dict[str, Any] = {"metadata": metadata, **_conditions(overwrite)}
        with (
            self._translating(Where("writing", container, name)),
            self._guard(container, name, overwrite),
        ):
            data = _read_full(stream, self.block_size)
            if len(data) < self.block_size:  # the whole blob: one Put Blob
                sha.update(data)
                md5.update(data)
                self._check_digest(metadata, sha, container, name)
                settings = ContentSettings(content_md5=bytearray(md5.digest()))
                blob.upload_blob(
                    data, overwrite=overwrite, content_settings=settings, validate_content=True,
                    **kwargs,
                )  # fmt: skip
                return
            tag = uuid.uuid4().hex  # unique per write: concurrent writers never share block ids
            blocks: list[BlobBlock] = []
            while data:  # one block in memory at a time; nothing visible until the commit
                if len(blocks) >= MAX_BLOCKS:
                    raise UsageError(f"{container}/{name} is larger than {MAX_BLOCKS} blocks",
                                     hint="open the target with a larger block size")  # fmt: skip
                sha.update(data)
                md5.update(data)
                block_id = base64.b64encode(f"{tag}-{len(blocks):06d}".encode()).decode()
                blob.stage_block(block_id, data, validate_content=True)
                blocks.append(BlobBlock(block_id))
                last, data = len(data) < self.block_size, b""  # release the block first
                data = b"" if last else _read_full(stream, self.block_size)
            self._check_digest(metadata, sha, container, name)
            settings = ContentSettings(content_md5=bytearray(md5.digest()))
            blob.commit_block_list(blocks, content_settings=settings, **kwargs)

    @staticmethod
    def _check_digest(metadata: dict[str, str], sha: Any, container: str, name: str) -> None:
        expected = metadata.get(DIGEST_METADATA)
        actual = "sha256:" + sha.hexdigest()
        if expected is not None and normalize_digest(expected) != actual:
            raise IntegrityError(
                f"{container}/{name}: the content read has {actual}, not the "
                f"{DIGEST_METADATA} given ({expected}); nothing was written",
                hint="the bundle object may be corrupt: run 'amlport verify'",
            )

    def _conflict(self, container: str, name: str) -> TargetConflict:
        hint = "use --on-conflict overwrite to replace it, or skip to keep it"
        return TargetConflict(f"{container}/{name} exists at {self.describe()}", hint=hint)

    def _guard(self, container: str, name: str, overwrite: bool) -> ConflictGuard:
        return ConflictGuard(None if overwrite else self._conflict(container, name))

    # -- server-side copy --

    def copy_from_url(
        self, container: str, name: str, url: str, *, metadata: dict[str, str], overwrite: bool
    ) -> None:
        """Copy the blob at ``url`` (readable by the service: a SAS URL, see
        ``AzureSource.signed_url``) into ``container/name`` and wait until it is complete.
        ``url`` is a secret: it goes to the service only, never into a message or a log."""
        _check_metadata(metadata)
        where = Where("copying into", container, name)
        blob = self._service.get_blob_client(container, name)
        if not overwrite and self.stat(container, name) is not None:
            raise self._conflict(container, name)
        with self._translating(where), self._guard(container, name, overwrite):
            started = blob.start_copy_from_url(url, metadata=metadata, **_conditions(overwrite))
            if started.get("copy_status") != "success":
                self._wait_for_copy(blob, str(started.get("copy_id")), where)

    def _wait_for_copy(self, blob: BlobClient, copy_id: str, where: Where) -> None:
        polling = self.copy_polling
        deadline = time.monotonic() + polling.timeout
        delay = polling.initial
        while True:
            time.sleep(delay)
            props = blob.get_blob_properties()
            copy = props.copy
            if copy.id and copy.id != copy_id:
                raise SourceError(f"{where.container}/{where.blob}: another copy replaced ours")
            if copy.status == "success":
                return
            if copy.status in ("failed", "aborted"):
                self._discard(blob, props.etag)
                reason = (copy.status_description or "").split("\n", 1)[0][:200]
                raise SourceError(
                    f"server-side copy into {where.container}/{where.blob} {copy.status}"
                    + (f": {reason}" if reason else ""),
                    hint="re-run; if it fails again, check the source blob",
                )
            if time.monotonic() >= deadline:
                blob.abort_copy(copy_id)
                self._discard(blob, blob.get_blob_properties().etag)
                raise TransientStorageError(
                    f"server-side copy into {where.container}/{where.blob} was still pending "
                    f"after {polling.timeout:.0f} s and was aborted",
                    hint="re-run; a large copy between regions can take long",
                )
            log.debug("copy into %s/%s: %s %s", where.container, where.blob, copy.status,
                      copy.progress)  # fmt: skip
            delay = min(delay * 2, polling.maximum)

    @staticmethod
    def _discard(blob: BlobClient, etag: str) -> None:
        """Delete what a failed copy left (an empty or partial blob); best effort."""
        try:  # only what the failed copy left, not a blob written since
            blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)
        except AzureError:
            log.debug("could not delete the failed copy's destination blob")


def _conditions(overwrite: bool) -> dict[str, Any]:
    """``If-None-Match: *`` unless overwriting: the service refuses to replace a blob."""
    return {} if overwrite else {"match_condition": MatchConditions.IfMissing}


def _check_metadata(metadata: dict[str, str]) -> None:
    for key, value in metadata.items():
        if not _METADATA_KEY.match(key) or not value.isascii():
            raise UsageError(
                f"metadata {key!r} cannot be stored on a blob",
                hint="metadata names must be identifiers and values ASCII",
            )


def _read_full(stream: BinaryIO, size: int) -> bytes:
    """Up to ``size`` bytes; fewer only at the end of the stream (short reads are retried)."""
    first = stream.read(size)
    if not first or len(first) == size:
        return bytes(first or b"")
    parts, got = [first], len(first)
    while got < size:
        more = stream.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


def open_azure_target(
    location: str,
    *,
    descriptor: WorkspaceDescriptor,
    auth: StorageAuth | None = None,
    retry: RetryConfig | None = None,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    block_size: int = BLOCK_SIZE,
    copy_polling: CopyPolling | None = None,
) -> AzureTarget:
    """Open an Azure storage location as an import target (same URL forms and credentials as
    ``open_azure_source``). ``descriptor`` (the map file's ``target``) names the account and
    containers. Contacts the service at once: a wrong key fails here (``AccessDenied``)."""
    auth = auth or StorageAuth()
    policy = CountingRetry(retry)
    loc = parse_location(location)
    client, loc, credential = connect(loc, auth, client_options(policy, max_connections))
    return AzureTarget(
        client,
        loc,
        descriptor=descriptor,
        retry_policy=policy,
        credential=credential,
        anonymous=is_anonymous(loc, auth),
        block_size=block_size,
        copy_polling=copy_polling,
    )
