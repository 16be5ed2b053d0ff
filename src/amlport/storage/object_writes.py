"""Blob writes through obstore, for the ``az://`` repository store only: ``BlobWriter``.

Apart from ``objects.py`` so that the module every reader uses calls no writing function
of obstore (tests/integration/test_obstore_reads.py checks it); a source or a target is built
with a ``BlobReader`` and so has no way to write through obstore.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Literal

import obstore
from obstore.exceptions import AlreadyExistsError, PreconditionError

from amlport.errors import IntegrityError
from amlport.storage.azure_errors import Where
from amlport.storage.objects import BlobReader

PutMode = Literal["create", "overwrite", "existing"]


class BlobWriter(BlobReader):
    """``BlobReader`` plus the writes of the ``az://`` repository store. Only the repository
    store is built with one (``AzureClient.reader_class``): a source's reader cannot write.

    obstore sends no Content-MD5 (the SDK's ``validate_content``); what stands in for it is
    said in docs/design/0005-obstore-data-path.md ("Writes").
    """

    def put(self, container: str, name: str, data: bytes, mode: PutMode) -> bool:
        """One Put Blob of ``data``. ``create``: only if there is no such blob
        (``If-None-Match: *``); ``existing``: only if there is one (``If-Match: *``, a lock
        refresh); ``overwrite``: always. False when the condition did not hold."""
        store = self.store(container)
        action = "refreshing" if mode == "existing" else "writing"
        obstore_mode: Any = {"e_tag": "*"} if mode == "existing" else mode  # sent verbatim

        def put() -> bool:
            try:
                obstore.put(store, name, data, mode=obstore_mode, use_multipart=False)
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
