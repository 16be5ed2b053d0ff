"""A repository in an Azure blob container (off-site backups): ``AzureStore``.

The layout is the local one, as blob names under an optional prefix (``<prefix>/config.json``,
``<prefix>/objects/sha256/ab/<hex>``, ``<prefix>/snapshots/<id>.json``, ``<prefix>/locks/…``,
``<prefix>/index/…``). Locations, credentials, retries and error messages are the storage
layer's (``azure_location``, ``retry``, ``azure_errors``), as for sources and targets.

- Write-once: objects, snapshots and ``config.json`` are written with ``If-None-Match: *``
  (obstore ``put(mode="create")``), so the service itself refuses to replace one; a writer
  that loses a race keeps the winner's blob (same name, same bytes).
- Objects of any size with bounded memory: up to one block (4 MiB) in memory; a longer
  object whose hash is not known in advance is spooled to a local temp file while it is
  hashed, then sent by an obstore multipart upload (re-hashed on the way: a changed spool is
  never committed, ``UPLOAD_CONCURRENCY`` blocks in flight), a HEAD checks the stored size,
  and it is not uploaded at all when that object is already stored. When the digest is known
  (unpack), blocks go straight to the blob (SDK Put Block with MD5) and are committed only if
  the hash matches. Uncommitted blocks are invisible and the service discards them.
- Through obstore (``AzureClient.objects``, a ``BlobWriter`` here): reads (one GET per blob,
  streamed, resumed where it broke; ``ObjectStore`` re-hashes what it reads) and writes
  (Put Blob, conditional or not; multipart). The SDK keeps listing, deletes (``If-Match``
  on an etag), the known-digest block staging and container creation
  (docs/design/0005-obstore-data-path.md says why, and what stands in for Content-MD5).
- Locks: a blob per holder; stale removal is ``If-Match: <etag read>`` (SDK) and refresh is
  ``If-Match: *`` (obstore, ``put(mode={"e_tag": "*"})``; see ``lock.py``).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import tempfile
import uuid
from collections.abc import Iterator
from typing import Any, BinaryIO, cast

import obstore
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import BlobBlock, BlobClient, BlobServiceClient, ContentSettings
from obstore.exceptions import BaseError

from amlport.bundle.files import TooLarge
from amlport.bundle.store import RepoStore, Staging, Stored
from amlport.errors import (
    AccessDenied,
    AmlportError,
    IntegrityError,
    SourceError,
    SourceNotFound,
    UsageError,
)
from amlport.storage.azure import STREAM_PIECE, ChunkReader
from amlport.storage.azure_client import AzureClient
from amlport.storage.azure_errors import (
    CONFLICT_CODES,
    ErrorTranslator,
    Failure,
    Where,
    error_code,
)
from amlport.storage.azure_location import AzureLocation
from amlport.storage.listing import list_container
from amlport.storage.object_writes import BlobWriter
from amlport.storage.retry import CountingRetry

BLOCK_SIZE = 4 << 20  # memory held per object write, and per ranged read
MAX_BLOCKS = 50_000  # the service's limit per blob
# Parts of one multipart upload in flight at once: memory per object write is at most this
# many blocks (obstore holds each part until it is sent).
UPLOAD_CONCURRENCY = 2
DENIED_HINT = (
    "give the repository's credential: --repo-connection-string, --repo-account-key, "
    "--repo-sas-token or --repo-credential default (or $AMLPORT_REPO_CONNECTION_STRING, "
    "$AMLPORT_REPO_ACCOUNT_KEY, $AMLPORT_REPO_SAS_TOKEN, $AMLPORT_REPO_CREDENTIAL); "
    "a command that writes (export, backup, forget, unpack) needs the Storage Blob "
    "Data Contributor role or a SAS with sp=racwdl (the readers: rl)"
)
Blocks = list[BlobBlock]  # (``list`` is a method name inside AzureStore)


class AzureStore(AzureClient, RepoStore):
    """Blobs of one container under ``prefix`` (``""`` or ``a/b``, no slash at either end).

    Shares the storage layer's Azure client (``AzureClient``: close, retry counting, error
    translation, the obstore data path); its errors carry hints about the repository options.
    """

    reader_class = BlobWriter  # the only Azure client whose obstore path writes

    def __init__(
        self,
        service: BlobServiceClient,
        location: AzureLocation,
        prefix: str = "",
        *,
        retry_policy: CountingRetry,
        credential: Any = None,
        anonymous: bool = False,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        if location.container is None:
            raise UsageError("a repository URL must name a container")
        super().__init__(
            service,
            location,
            retry_policy=retry_policy,
            translator=_RepoErrors(location, retry_policy, anonymous, for_target=True),
            credential=credential,
        )
        self.container = location.container
        self.prefix = f"{prefix}/" if prefix else ""
        self.block_size = block_size
        self._client = service.get_container_client(self.container)

    @property
    def display(self) -> str:
        return f"{self.location.display}/{self.prefix}".rstrip("/")

    def describe(self) -> str:
        return self.display

    def name(self, key: str) -> str:
        """The blob name of ``key``."""
        return self.prefix + key

    def blob(self, key: str) -> BlobClient:
        return self._client.get_blob_client(self.name(key))

    def _tr(self, action: str, key: str | None = None) -> contextlib.AbstractContextManager[None]:
        blob = self.name(key) if key is not None else None
        return self._translate.translating(Where(action, self.container, blob))

    # -- the repository as a whole --

    def root_exists(self) -> bool:
        pages = self._client.list_blob_names(
            name_starts_with=self.prefix or None, results_per_page=1
        )
        with self._tr("opening"):
            try:
                next(iter(pages.by_page()), None)
            except ResourceNotFoundError:
                return False
        return True

    def prepare_init(self) -> None:
        try:
            with self._tr("creating"), contextlib.suppress(ResourceExistsError):
                self._client.create_container()
        except AccessDenied:  # a container SAS may not create one, but it may exist
            if not self.root_exists():
                raise
        if next(self.list(""), None) is not None:
            where = f"{self.location.display}/{self.prefix}".rstrip("/")
            raise UsageError(
                f"{where} already holds blobs that are not an amlport repository",
                hint="give an empty container, or a new prefix: az://<container>/<prefix>",
            )

    # -- small values --

    def read(self, key: str, *, limit: int) -> bytes:
        return self.read_stored(key, limit=limit).data

    def read_stored(self, key: str, *, limit: int) -> Stored:
        name = self.name(key)
        result = self.objects.fetch(self.container, name)  # through obstore
        if result is None:
            raise FileNotFoundError(name)
        meta = result.meta
        self._bounded(key, meta["size"], limit)  # before reading the rest into memory
        data = b"".join(self.objects.rest_of(self.container, name, result, STREAM_PIECE))
        return Stored(data, meta["last_modified"], meta["e_tag"])

    def _bounded(self, key: str, size: int | None, limit: int | None) -> None:
        if limit is not None and size is not None and size > limit:
            raise TooLarge(f"{self.display}/{key}", size, limit)

    @property
    def writes(self) -> BlobWriter:
        """The obstore data path of this store, writes included (``reader_class``)."""
        return cast(BlobWriter, self.objects)

    def write(self, key: str, data: bytes) -> None:
        self.writes.put(self.container, self.name(key), data, "overwrite")

    def create(self, key: str, data: bytes) -> bool:
        return self.writes.put(self.container, self.name(key), data, "create")

    def put_once(self, key: str, data: bytes) -> bool:
        return self.create(key, data)

    def replace_existing(self, key: str, data: bytes) -> bool:
        return self.writes.put(self.container, self.name(key), data, "existing")

    def delete(self, key: str, *, version: str | None = None) -> bool:
        kwargs: dict[str, Any] = {}
        if version is not None:
            kwargs = {"etag": version, "match_condition": MatchConditions.IfNotModified}
        with self._tr("deleting", key):
            try:
                self.blob(key).delete_blob(**kwargs)
            except ResourceNotFoundError:
                return True
            except HttpResponseError as exc:
                if exc.status_code != 412:
                    raise
                return False  # changed since it was read
        return True

    def size(self, key: str) -> int | None:
        with self._tr("checking", key):
            try:
                props = self.blob(key).get_blob_properties()
            except ResourceNotFoundError:
                return None
        return int(props.size or 0)

    def list(self, prefix: str) -> Iterator[str]:
        for name, _ in self.list_sizes(prefix):
            yield name

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        # amlport's List Blobs parser (storage/listing.py): a fifth of the SDK's client CPU.
        start = self.name(prefix)
        listed = list_container(
            self._client, self._retry, self._translate, prefix=start, metadata=False,
            missing_ok=True,  # no container: nothing in it
        )  # fmt: skip
        for blob in listed:
            yield blob.name[len(start) :], blob.size

    # -- objects --

    def open(self, key: str, *, limit: int | None = None) -> BinaryIO:
        name = self.name(key)
        where = Where("reading", self.container, name)
        # Through obstore: sends the GET now, the body streams as the caller reads.
        result = self.objects.fetch(self.container, name)
        if result is None:
            raise FileNotFoundError(name)
        self._bounded(key, result.meta["size"], limit)
        chunks = self.objects.rest_of(self.container, name, result, STREAM_PIECE)
        raw = ChunkReader(chunks, lambda exc: self._translate(exc, where))
        return cast(BinaryIO, io.BufferedReader(raw, buffer_size=self.block_size))

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """One ranged GET (a pack's object, ``packs.py``): never more than ``length`` bytes."""
        name = self.name(key)
        if length == 0:
            if self.size(key) is None:
                raise FileNotFoundError(name)
            return b""
        store = self.objects.store(self.container)

        def get() -> bytes | None:
            try:
                return bytes(obstore.get_range(store, name, start=offset, length=length))
            except FileNotFoundError:  # an answer, not a failure (the retrier would say
                return None  # "not found in storage account": a missing pack is named)
            except BaseError as exc:
                if "status code: 416" in str(exc):  # the range starts past the end
                    return b""
                raise

        data = self.objects._retrying.call(Where("reading", self.container, name), get)
        if data is None:
            raise FileNotFoundError(name)
        return data

    @contextlib.contextmanager
    def staging(self, folder: str, hint: str | None = None) -> Iterator[Staging]:
        stage = _AzureStaging(self, hint)
        try:
            yield stage
        finally:
            stage.close()

    def stage_block(self, blob: BlobClient, tag: str, n: int, data: bytes) -> BlobBlock:
        if n >= MAX_BLOCKS:
            raise UsageError(f"{blob.blob_name} is larger than {MAX_BLOCKS} blocks")
        block_id = base64.b64encode(f"{tag}-{n:06d}".encode()).decode()
        with self._translate.translating(Where("writing", self.container, blob.blob_name)):
            blob.stage_block(block_id, data, validate_content=True)
        return BlobBlock(block_id)

    def commit_blocks(self, key: str, blocks: Blocks, md5: bytes) -> None:
        """Make staged blocks the blob ``key`` unless it exists (then they are dropped)."""
        settings = ContentSettings(content_md5=bytearray(md5))
        with self._tr("writing", key):
            try:
                self.blob(key).commit_block_list(
                    blocks, content_settings=settings, match_condition=MatchConditions.IfMissing
                )
            except HttpResponseError as exc:
                # Lost a race to a writer of the same object: its blob has these bytes.
                if not _is_conflict(exc) and self.size(key) is None:
                    raise


class _AzureStaging(Staging):
    """One block in memory; beyond it blocks go to the hinted blob or to a local spool."""

    def __init__(self, store: AzureStore, hint: str | None) -> None:
        self._store = store
        self._hint = hint
        self._buf = bytearray()
        self._tag = uuid.uuid4().hex  # concurrent writers of one blob never share block ids
        self._blocks: list[BlobBlock] = []
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._spool: BinaryIO | None = None

    def write(self, data: bytes) -> None:
        self._buf += data
        while len(self._buf) >= self._store.block_size:
            block = bytes(self._buf[: self._store.block_size])
            del self._buf[: self._store.block_size]
            self._flush(block)

    def _flush(self, block: bytes) -> None:
        if self._hint is not None:  # the name is known: straight to the blob, uncommitted
            self._md5.update(block)
            blob = self._store.blob(self._hint)
            self._blocks.append(self._store.stage_block(blob, self._tag, len(self._blocks), block))
            return
        if self._spool is None:
            # Closed (and so removed) in close(); unlinked at once, so a crash leaves nothing.
            spool = tempfile.TemporaryFile(prefix="amlport-spool-")  # noqa: SIM115
            self._spool = cast(BinaryIO, spool)
        self._spool.write(block)

    def commit(self, key: str, digest: str) -> None:
        store = self._store
        if self._blocks:  # written to the hinted blob: the caller checked the hash
            if key != self._hint:
                raise IntegrityError(f"object {digest} was staged as {self._hint}")
            if self._buf:
                self._md5.update(self._buf)
                blob = store.blob(key)
                block = store.stage_block(blob, self._tag, len(self._blocks), bytes(self._buf))
                self._blocks.append(block)
            store.commit_blocks(key, self._blocks, self._md5.digest())
        elif self._spool is None:  # at most one block: one conditional Put Blob
            store.put_once(key, bytes(self._buf))
        elif not store.exists(key):  # spooled: upload only what is not stored yet
            self._upload_spool(key, digest)

    def _upload_spool(self, key: str, digest: str) -> None:
        """A multipart upload through obstore of the spool, re-hashed on the way: if it no
        longer holds the bytes that were hashed, the last part is never committed."""
        assert self._spool is not None
        store, spool = self._store, self._spool
        spool.write(self._buf)
        self._buf = bytearray()
        size = spool.tell()

        def parts() -> Iterator[bytes]:
            spool.seek(0)
            sha = hashlib.sha256()
            while block := spool.read(store.block_size):
                sha.update(block)
                yield block
            if f"sha256:{sha.hexdigest()}" != digest:  # the spool file changed under us
                raise IntegrityError(
                    f"object {digest}: the local spool file no longer holds those bytes",
                    hint="check the local disk (TMPDIR), then run the command again",
                )

        try:
            store.writes.put_parts(
                store.container, store.name(key), parts, size, store.block_size,
                UPLOAD_CONCURRENCY,
            )  # fmt: skip
        except SourceError:
            # Two writers of one object: the first Put Block List discards the other's
            # uncommitted blocks, whose commit then fails (InvalidBlockList). The blob is
            # there, with these bytes (its name is their digest).
            if store.size(key) != size:
                raise

    def close(self) -> None:
        if self._spool is not None:
            self._spool.close()
            self._spool = None
        self._buf = bytearray()


class _RepoErrors(ErrorTranslator):
    """The storage layer's error mapping, with hints about the repository's own options."""

    def translate(self, failure: Failure, where: Where) -> AmlportError:
        error = super().translate(failure, where)
        if isinstance(error, AccessDenied) and "expired" not in error.message:
            error.hint = DENIED_HINT
        elif isinstance(error, SourceNotFound) and "container" in error.message:
            error.hint = "check the container in the repository URL (backup creates it)"
        return error


def _is_conflict(exc: HttpResponseError) -> bool:
    """The service's answer to ``If-None-Match: *`` on an existing blob."""
    return error_code(exc) in CONFLICT_CODES or exc.status_code == 412
