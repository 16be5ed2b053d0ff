"""Azure SDK exceptions as one-line amlport errors, for the source and the target alike.

Messages are built from account, container and blob names only: never from the SDK's own
message, which may carry a signed URL. ``for_target`` switches the hints from what reading
needs (Storage Blob Data Reader, SAS ``rl``) to what writing needs (Storage Blob Data
Contributor, SAS ``racwl``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from amlport.errors import (
    AccessDenied,
    AmlportError,
    SourceError,
    SourceNotFound,
    TransientStorageError,
)
from amlport.storage.azure_location import CREDENTIAL_HINT, AzureLocation, sas_expiry
from amlport.storage.retry import RETRIED_STATUSES, CountingRetry, is_dns_failure

if TYPE_CHECKING:
    from azure.core.exceptions import AzureError

# azure-core is imported where an SDK exception is looked at, never at the top: amlport's
# own listing client (``azure_list``) translates its ``Failure``s here before the SDK loads.

COPY_SOURCE_CODES = frozenset({"CannotVerifyCopySource", "CopySourceNotFound"})
CONFLICT_CODES = frozenset({"BlobAlreadyExists", "ConditionNotMet"})
_PERMISSION_CODES = ("AuthorizationPermissionMismatch", "AuthorizationFailure")
TARGET_ROLE_HINT = (
    "writing to a target needs the Storage Blob Data Contributor role on the target account "
    "(or a SAS with read, add, create, write and list: sp=racwl)"
)


@dataclass(frozen=True)
class Where:
    """What a failed call was about; messages are built from these names only."""

    action: str
    container: str | None = None
    blob: str | None = None


def error_code(exc: AzureError) -> str:
    code = getattr(exc, "error_code", None) or ""
    return str(getattr(code, "value", code))


@dataclass(frozen=True)
class Failure:
    """A failed storage call, whichever client made it (the SDK or obstore).

    ``kind``: ``dns`` (the host does not resolve), ``connect`` (no connection), ``broken``
    (the connection broke mid-answer), ``denied`` (no HTTP answer: the credential could not
    get a token; or an answer 401/403), ``missing`` (404), ``http`` (any other answer).
    ``name`` is what to show when there is no HTTP status: an exception's class name, never
    its message (which may carry a signed URL).
    """

    kind: str
    status: int | None = None
    code: str = ""
    name: str = ""


def answer_failure(status: int, headers: Any) -> Failure:
    """The ``Failure`` of a storage answer other than 200 (``headers``: any mapping read
    case-insensitively), for the listings amlport sends itself (the SDK's pipeline and
    ``azure_list``)."""
    code = headers.get("x-ms-error-code") or ""
    kind = "missing" if status == 404 else "denied" if status in (401, 403) else "http"
    return Failure(kind, status, code, "HttpResponseError")


def sdk_failure(exc: AzureError) -> Failure:
    """The ``Failure`` an azure-storage-blob / azure-core exception stands for."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    status = getattr(exc, "status_code", None)
    code, name = error_code(exc), type(exc).__name__
    if isinstance(exc, ServiceRequestError):
        return Failure("dns" if is_dns_failure(exc) else "connect", status, code, name)
    if isinstance(exc, ServiceResponseError):
        return Failure("broken", status, code, name)
    if isinstance(exc, ClientAuthenticationError):
        return Failure("denied", status, code, name)
    if isinstance(exc, ResourceNotFoundError):
        return Failure("missing", status, code, name)
    return Failure("http", status, code, name)


class ErrorTranslator:
    """Maps SDK exceptions to one-line amlport errors without any secret in them."""

    def __init__(
        self,
        loc: AzureLocation,
        policy: CountingRetry,
        anonymous: bool,
        *,
        for_target: bool = False,
    ) -> None:
        self.loc = loc
        self.policy = policy
        self.anonymous = anonymous
        self.for_target = for_target

    @contextmanager
    def translating(self, where: Where) -> Iterator[None]:
        """Run a block of SDK calls, turning any ``AzureError`` into an amlport error."""
        try:
            yield
        except Exception as exc:
            if not is_sdk_error(exc):
                raise
            # `from None`: the SDK's own message may carry a signed URL.
            raise self(cast("AzureError", exc), where) from None

    def __call__(self, exc: AzureError, where: Where) -> AmlportError:
        return self.translate(sdk_failure(exc), where)

    def translate(self, failure: Failure, where: Where) -> AmlportError:
        """The amlport error for ``failure`` (from the SDK or from obstore alike)."""
        acct = self.loc.account or "?"
        if where.blob:
            obj = f"blob {where.container}/{where.blob} in account {acct}"
        elif where.container:
            obj = f"container {where.container} in account {acct}"
        else:
            obj = f"account {acct}"
        status, code, kind = failure.status, failure.code, failure.kind
        if kind in ("dns", "connect"):
            return self._unreachable(kind, where, obj)
        if kind == "broken":
            return TransientStorageError(
                f"the connection broke {where.action} {obj}, "
                f"after {self.policy.config.total} retries",
                hint="re-run; check the network",
            )
        if self.for_target and code in COPY_SOURCE_CODES:
            return SourceError(
                f"{where.action} {obj} failed: the storage service could not read the copy "
                f"source (HTTP {status} {code})",
                hint="the signed source URL may have expired or may not grant read; with "
                "Azurite the source must be on the same instance and spelled with the same host",
            )
        if kind == "denied" or status in (401, 403):
            return self._denied(code, status, where, obj)
        if kind == "missing" or status == 404:
            return self._not_found(code, where)
        if status in RETRIED_STATUSES:
            return TransientStorageError(
                f"{where.action} {obj} failed after {self.policy.config.total} retries: "
                f"HTTP {status} {code}".rstrip(),
                hint="storage is throttling or unavailable; re-run later or with fewer workers",
            )
        detail = f"HTTP {status} {code}".rstrip() if status else failure.name
        return SourceError(f"{where.action} {obj} failed: {detail}")

    def _unreachable(self, kind: str, where: Where, obj: str) -> AmlportError:
        if kind == "dns":
            return SourceNotFound(
                f"storage account {self.loc.account}: {self.loc.host} does not resolve",
                hint="check the account name and the endpoint suffix (sovereign clouds differ), "
                "or the network / DNS",
            )
        return SourceError(
            f"cannot reach {self.loc.account_url} ({where.action} {obj})",
            hint="check the URL / network",
        )

    def _denied(self, code: str, status: int | None, where: Where, obj: str) -> AmlportError:
        expiry = sas_expiry(self.loc.sas_token)
        if expiry is not None and expiry <= datetime.now(timezone.utc):
            again = "racwl (read, add, create, write, list)" if self.for_target else "read and list"
            return AccessDenied(
                f"access denied {where.action} {obj}: the SAS token expired at "
                f"{expiry:%Y-%m-%d %H:%M} UTC",
                hint=f"create a new SAS with {again} permissions",
            )
        if status is None:  # no HTTP answer: the credential could not get a token
            hint = "sign in (az login) or set up a managed/workload identity; or " + CREDENTIAL_HINT
        elif self.anonymous:
            hint = f"this storage does not allow anonymous reads: {CREDENTIAL_HINT}"
            if self.for_target:
                hint = f"a target needs a credential: {CREDENTIAL_HINT}; {TARGET_ROLE_HINT}"
        elif self.for_target and code in _PERMISSION_CODES:
            hint = TARGET_ROLE_HINT
        elif code == "AuthorizationPermissionMismatch":
            hint = "the credential may not read/list: a SAS needs r and l; an Entra identity "
            hint += "needs the Storage Blob Data Reader role"
        elif code == "AuthorizationResourceTypeMismatch":
            hint = "an account SAS needs resource types service, container and object (srt=sco)"
        else:
            hint = "the account key or SAS token is wrong, expired, or for another account "
            hint += "or container"
            if self.for_target:
                hint += "; " + TARGET_ROLE_HINT
        detail = f": HTTP {status} {code}".rstrip() if status else ""
        return AccessDenied(f"access denied {where.action} {obj}{detail}", hint=hint)

    def _not_found(self, code: str, where: Where) -> AmlportError:
        acct = self.loc.account
        if code == "BlobNotFound" or (where.blob and code != "ContainerNotFound"):
            return SourceNotFound(
                f"blob {where.container}/{where.blob} not found in storage account {acct}",
                hint="it may have been deleted since it was listed; re-run",
            )
        if code == "ContainerNotFound":
            hint = "check the container name, or give --workspace-file naming the containers"
            if self.for_target:
                hint = "check the target containers in the map file; the import creates them"
            return SourceNotFound(
                f"container {where.container} not found in storage account {acct}", hint=hint
            )
        return SourceNotFound(
            f"storage account {acct} not found at {self.loc.account_url}",
            hint="check the account name and the endpoint",
        )


class ConflictGuard(AbstractContextManager[None]):
    """Inside ``translating``: turns the service's answer to ``If-None-Match: *`` on an
    existing blob (409 BlobAlreadyExists, 412 ConditionNotMet) into ``conflict``."""

    def __init__(self, conflict: AmlportError | None) -> None:
        self._conflict = conflict  # None: no condition was sent, nothing to map

    def __exit__(self, kind: object, exc: BaseException | None, tb: object) -> None:
        if exc is None or self._conflict is None:
            return
        from azure.core.exceptions import HttpResponseError

        if not isinstance(exc, HttpResponseError):
            return
        if error_code(exc) in CONFLICT_CODES or exc.status_code == 412:
            raise self._conflict from None


def is_sdk_error(exc: BaseException) -> bool:
    """An azure-core ``AzureError`` (never one when azure-core was not even imported)."""
    errors = sys.modules.get("azure.core.exceptions")
    return errors is not None and isinstance(exc, errors.AzureError)
