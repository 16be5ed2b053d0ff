"""Blob writes through obstore, for the writing Azure clients only: ``BlobWriter``.

Apart from ``objects.py`` so that the module every reader uses calls no writing function
of obstore (tests/integration/test_obstore_reads.py checks it). The ``az://`` repository
store and the import target are built with a ``BlobWriter``; a source is built with a
``BlobReader`` and so has no way to write through obstore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Literal

import obstore
from obstore.exceptions import AlreadyExistsError, BaseError, PreconditionError
from obstore.store import AzureStore

from amlport.errors import IntegrityError
from amlport.storage.azure_errors import Where
from amlport.storage.objects import BlobReader, Retrying

PutMode = Literal["create", "overwrite", "existing"]
# How long obstore may keep retrying one part of a streamed upload (``put_stream``).
PART_RETRY_TIMEOUT = timedelta(minutes=5)


class BlobWriter(BlobReader):
    """``BlobReader`` plus writes: the ``az://`` repository store and the import target are
    built with one (``AzureClient.reader_class``); a source's reader cannot write.

    obstore sends no Content-MD5 (the SDK's ``validate_content``); what stands in for it is
    said in docs/design/0005-obstore-data-path.md ("Writes").
    """

    def __init__(self, options: dict[str, Any], retrying: Retrying) -> None:
        super().__init__(options, retrying)
        self._upload_stores: dict[str, AzureStore] = {}

    def put(
        self, container: str, name: str, data: bytes, mode: PutMode,
        attributes: dict[str, str] | None = None,
    ) -> bool:  # fmt: skip
        """One Put Blob of ``data``. ``create``: only if there is no such blob
        (``If-None-Match: *``); ``existing``: only if there is one (``If-Match: *``, a lock
        refresh); ``overwrite``: always. False when the condition did not hold.
        ``attributes``: obstore's (``Content-Type``; any other key is blob metadata)."""
        store = self.store(container)
        action = "refreshing" if mode == "existing" else "writing"
        obstore_mode: Any = {"e_tag": "*"} if mode == "existing" else mode  # sent verbatim

        def put() -> bool:
            try:
                obstore.put(
                    store, name, data, mode=obstore_mode, use_multipart=False,
                    attributes=attributes,
                )  # fmt: skip
            except (AlreadyExistsError, PreconditionError):
                return False
            except FileNotFoundError:  # If-Match on a blob that is gone
                if mode != "existing":
                    raise
                return False
            return True

        return self._retrying.call(Where(action, container, name), put)

    def put_parts(
        self, container: str, name: str, parts: Callable[[], Iterator[bytes]], size: int,
        part_size: int, concurrency: int,
    ) -> None:  # fmt: skip
        """A multipart upload (Put Block, then Put Block List) of the bytes ``parts()``
        yields, ``size`` in all, then a HEAD that checks the committed size.

        ``parts`` is called again for a retry. If the iterator raises (say, the bytes are not
        the ones expected), the block list is never committed: uncommitted blocks are
        invisible and the service discards them. Not create-only: obstore's multipart upload
        takes no condition, so the caller checks that the blob is missing first.
        """
        store, where = self.store(container), Where("writing", container, name)

        def put() -> None:
            obstore.put(
                store, name, parts(), use_multipart=True, chunk_size=part_size,
                max_concurrency=concurrency,
            )  # fmt: skip

        self._retrying.call(where, put)
        meta = self._retrying.call(where, lambda: obstore.head(store, name))
        if meta["size"] != size:
            raise IntegrityError(
                f"{container}/{name}: {meta['size']} bytes were stored, {size} were sent",
                hint="run the command again; if it happens again, report it",
            )

    def put_stream(
        self, container: str, name: str, pieces: Iterator[bytes | memoryview], *, part_size: int,
        concurrency: int, attributes: dict[str, str] | None = None,
    ) -> str | None:  # fmt: skip
        """A multipart upload (Put Block x n, Put Block List) of what ``pieces`` yields, read
        once: for a stream that cannot be read again (an import target's source). The ETag
        of the committed blob (None if the service gave none).

        Memory: obstore holds each part until it is sent, so at most ``concurrency`` parts
        plus the piece being read. If ``pieces`` raises, the block list is never committed
        and that very exception is raised. Not create-only (obstore's multipart upload takes
        no condition). A failed part cannot be sent again from here (its bytes are gone), so
        obstore retries each request itself (``_upload_store``): the same budget and
        backoff as ``RetryConfig``. Those retries reach ``retry_count`` only when the upload
        fails (obstore's error says how often the failed request was retried); the retries
        of a part that then succeeded are reported nowhere (design 0005).
        """
        store, where = self._upload_store(container), Where("writing", container, name)
        raised: list[BaseException] = []

        def feed() -> Iterator[bytes | memoryview]:
            try:
                yield from pieces
            except GeneratorExit:  # obstore gave up on the upload: its error is raised
                raise
            except BaseException as exc:  # the caller's own error, not obstore's
                raised.append(exc)
                raise

        try:
            result = obstore.put(
                store, name, feed(), use_multipart=True, chunk_size=part_size,
                max_concurrency=concurrency, attributes=attributes,
            )  # fmt: skip
        except BaseException as exc:
            if raised:
                raise raised[0] from None
            if isinstance(exc, (BaseError, FileNotFoundError)):
                self._retrying.note_reported(exc)  # obstore's own retries of the failed part
                error = self._retrying.error(exc, where)
                if error is not None:
                    raise error from None  # obstore's text holds the URL, so a SAS
            raise
        return result.get("e_tag")

    def _upload_store(self, container: str) -> AzureStore:
        """The container's store with obstore's own retries (``put_stream``)."""
        cfg = self._retrying.policy.config
        with self._lock:
            found = self._upload_stores.get(container)
            if found is None:
                retry = {
                    "max_retries": cfg.total,
                    "backoff": {
                        "init_backoff": timedelta(seconds=cfg.initial_backoff),
                        "max_backoff": timedelta(seconds=cfg.max_backoff),
                        # object_store draws each wait from [initial, last x base]:
                        # a base of 1 is an empty range (a panic), so 2 stands in for it.
                        "base": cfg.increment_base if cfg.increment_base > 1 else 2.0,
                    },
                    "retry_timeout": PART_RETRY_TIMEOUT,
                }
                options = {**self._options, "retry_config": retry}
                found = self._upload_stores[container] = AzureStore(container, **options)
            return found
