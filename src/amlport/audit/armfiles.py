"""Control-plane facts from JSON files, in the shapes the ``az`` commands print.

An ``--arm`` folder holds any of these files (see docs/audit.md for the exact commands)::

    storage-account.json           az storage account show -n ACCT -g RG
    blob-service-properties.json   az storage account blob-service-properties show -n ACCT -g RG
    locks.json                     az lock list   (subscription-wide, so inherited locks show)
    or-policies.json               az storage account or-policy list --account-name ACCT -g RG
    keyvault.json                  az keyvault show -n KV
    workspace.json                 az ml workspace show -n WS -g RG

The parsers accept the az CLI's flattened camelCase shape, the ARM REST shape (settings under
``properties``) that ``az resource show`` and the management SDK's ``serialize()`` produce, and
for the workspace the ML CLI's snake_case shape. A missing file makes its facts "not checked";
a file that is not JSON, or not the right shape, is a usage error naming the file.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from amlport.audit.facts import (
    ControlPlane,
    Fact,
    GeoStatus,
    KeyVault,
    Lock,
    ReplicationPolicy,
    Retention,
    StorageInfo,
    WorkspaceInfo,
)
from amlport.errors import UsageError

T = TypeVar("T")
LOCK_SEGMENT = "/providers/microsoft.authorization/locks/"
BLOB_SERVICE_FACTS = (
    "blob_soft_delete",
    "permanent_delete",
    "container_soft_delete",
    "versioning",
    "change_feed",
    "restore_policy",
)

FILES = {
    "storage": ("storage-account.json", "az storage account show -n <account> -g <rg>"),
    "blob_service": (
        "blob-service-properties.json",
        "az storage account blob-service-properties show -n <account> -g <rg>",
    ),
    "locks": ("locks.json", "az lock list"),
    "replication": (
        "or-policies.json",
        "az storage account or-policy list --account-name <account> -g <rg>",
    ),
    "key_vault": ("keyvault.json", "az keyvault show -n <key-vault>"),
    "workspace": ("workspace.json", "az ml workspace show -n <workspace> -g <rg>"),
}


class ShapeError(ValueError):
    """A document is JSON but not the shape of the az output it should be."""


# --- generic field access ---------------------------------------------------------------------


def prop(doc: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` found at the top level or under ``properties`` (REST shape)."""
    inner = doc.get("properties")
    for name in names:
        if name in doc and doc[name] is not None:
            return doc[name]
        if isinstance(inner, dict) and inner.get(name) is not None:
            return inner[name]
    return None


def _mapping(doc: Any, what: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise ShapeError(f"expected a JSON object ({what})")
    return doc


def items_of(doc: Any, what: str) -> list[dict[str, Any]]:
    """A JSON list, or a REST list response ``{"value": [...]}``."""
    if isinstance(doc, dict) and isinstance(doc.get("value"), list):
        doc = doc["value"]
    if not isinstance(doc, list) or not all(isinstance(x, dict) for x in doc):
        raise ShapeError(f"expected a JSON list of objects ({what})")
    return doc


def resource_group_of(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    lowered = [p.lower() for p in parts]
    if "resourcegroups" in lowered:
        i = lowered.index("resourcegroups")
        return parts[i + 1] if i + 1 < len(parts) else None
    return None


def last_segment(resource_id: str) -> str:
    return resource_id.rstrip("/").rsplit("/", 1)[-1]


# --- one parser per az command ------------------------------------------------------------------


def parse_storage_account(doc: Any) -> StorageInfo:
    d = _mapping(doc, "az storage account show")
    sku = d.get("sku")
    rid = str(d.get("id") or "")
    name = str(d.get("name") or last_segment(rid))
    if not name:
        raise ShapeError("no 'name' or 'id' (az storage account show)")
    return StorageInfo(
        id=rid,
        name=name,
        resource_group=d.get("resourceGroup") or resource_group_of(rid),
        sku=str(sku.get("name")) if isinstance(sku, dict) and sku.get("name") else None,
        kind=d.get("kind"),
        hns=_opt_bool(prop(d, "isHnsEnabled")),
        geo=_geo_status(d),
    )


def _geo_status(d: dict[str, Any]) -> GeoStatus:
    """Where the geo copy lives and whether it is healthy (``geoReplicationStats`` only comes
    with ``--expand geoReplicationStats`` / ``expand="geoReplicationStats"``)."""
    stats = prop(d, "geoReplicationStats")
    return GeoStatus(
        secondary_location=_opt_str(prop(d, "secondaryLocation")),
        status_of_secondary=_opt_str(prop(d, "statusOfSecondary")),
        failover_in_progress=_opt_bool(prop(d, "failoverInProgress")),
        replication_status=_opt_str(_get(stats, "status")),
        last_sync_time=_opt_str(_get(stats, "lastSyncTime")),
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_blob_service(doc: Any) -> dict[str, Any]:
    d = _mapping(doc, "az storage account blob-service-properties show")
    delete_policy = prop(d, "deleteRetentionPolicy")
    return {
        "blob_soft_delete": _retention_of(delete_policy),
        # allowPermanentDelete lets a caller delete blobs and versions past soft delete.
        "permanent_delete": bool(_get(delete_policy, "allowPermanentDelete")),
        "container_soft_delete": _retention_of(prop(d, "containerDeleteRetentionPolicy")),
        "versioning": bool(prop(d, "isVersioningEnabled")),
        "change_feed": bool(_get(prop(d, "changeFeed"), "enabled")),
        "restore_policy": _retention_of(prop(d, "restorePolicy")),
    }


def _retention_of(policy: Any) -> Retention:
    enabled = bool(_get(policy, "enabled"))
    days = _get(policy, "days")
    return Retention(enabled, int(days) if enabled and days is not None else None)


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def _opt_bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def parse_locks(doc: Any) -> tuple[Lock, ...]:
    locks = []
    for item in items_of(doc, "az lock list"):
        lock_id = str(item.get("id") or "")
        cut = lock_id.lower().find(LOCK_SEGMENT)
        if cut < 0:
            raise ShapeError(f"lock id {lock_id!r} is not a Microsoft.Authorization/locks id")
        level = prop(item, "level")
        if not isinstance(level, str):
            raise ShapeError(f"lock {lock_id!r} has no level")
        name = str(item.get("name") or last_segment(lock_id))
        locks.append(Lock(id=lock_id, name=name, level=level, scope=lock_id[:cut]))
    return tuple(locks)


def parse_or_policies(doc: Any) -> tuple[ReplicationPolicy, ...]:
    policies = []
    for item in items_of(doc, "az storage account or-policy list"):
        rules = prop(item, "rules") or []
        if not isinstance(rules, list):
            raise ShapeError("object replication policy 'rules' is not a list")
        pairs = tuple(
            (str(r.get("sourceContainer")), str(r.get("destinationContainer")))
            for r in rules
            if isinstance(r, dict)
        )
        policies.append(
            ReplicationPolicy(
                policy_id=str(prop(item, "policyId") or item.get("name") or ""),
                source_account=last_segment(str(prop(item, "sourceAccount") or "")),
                destination_account=last_segment(str(prop(item, "destinationAccount") or "")),
                rules=pairs,
            )
        )
    return tuple(policies)


def parse_key_vault(doc: Any) -> KeyVault:
    d = _mapping(doc, "az keyvault show")
    rid = str(d.get("id") or "")
    name = str(d.get("name") or last_segment(rid))
    if not name:
        raise ShapeError("no 'name' or 'id' (az keyvault show)")
    days = prop(d, "softDeleteRetentionInDays")
    return KeyVault(
        id=rid,
        name=name,
        soft_delete=_opt_bool(prop(d, "enableSoftDelete")),
        purge_protection=_opt_bool(prop(d, "enablePurgeProtection")),
        retention_days=int(days) if days is not None else None,
    )


def parse_workspace(doc: Any) -> WorkspaceInfo:
    d = _mapping(doc, "az ml workspace show")
    rid = str(d.get("id") or "")
    name = str(d.get("name") or last_segment(rid))
    if not name:
        raise ShapeError("no 'name' or 'id' (az ml workspace show)")
    return WorkspaceInfo(
        id=rid,
        name=name,
        resource_group=prop(d, "resource_group", "resourceGroup") or resource_group_of(rid),
        storage_account_id=prop(d, "storage_account", "storageAccount"),
        key_vault_id=prop(d, "key_vault", "keyVault"),
        workspace_guid=prop(d, "workspace_id", "workspaceId"),
        application_insights_id=prop(d, "application_insights", "applicationInsights"),
        container_registry_id=prop(d, "container_registry", "containerRegistry"),
        hbi_workspace=_opt_bool(prop(d, "hbi_workspace", "hbiWorkspace")),
        public_network_access=_opt_str(prop(d, "public_network_access", "publicNetworkAccess")),
    )


# --- the folder ---------------------------------------------------------------------------------


def load_arm_folder(folder: Path) -> ControlPlane:
    """Read every known file of an ``--arm`` folder into control-plane facts."""
    if not folder.is_dir():
        raise UsageError(
            f"--arm {folder} is not a folder",
            hint="give a folder of az JSON exports (see docs/audit.md)",
        )
    cp = ControlPlane(label=str(folder))
    cp.storage = _load(folder, "storage", parse_storage_account)
    cp.locks = _load(folder, "locks", parse_locks)
    cp.replication = _load(folder, "replication", parse_or_policies)
    cp.key_vault = _load(folder, "key_vault", parse_key_vault)
    cp.workspace = _load(folder, "workspace", parse_workspace)
    _apply_blob_service(cp, _load(folder, "blob_service", parse_blob_service))
    check_consistency(cp)
    return cp


def _apply_blob_service(cp: ControlPlane, service: Fact[dict[str, Any]]) -> None:
    for key in BLOB_SERVICE_FACTS:
        setattr(cp, key, sub_fact(service, key))


def sub_fact(service: Fact[dict[str, Any]], key: str) -> Fact[Any]:
    """One field of the blob service properties as a fact of its own."""
    if not service.known or service.value is None:
        return Fact.unknown(str(service.reason))
    return Fact.of(service.value[key], service.origin)


def _load(folder: Path, key: str, parse: Callable[[Any], T]) -> Fact[T]:
    name, command = FILES[key]
    path = folder / name
    if not path.is_file():
        return Fact.unknown(f"{name} is not in the --arm folder (create it with: {command})")
    try:
        doc = json.loads(path.read_text(encoding="utf-8-sig"))
        return Fact.of(parse(doc), f"arm:{name}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"cannot read {path}: {exc.__class__.__name__}",
            hint=f"re-create it with: {command} > {name}",
        ) from None
    except ShapeError as exc:
        raise UsageError(
            f"{path} is not what '{command}' prints: {exc}",
            hint=f"re-create it with: {command} > {name}",
        ) from None


def check_consistency(cp: ControlPlane) -> None:
    """The files must describe one deployment: the workspace's storage account and key vault."""
    ws = cp.workspace.value if cp.workspace.known else None
    if ws is None:
        return
    pairs = (
        (cp.storage, ws.storage_account_id, "storage account"),
        (cp.key_vault, ws.key_vault_id, "key vault"),
    )
    for fact, expected, what in pairs:
        actual = getattr(fact.value, "id", None) if fact.known else None
        if expected and actual and expected.lower() != actual.lower():
            raise UsageError(
                f"{fact.origin} describes {what} {last_segment(actual)} but the workspace uses "
                f"{last_segment(expected)}",
                hint="export the files for the same workspace (see docs/audit.md)",
            )
