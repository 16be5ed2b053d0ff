"""What every Azure client of amlport shares: the workspace source (``azure.py``), the
import target (``azure_target.py``) and the ``az://`` repository store
(``bundle/azure_store.py``).

One place holds the SDK client and the credential to close, the counting retry policy
(``retry_count``), the error translator (``translating``) and, built on first use, the
obstore data path over the same location and credential (``objects``). A client adds only
what is its own: discovery for the source, writes and copies for the target, the
repository's keys for the store.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from amlport.storage.azure_errors import ErrorTranslator, Where, error_code
from amlport.storage.azure_location import DEFAULT_MAX_CONNECTIONS, AzureLocation
from amlport.storage.objects import BlobReader, Retrying, Throttled, store_options
from amlport.storage.retry import RETRIED_STATUSES, CountingRetry, retry_after_seconds

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient


class AzureClient:
    """The SDK client, credential, retry policy, translator and obstore reader of one
    account. Subclasses call ``__init__`` first; ``close`` is safe to call more than once."""

    # What ``objects`` is: reads only, unless a subclass that writes (the repository store,
    # the import target) asks for ``BlobWriter``; a source keeps a reader that cannot write.
    reader_class: type[BlobReader] = BlobReader

    def __init__(
        self,
        service: BlobServiceClient | None,
        location: AzureLocation,
        *,
        retry_policy: CountingRetry,
        translator: ErrorTranslator,
        credential: Any = None,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        connector: Callable[[], tuple[BlobServiceClient, Any]] | None = None,
    ) -> None:
        # The SDK client, or (``connector``) how to build it the first time it is needed:
        # a source listed by amlport's own client (``azure_list``) may never load the SDK.
        self._sdk = service
        self._connector = connector
        self._sdk_lock = threading.Lock()
        self._credential = credential
        self._retry = retry_policy
        self._translate = translator
        self.location = location
        self._max_connections = max_connections
        self._objects: BlobReader | None = None

    @property
    def _service(self) -> BlobServiceClient:
        """The SDK client (built, and the SDK imported, on first use when deferred)."""
        if self._sdk is None:
            with self._sdk_lock:
                if self._sdk is None:
                    assert self._connector is not None  # one of the two is given
                    self._sdk, self._credential = self._connector()
        return self._sdk

    def _sdk_credential(self) -> Any:
        """What obstore signs with (``store_options``): the SDK client's credential."""
        return self._service.credential

    @property
    def retry_count(self) -> int:
        """Calls retried so far (throttling, server errors, broken connections), by the SDK
        and by the obstore data path alike."""
        return self._retry.count

    def describe(self) -> str:
        return self.location.display

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.describe()!r})"

    def close(self) -> None:
        if self._sdk is not None:  # never built: nothing to close (and no SDK to load)
            self._sdk.close()
        closer: Callable[[], None] | None = getattr(self._credential, "close", None)
        if closer is not None:
            closer()
        self._objects = None  # its stores hold pooled connections: let them go

    def _translating(self, where: Where) -> AbstractContextManager[None]:
        return self._translate.translating(where)

    @property
    def objects(self) -> BlobReader:
        """Blob reads through obstore, with this client's credential, retries and errors."""
        if self._objects is None:
            options = store_options(self.location, self._sdk_credential(), self._max_connections)
            retrying = Retrying(self._retry, self._translate, probe=self._throttle_probe)
            self._objects = self.reader_class(options, retrying)
        return self._objects

    def _throttle_probe(self, where: Where) -> Throttled | None:
        """Is storage still throttling ``where``? One HEAD of the blob through the SDK's
        pipeline, not retried (``retry_total=0``), whose answer's ``Retry-After`` amlport can
        read, unlike obstore's (``objects.Retrying``). None for any answer but a retried
        status (a 404 of a blob not yet written is an answer too: the throttle is over), and
        for no answer at all: the obstore call sent next finds out and says what it is."""
        if not where.container or not where.blob:
            return None
        from azure.core.exceptions import AzureError, HttpResponseError

        blob = self._service.get_blob_client(where.container, where.blob)
        try:
            blob.get_blob_properties(retry_total=0)
        except HttpResponseError as exc:
            if exc.status_code not in RETRIED_STATUSES:
                return None
            headers = getattr(exc.response, "headers", None)
            return Throttled(exc.status_code, error_code(exc), retry_after_seconds(headers))
        except AzureError:
            return None
        return None
