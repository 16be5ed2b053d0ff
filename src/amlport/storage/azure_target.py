"""Azure Blob Storage (a live account or Azurite) as an import/restore target.

Same URL forms, credentials (``azure_location``), retries and error mapping (``azure_errors``,
with hints for writing: Storage Blob Data Contributor, or a SAS with ``racwl``) as the source.

- ``write_stream`` reads the stream once, a block (4 MiB) at a time, and writes through
  obstore (``object_writes.BlobWriter``): a shorter stream is one Put Blob (create-only,
  ``If-None-Match: *``, unless overwriting), a longer one a multipart upload whose block
  list is committed only at the end. A stream that fails half-way leaves nothing visible
  and an existing blob unchanged. The SHA-256 computed on the way must equal the caller's
  ``amlport_sha256`` metadata, else nothing is committed. A Put Blob gets its Content-MD5
  from the service; a multipart upload gets the MD5 amlport computed of the bytes it sent,
  set on the committed blob if it is still the one written (``If-Match``).
- Through the SDK instead (``_sdk_write``): a blob longer than a block that must not replace
  one (obstore's multipart upload takes no condition, the SDK's Put Block List takes
  ``If-None-Match: *``), and a name obstore cannot address (``objects.carries``).
- ``copy_from_url``: a server-side copy (Copy Blob), waited for; no payload byte passes
  through this process. Its URL carries a SAS: never logged, printed or put in a message.

docs/design/0005-obstore-data-path.md says which call lives where, and why.
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
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
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
    AzureLocation,
    client_options,
    connect,
    is_anonymous,
    parse_location,
)
from amlport.storage.listing import list_container
from amlport.storage.object_writes import BlobWriter, PutMode
from amlport.storage.objects import carries
from amlport.storage.retry import CountingRetry, RetryConfig
from amlport.storage.target import DIGEST_METADATA, Target, TargetBlob, TargetConflict

log = logging.getLogger(__name__)

BLOCK_SIZE = 4 << 20  # memory held per write: one block
MAX_BLOCKS = 50_000  # the service's limit per blob
# A multipart upload through obstore: parts of half a block, two in flight (obstore holds a
# part until it is sent), read in pieces of a quarter: about one block held per write.
UPLOAD_CONCURRENCY = 2
CONTENT_TYPE = "application/octet-stream"  # what the SDK's uploads set
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_METADATA_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\Z")


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
    reader_class = BlobWriter  # writes through obstore (``write_stream``)

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
        if carries(name):
            return self.objects.read(container, name, None)
        blob = self._service.get_blob_client(container, name)
        with self._translating(Where("reading", container, name)):
            return bytes(blob.download_blob(max_concurrency=1).readall())

    def list_names(self, container: str, prefix: str) -> Iterator[str]:
        """Blob names under ``prefix`` taken as a path, as ``LocalTarget`` does: ``a/b``
        matches ``a/b`` and ``a/b/…`` but not ``a/bc``."""
        client = self._service.get_container_client(container)
        folder = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        listed = list_container(
            client, self._retry, self._translate, prefix=prefix, metadata=False,
            missing_ok=True,  # no container: nothing in it, as for a missing local folder
        )  # fmt: skip
        for blob in listed:
            if blob.name == prefix or blob.name.startswith(folder):
                yield blob.name

    # -- writing --

    @property
    def _writer(self) -> BlobWriter:
        writer = self.objects
        assert isinstance(writer, BlobWriter)
        return writer

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
        if not overwrite and self.stat(container, name) is not None:
            raise self._conflict(container, name)
        data = _read_full(stream, self.block_size)
        whole = len(data) < self.block_size  # the whole blob: one Put Blob
        if not carries(name) or not (whole or overwrite):
            self._sdk_write(container, name, data, stream, metadata, overwrite)
            return
        attributes = {"Content-Type": CONTENT_TYPE, **metadata}
        if whole:
            self._check_digest(metadata, hashlib.sha256(data), container, name)
            mode: PutMode = "overwrite" if overwrite else "create"
            if not self._writer.put(container, name, data, mode, attributes):
                raise self._conflict(container, name)
            return
        md5 = hashlib.md5(usedforsecurity=False)
        pieces = self._pieces(data, stream, metadata, md5, container, name)
        del data  # the pieces hold the first block now, and let it go once it is sent
        etag = self._writer.put_stream(
            container, name, pieces,
            part_size=self.block_size // UPLOAD_CONCURRENCY, concurrency=UPLOAD_CONCURRENCY,
            attributes=attributes,
        )  # fmt: skip
        self._set_md5(container, name, etag, md5.digest())

    def _pieces(
        self, first: bytes, stream: BinaryIO, metadata: dict[str, str], md5: Any,
        container: str, name: str,
    ) -> Iterator[memoryview]:  # fmt: skip
        """The stream in pieces of a quarter block, hashed; raises before the end (so the
        block list is never committed) if the SHA-256 is not the one in ``metadata``."""
        sha, size, want = hashlib.sha256(), self.block_size // 4, len(first)
        limit = MAX_BLOCKS * (self.block_size // UPLOAD_CONCURRENCY)
        data, sent = first, 0
        del first
        while data:
            view = memoryview(data)  # pieces without a copy
            for start in range(0, len(data), size):
                part = view[start : start + size]
                sha.update(part)
                md5.update(part)
                yield part
            sent += len(data)
            if sent > limit:
                raise UsageError(f"{container}/{name} is larger than {MAX_BLOCKS} blocks",
                                 hint="open the target with a larger block size")  # fmt: skip
            last = len(data) < want
            del view, part
            data = b""  # let the block go once its pieces are sent
            data = b"" if last else _read_full(stream, size)
            want = size
        self._check_digest(metadata, sha, container, name)

    def _set_md5(self, container: str, name: str, etag: str | None, md5: bytes) -> None:
        """Give a blob committed from a block list the Content-MD5 of the bytes amlport sent
        (obstore cannot send one), if it is still the blob written (``If-Match``)."""
        if not etag:  # nothing to hold the condition on: better no MD5 than another's
            log.debug("%s/%s: no ETag from the commit, no Content-MD5 set", container, name)
            return
        blob = self._service.get_blob_client(container, name)
        settings = ContentSettings(content_type=CONTENT_TYPE, content_md5=bytearray(md5))
        with self._translating(Where("writing", container, name)):
            try:
                blob.set_http_headers(
                    settings, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except ResourceModifiedError:  # replaced since: its writer set its own
                log.debug("%s/%s changed before its Content-MD5 was set", container, name)

    def _sdk_write(
        self, container: str, name: str, data: bytes, stream: BinaryIO,
        metadata: dict[str, str], overwrite: bool,
    ) -> None:  # fmt: skip
        """``write_stream`` through the SDK, from its first block ``data``: Put Blob, or Put
        Block x n and a Put Block List, each request with an MD5 the service checks."""
        blob = self._service.get_blob_client(container, name)
        sha, md5 = hashlib.sha256(), hashlib.md5()
        kwargs: dict[str, Any] = {"metadata": metadata, **_conditions(overwrite)}
        with (
            self._translating(Where("writing", container, name)),
            self._guard(container, name, overwrite),
        ):
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
