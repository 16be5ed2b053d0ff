"""Facts about a workspace's Azure resources, each with where it came from or why it is unknown.

A ``Fact`` is either known (``value`` + ``origin``, e.g. ``arm:storage-account.json``) or
unknown (``reason``). Checks must turn an unknown fact into a "not checked" result, never a
pass. Facts come from the storage data plane (``dataplane.py``) and from control-plane exports
(``armfiles.py``, ``armlive.py``); ``merge`` combines them, preferring the live data plane.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

NO_ARM = "no --arm folder given (export the control-plane facts with az; see docs/audit.md)"
NO_REGISTRY = "the workspace's model registry was not read (add --arm-live)"


@dataclass(frozen=True)
class Fact(Generic[T]):
    value: T | None = None
    origin: str = ""
    reason: str | None = None

    @property
    def known(self) -> bool:
        return self.reason is None and self.value is not None

    @classmethod
    def of(cls, value: T, origin: str) -> Fact[T]:
        return cls(value=value, origin=origin)

    @classmethod
    def unknown(cls, reason: str) -> Fact[T]:
        return cls(reason=reason)


@dataclass(frozen=True)
class Retention:
    enabled: bool
    days: int | None = None


@dataclass(frozen=True)
class Lock:
    id: str
    name: str
    level: str  # CanNotDelete | ReadOnly | NotSpecified
    scope: str  # the locked resource/group/subscription id (lowercase comparisons)


@dataclass(frozen=True)
class ReplicationPolicy:
    policy_id: str
    source_account: str
    destination_account: str
    rules: tuple[tuple[str, str], ...]  # (source container, destination container)


@dataclass(frozen=True)
class KeyVault:
    id: str
    name: str
    soft_delete: bool | None
    purge_protection: bool | None
    retention_days: int | None = None


@dataclass(frozen=True)
class WorkspaceInfo:
    id: str
    name: str
    resource_group: str | None
    storage_account_id: str | None
    key_vault_id: str | None
    workspace_guid: str | None = None
    application_insights_id: str | None = None
    container_registry_id: str | None = None
    hbi_workspace: bool | None = None
    public_network_access: str | None = None  # Enabled | Disabled


@dataclass(frozen=True)
class GeoStatus:
    """The geo-redundant copy of a storage account, as the account properties report it."""

    secondary_location: str | None = None
    status_of_secondary: str | None = None  # available | unavailable
    failover_in_progress: bool | None = None
    replication_status: str | None = None  # geoReplicationStats.status: Live|Bootstrap|Unavailable
    last_sync_time: str | None = None


@dataclass(frozen=True)
class StorageInfo:
    id: str
    name: str
    resource_group: str | None
    sku: str | None = None
    kind: str | None = None
    hns: bool | None = None
    geo: GeoStatus = field(default_factory=GeoStatus)


@dataclass
class ControlPlane:
    """What an ``az`` export (or the management API) says. Every field may be unknown."""

    storage: Fact[StorageInfo] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    blob_soft_delete: Fact[Retention] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    permanent_delete: Fact[bool] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    container_soft_delete: Fact[Retention] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    versioning: Fact[bool] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    change_feed: Fact[bool] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    restore_policy: Fact[Retention] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    replication: Fact[tuple[ReplicationPolicy, ...]] = field(
        default_factory=lambda: Fact.unknown(NO_ARM)
    )
    locks: Fact[tuple[Lock, ...]] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    key_vault: Fact[KeyVault] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    workspace: Fact[WorkspaceInfo] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    # The URIs of the model versions registered in the workspace (live reads only).
    registry: Fact[tuple[str, ...]] = field(default_factory=lambda: Fact.unknown(NO_REGISTRY))
    label: str | None = None  # e.g. the --arm folder
    # Scopes whose locks could not be listed ("subscription …: HTTP 403 …"); ``locks`` then
    # holds only what the other scopes showed.
    lock_gaps: tuple[str, ...] = ()


@dataclass
class DataPlane:
    """What the storage service itself says (account information, service properties)."""

    account: str | None
    sku: Fact[str]
    kind: Fact[str]
    hns: Fact[bool]
    blob_soft_delete: Fact[Retention]

    @classmethod
    def not_checked(cls, reason: str, account: str | None = None) -> DataPlane:
        return cls(
            account=account,
            sku=Fact.unknown(reason),
            kind=Fact.unknown(reason),
            hns=Fact.unknown(reason),
            blob_soft_delete=Fact.unknown(reason),
        )


@dataclass
class Facts:
    """Everything the resilience checks read: the merged data and control planes."""

    account: str | None
    resource_group: str | None
    storage_id: str | None
    containers: tuple[str, ...]  # workspace containers, as fnmatch patterns
    sku: Fact[str]
    blob_soft_delete: Fact[Retention]
    container_soft_delete: Fact[Retention]
    versioning: Fact[bool]
    change_feed: Fact[bool]
    restore_policy: Fact[Retention]
    replication: Fact[tuple[ReplicationPolicy, ...]]
    locks: Fact[tuple[Lock, ...]]
    key_vault: Fact[KeyVault]
    workspace: Fact[WorkspaceInfo]
    storage: Fact[StorageInfo] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    permanent_delete: Fact[bool] = field(default_factory=lambda: Fact.unknown(NO_ARM))
    registry: Fact[tuple[str, ...]] = field(default_factory=lambda: Fact.unknown(NO_REGISTRY))
    lock_gaps: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    def placeholders(self) -> dict[str, str]:
        """Values for the remediation templates (``{account}`` …); unknown ones stay generic."""
        ws = self.workspace.value if self.workspace.known else None
        kv = self.key_vault.value if self.key_vault.known else None
        return {
            "account": self.account or "<account>",
            "resource_group": self.resource_group
            or (ws.resource_group if ws and ws.resource_group else "<resource-group>"),
            "workspace": ws.name if ws else "<workspace>",
            "key_vault": kv.name if kv else "<key-vault>",
            "lock_id": "<lock-id>",
            "model_uri": "<azureml://datastores/...>",
        }


DEFAULT_CONTAINERS = ("azureml-blobstore-*", "azureml")


def merge(
    data: DataPlane,
    control: ControlPlane,
    *,
    containers: tuple[str, ...] = (),
) -> Facts:
    """One view of the facts. The live data plane wins where both know a fact; a disagreement
    (a stale export, or an export of another account) becomes a warning."""
    warnings: list[str] = []
    storage = control.storage.value if control.storage.known else None
    account = data.account or (storage.name if storage else None)
    if storage and data.account and storage.name.lower() != data.account.lower():
        warnings.append(
            f"SOURCE is storage account {data.account} but the control-plane facts describe "
            f"{storage.name}: check that --arm belongs to this workspace"
        )
    ws = control.workspace.value if control.workspace.known else None
    guid_containers = _guid_containers(ws)
    return Facts(
        account=account,
        resource_group=storage.resource_group if storage else None,
        storage_id=storage.id if storage else None,
        containers=containers or guid_containers or DEFAULT_CONTAINERS,
        sku=_prefer(data.sku, _storage_field(control.storage, "sku"), "SKU", warnings),
        blob_soft_delete=_prefer(
            data.blob_soft_delete, control.blob_soft_delete, "blob soft delete", warnings
        ),
        container_soft_delete=control.container_soft_delete,
        versioning=control.versioning,
        change_feed=control.change_feed,
        restore_policy=control.restore_policy,
        replication=control.replication,
        locks=control.locks,
        key_vault=control.key_vault,
        workspace=control.workspace,
        storage=control.storage,
        permanent_delete=control.permanent_delete,
        registry=control.registry,
        lock_gaps=control.lock_gaps,
        warnings=warnings,
    )


def _guid_containers(ws: WorkspaceInfo | None) -> tuple[str, ...]:
    if ws is None or not ws.workspace_guid:
        return ()
    return (f"azureml-blobstore-{ws.workspace_guid}", "azureml")


def _storage_field(storage: Fact[StorageInfo], name: str) -> Fact[str]:
    if not storage.known or storage.value is None:
        return Fact.unknown(storage.reason or "storage account facts unknown")
    value = getattr(storage.value, name)
    if value is None:
        return Fact.unknown(f"{storage.origin} does not say the storage account's {name}")
    return Fact.of(str(value), storage.origin)


def _prefer(live: Fact[T], export: Fact[T], what: str, warnings: list[str]) -> Fact[T]:
    if live.known:
        if export.known and export.value != live.value:
            warnings.append(
                f"{what}: {export.origin} says {export.value!r} but {live.origin} says "
                f"{live.value!r}; using the live value"
            )
        return live
    if export.known:
        return export
    return Fact.unknown(f"{live.reason}; {export.reason}")
