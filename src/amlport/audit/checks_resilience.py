"""Checks of the storage account, locks and key vault settings (control and data plane facts).

Each check reads only ``ctx.facts``; an unknown fact is "not checked" with its reason.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from amlport.audit.catalog import Rule
from amlport.audit.engine import CheckContext, CheckFn, Outcome, failed, not_checked, passed
from amlport.audit.facts import Fact, KeyVault, Lock, ReplicationPolicy, Retention, WorkspaceInfo

MIN_SOFT_DELETE_DAYS = 7
ZONE_SKUS = {"Standard_ZRS", "Premium_ZRS"}
GEO_ZONE_SKUS = {"Standard_GZRS", "Standard_RAGZRS"}
GEO_SKUS = {"Standard_GRS", "Standard_RAGRS"}
LOCAL_SKUS = {"Standard_LRS", "Premium_LRS"}
NO_WORKSPACE_FAILOVER = (
    "Microsoft does not support failing over a workspace's default storage account, so the "
    "geo-secondary copy does not give a working workspace in another region: cross-region "
    "protection needs object replication to a second account (AMLP-RES-007) or backups."
)


def _account(ctx: CheckContext) -> str:
    return ctx.facts.account or "the storage account"


def _resource(ctx: CheckContext) -> str | None:
    return ctx.facts.storage_id or ctx.facts.account


# --- storage account -----------------------------------------------------------------------


def replication(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    fact = ctx.facts.sku
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    sku = fact.value
    kw = {"resource": _resource(ctx), "evidence": fact.origin}
    what = f"{_account(ctx)} uses {sku}"
    if sku in LOCAL_SKUS:
        return [failed(f"{what}: every copy is in one datacenter", **kw)]
    if sku in ZONE_SKUS:
        return [passed(f"{what}: copies in three availability zones", **kw)]
    if sku in GEO_ZONE_SKUS:
        return [
            passed(f"{what}: zone-redundant, plus a geo copy", note=NO_WORKSPACE_FAILOVER, **kw)
        ]
    if sku in GEO_SKUS:
        return [
            passed(f"{what}: a geo copy in the paired region", note=NO_WORKSPACE_FAILOVER, **kw)
        ]
    return [not_checked(f"unrecognised storage SKU {sku!r}", **kw)]


def geo_replication(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    """The geo copy exists and is in sync: a geo SKU whose secondary is unavailable, or that
    is failing over, protects nothing until it recovers."""
    fact = ctx.facts.storage
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    info = fact.value
    kw = {"resource": _resource(ctx), "evidence": fact.origin}
    sku = ctx.facts.sku.value if ctx.facts.sku.known else info.sku  # the merged SKU
    if sku is None:
        return [not_checked(f"{fact.origin} does not say the storage account's SKU", **kw)]
    if sku not in GEO_SKUS | GEO_ZONE_SKUS:
        return [passed(f"{_account(ctx)} uses {sku}: there is no geo copy to check", **kw)]
    geo = info.geo
    problems = []
    if geo.failover_in_progress:
        problems.append("a failover is in progress")
    if geo.status_of_secondary and geo.status_of_secondary.lower() != "available":
        problems.append(f"the secondary region is {geo.status_of_secondary}")
    if geo.replication_status and geo.replication_status.lower() != "live":
        problems.append(f"geo-replication is {geo.replication_status}")
    if problems:
        return [failed(f"{_account(ctx)} ({sku}): {'; '.join(problems)}", **kw)]
    if geo.status_of_secondary is None and geo.replication_status is None:
        return [not_checked(f"{fact.origin} does not say the geo copy's status", **kw)]
    synced = f", last sync {geo.last_sync_time}" if geo.last_sync_time else ""
    where = f" in {geo.secondary_location}" if geo.secondary_location else ""
    return [passed(f"{_account(ctx)} ({sku}): the geo copy{where} is available{synced}", **kw)]


def permanent_delete(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    fact = ctx.facts.permanent_delete
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    kw = {"resource": _resource(ctx), "evidence": fact.origin}
    if fact.value:
        return [
            failed(
                f"allowPermanentDelete is on for {_account(ctx)}: blobs and versions can be "
                "deleted past soft delete",
                **kw,
            )
        ]
    return [passed(f"soft-deleted blobs on {_account(ctx)} cannot be purged early", **kw)]


def _retention_check(
    ctx: CheckContext, fact: Fact[Retention], what: str, min_days: int | None
) -> list[Outcome]:
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    kw = {"resource": _resource(ctx), "evidence": fact.origin}
    ret = fact.value
    if not ret.enabled:
        return [failed(f"{what} is disabled on {_account(ctx)}", **kw)]
    days = f"{ret.days} days" if ret.days is not None else "an unknown number of days"
    if min_days is not None and (ret.days is None or ret.days < min_days):
        return [failed(f"{what} keeps only {days} on {_account(ctx)} (< {min_days})", **kw)]
    return [passed(f"{what} is enabled on {_account(ctx)} ({days})", **kw)]


def blob_soft_delete(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _retention_check(
        ctx, ctx.facts.blob_soft_delete, "blob soft delete", MIN_SOFT_DELETE_DAYS
    )


def container_soft_delete(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _retention_check(ctx, ctx.facts.container_soft_delete, "container soft delete", None)


def restore_policy(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _retention_check(ctx, ctx.facts.restore_policy, "point-in-time restore", None)


def _flag_check(ctx: CheckContext, fact: Fact[bool], what: str) -> list[Outcome]:
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    kw = {"resource": _resource(ctx), "evidence": fact.origin}
    if fact.value:
        return [passed(f"{what} is enabled on {_account(ctx)}", **kw)]
    return [failed(f"{what} is disabled on {_account(ctx)}", **kw)]


def versioning(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _flag_check(ctx, ctx.facts.versioning, "blob versioning")


def change_feed(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _flag_check(ctx, ctx.facts.change_feed, "the blob change feed")


def object_replication(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    fact = ctx.facts.replication
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    account = (ctx.facts.account or "").lower()
    outgoing = [p for p in fact.value if not account or p.source_account.lower() == account]
    kw = {"resource": _resource(ctx), "evidence": fact.origin}
    uncovered = [c for c in ctx.facts.containers if not _covered(c, outgoing)]
    if not outgoing:
        return [failed(f"no object replication policy copies {_account(ctx)} elsewhere", **kw)]
    if uncovered:
        return [failed(f"object replication does not cover {', '.join(uncovered)}", **kw)]
    targets = sorted({p.destination_account for p in outgoing})
    return [passed(f"workspace containers replicate to {', '.join(targets)}", **kw)]


def _covered(pattern: str, policies: list[ReplicationPolicy]) -> bool:
    return any(fnmatch.fnmatchcase(src, pattern) for p in policies for src, _ in p.rules)


# --- locks ---------------------------------------------------------------------------------


def _covers(lock: Lock, resource_id: str) -> bool:
    scope, rid = lock.scope.lower().rstrip("/"), resource_id.lower().rstrip("/")
    return rid == scope or rid.startswith(scope + "/")


def _lock_targets(ctx: CheckContext) -> tuple[dict[str, str | None], list[str]]:
    """{label: resource id or None} for the workspace and its storage, and why ids are missing."""
    ws = ctx.facts.workspace.value if ctx.facts.workspace.known else None
    storage_id = ctx.facts.storage_id or (ws.storage_account_id if ws else None)
    targets = {"workspace": ws.id if ws and ws.id else None, "storage account": storage_id}
    reasons = []
    if targets["workspace"] is None:
        reasons.append(f"workspace id unknown ({ctx.facts.workspace.reason or 'no id'})")
    if storage_id is None:
        reasons.append("storage account id unknown (storage-account.json missing)")
    return targets, reasons


def delete_lock(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    fact = ctx.facts.locks
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    targets, reasons = _lock_targets(ctx)
    kw = {"resource": targets["workspace"] or _resource(ctx), "evidence": fact.origin}
    deletes = [lk for lk in fact.value if lk.level in ("CanNotDelete", "ReadOnly")]
    unlocked = [
        label
        for label, rid in targets.items()
        if rid and not any(_covers(lk, rid) for lk in deletes)
    ]
    if unlocked and ctx.facts.lock_gaps:  # the lock may sit where we could not look
        return [
            not_checked(
                f"no CanNotDelete lock found on the {' or the '.join(unlocked)} in the scopes "
                f"read; unread: {'; '.join(ctx.facts.lock_gaps)}",
                **kw,
            )
        ]
    if unlocked:
        return [failed(f"no CanNotDelete lock covers the {' or the '.join(unlocked)}", **kw)]
    if reasons:
        return [not_checked("; ".join(reasons), **kw)]
    names = sorted(
        {lk.name for lk in deletes if any(_covers(lk, r) for r in targets.values() if r)}
    )
    return [passed(f"the workspace and its storage are locked ({', '.join(names)})", **kw)]


def readonly_lock(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    fact = ctx.facts.locks
    if not fact.known or fact.value is None:
        return [not_checked(str(fact.reason), resource=_resource(ctx))]
    readonly = [lk for lk in fact.value if lk.level == "ReadOnly"]
    if not readonly and not ctx.facts.lock_gaps:
        return [passed("no ReadOnly lock in the exported locks", evidence=fact.origin)]
    targets, reasons = _lock_targets(ctx)
    out = []
    for lock in readonly:
        hit = [label for label, rid in targets.items() if rid and _covers(lock, rid)]
        if hit:
            out.append(_readonly_failure(lock, hit, fact.origin))
    if out:
        return out
    if reasons or ctx.facts.lock_gaps:
        why = [*reasons, *(f"unread: {gap}" for gap in ctx.facts.lock_gaps)]
        return [not_checked("; ".join(why), evidence=fact.origin)]
    return [passed("no ReadOnly lock on the workspace or its storage", evidence=fact.origin)]


def _readonly_failure(lock: Lock, hit: list[str], origin: str) -> Outcome:
    return failed(
        f"ReadOnly lock {lock.name} covers the {' and the '.join(hit)}: it blocks listKeys, "
        "so key-based datastores and studio data browsing fail",
        resource=lock.id,
        evidence=origin,
        values={"lock_id": lock.id},
    )


# --- the workspace's own settings ------------------------------------------------------


def _workspace(ctx: CheckContext) -> tuple[WorkspaceInfo, dict[str, Any]] | Outcome:
    """The workspace fact with what each of its outcomes carries (resource and evidence), or
    the not-checked outcome when the fact is unknown."""
    fact = ctx.facts.workspace
    if not fact.known or fact.value is None:
        return not_checked(str(fact.reason))
    ws = fact.value
    return ws, {"resource": ws.id or ws.name, "evidence": fact.origin}


def _linked(ctx: CheckContext, attr: str, what: str, missing: str) -> list[Outcome]:
    found = _workspace(ctx)
    if isinstance(found, Outcome):
        return [found]
    ws, kw = found
    linked = getattr(ws, attr)
    if linked:
        return [passed(f"workspace {ws.name} links {what} {linked.rsplit('/', 1)[-1]}", **kw)]
    return [failed(f"workspace {ws.name} has no {what}: {missing}", **kw)]


def application_insights(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _linked(
        ctx,
        "application_insights_id",
        "Application Insights",
        "endpoint and job diagnostics are not kept",
    )


def container_registry(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _linked(
        ctx,
        "container_registry_id",
        "container registry",
        "environment images are not kept anywhere you control",
    )


def public_network_access(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    found = _workspace(ctx)
    if isinstance(found, Outcome):
        return [found]
    ws, kw = found
    access = ws.public_network_access
    if access is None:
        return [not_checked(f"{ctx.facts.workspace.origin} does not say publicNetworkAccess", **kw)]
    if access.lower() == "disabled":
        return [passed(f"workspace {ws.name} is reachable only through private endpoints", **kw)]
    return [failed(f"workspace {ws.name} has public network access {access}", **kw)]


def hbi_workspace(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    found = _workspace(ctx)
    if isinstance(found, Outcome):
        return [found]
    ws, kw = found
    if ws.hbi_workspace is None:
        return [not_checked(f"{ctx.facts.workspace.origin} does not say hbiWorkspace", **kw)]
    if ws.hbi_workspace:
        return [passed(f"workspace {ws.name} is a high business impact workspace", **kw)]
    return [failed(f"workspace {ws.name} is not flagged high business impact", **kw)]


# --- key vault -----------------------------------------------------------------------------


def _vault(ctx: CheckContext) -> tuple[KeyVault | None, Outcome | None]:
    fact = ctx.facts.key_vault
    if not fact.known or fact.value is None:
        return None, not_checked(str(fact.reason))
    return fact.value, None


def keyvault_soft_delete(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    kv, skip = _vault(ctx)
    if kv is None:
        return [skip] if skip else []
    kw = {"resource": kv.id or kv.name, "evidence": ctx.facts.key_vault.origin}
    if kv.soft_delete:
        days = f" ({kv.retention_days} days)" if kv.retention_days else ""
        return [passed(f"key vault {kv.name} has soft delete enabled{days}", **kw)]
    return [failed(f"key vault {kv.name} does not have soft delete enabled", **kw)]


def keyvault_purge_protection(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    kv, skip = _vault(ctx)
    if kv is None:
        return [skip] if skip else []
    kw = {"resource": kv.id or kv.name, "evidence": ctx.facts.key_vault.origin}
    if kv.purge_protection:
        return [passed(f"key vault {kv.name} has purge protection enabled", **kw)]
    return [failed(f"key vault {kv.name} does not have purge protection enabled", **kw)]


CHECKS: dict[str, CheckFn] = {
    "replication": replication,
    "geo_replication": geo_replication,
    "blob_soft_delete": blob_soft_delete,
    "permanent_delete": permanent_delete,
    "container_soft_delete": container_soft_delete,
    "versioning": versioning,
    "change_feed": change_feed,
    "restore_policy": restore_policy,
    "object_replication": object_replication,
    "delete_lock": delete_lock,
    "readonly_lock": readonly_lock,
    "keyvault_soft_delete": keyvault_soft_delete,
    "keyvault_purge_protection": keyvault_purge_protection,
    "application_insights": application_insights,
    "container_registry": container_registry,
    "public_network_access": public_network_access,
    "hbi_workspace": hbi_workspace,
}
