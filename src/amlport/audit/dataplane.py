"""Data-plane facts: what the storage service itself reports about the account.

Two read-only calls (both GET, so the read-only source's request hook lets them through):
``get_account_information`` (SKU, account kind, hierarchical namespace) and
``get_service_properties`` (blob soft delete). Everything else about resilience lives in the
control plane (``armfiles.py``).

Only sources that expose an Azure ``BlobServiceClient`` can answer (``BlobServiceProvider``);
a local folder copy yields "not checked" with the reason. Each call that fails (a container
SAS cannot read service properties; Azurite and some emulators lack calls) makes its facts
"not checked" with the reason, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from amlport.audit.facts import DataPlane, Fact, Retention
from amlport.secrets import redact
from amlport.storage.base import Source

T = TypeVar("T")
ORIGIN_INFO = "data plane: get_account_information"
ORIGIN_PROPS = "data plane: get_service_properties"
LOCAL_REASON = "SOURCE is a local copy: the storage account's own settings cannot be read from it"
NO_SOURCE_REASON = "no SOURCE given"


@runtime_checkable
class BlobServiceProvider(Protocol):
    """A source that can hand out its ``azure.storage.blob.BlobServiceClient``.

    The client must be the source's own (read-only) client; audit only calls GET operations.
    """

    @property
    def blob_service_client(self) -> Any: ...


def service_client_of(source: Source) -> Any | None:
    """The source's ``BlobServiceClient``, or None for sources without one (local folders)."""
    if isinstance(source, BlobServiceProvider):
        return source.blob_service_client
    return None


def collect_data_plane(source: Source | None) -> DataPlane:
    """Ask the storage service for SKU, account kind, HNS and blob soft delete."""
    if source is None:
        return DataPlane.not_checked(NO_SOURCE_REASON)
    account = source.descriptor.account
    client = service_client_of(source)
    if client is None:
        return DataPlane.not_checked(LOCAL_REASON, account)
    info = _call(client.get_account_information, "get_account_information")
    props = _call(client.get_service_properties, "get_service_properties")
    return DataPlane(
        account=account,
        sku=_field(info, "sku_name", ORIGIN_INFO),
        kind=_field(info, "account_kind", ORIGIN_INFO),
        hns=_bool_field(info, "is_hns_enabled", ORIGIN_INFO),
        blob_soft_delete=_retention(props),
    )


def _call(fn: Callable[[], Any], name: str) -> Fact[Any]:
    from azure.core.exceptions import AzureError

    from amlport.errors import AmlportError

    try:
        return Fact.of(fn(), name)
    except AzureError as exc:
        return Fact.unknown(f"{name} failed: {_describe(exc)}")
    except AmlportError as exc:
        return Fact.unknown(f"{name} failed: {exc.message}")


def _describe(exc: Any) -> str:
    status = getattr(exc, "status_code", None)
    raw = getattr(exc, "error_code", None) or ""
    code = str(getattr(raw, "value", raw))  # StorageErrorCode is an enum of the wire codes
    if status == 403:
        return (
            f"HTTP 403 {code}".rstrip()
            + " (reading account settings needs the account key, an account SAS whose "
            "resource types include service (srt=s…), or an Entra role that may read them)"
        )
    if status is not None:
        return f"HTTP {status} {code}".rstrip()
    return redact(type(exc).__name__ + ": " + str(exc).split("\n", 1)[0])[:200]


def _field(result: Fact[Any], key: str, origin: str) -> Fact[str]:
    if not result.known:
        return Fact.unknown(str(result.reason))
    value = (result.value or {}).get(key)
    if not value:
        return Fact.unknown(f"{origin} returned no {key}")
    return Fact.of(str(value), origin)


def _bool_field(result: Fact[Any], key: str, origin: str) -> Fact[bool]:
    if not result.known:
        return Fact.unknown(str(result.reason))
    value = (result.value or {}).get(key)
    if value is None:
        return Fact.unknown(f"{origin} returned no {key}")
    return Fact.of(bool(value), origin)


def _retention(result: Fact[Any]) -> Fact[Retention]:
    if not result.known:
        return Fact.unknown(str(result.reason))
    policy = (result.value or {}).get("delete_retention_policy")
    if policy is None:
        return Fact.unknown(f"{ORIGIN_PROPS} returned no delete_retention_policy")
    enabled = bool(getattr(policy, "enabled", False))
    days = getattr(policy, "days", None)
    return Fact.of(Retention(enabled, int(days) if enabled and days else None), ORIGIN_PROPS)
