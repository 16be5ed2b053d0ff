"""Optional: read the control-plane facts live from Azure Resource Manager.

A thin layer over azure-mgmt-storage and azure-mgmt-resource (``pip install amlport[arm]``),
imported only when ``--arm-live`` is used. Each response is serialised to the ARM REST shape
and fed to the same parsers as the ``--arm`` files, so both paths check the same way. Needs
a signed-in identity (DefaultAzureCredential) with Reader on the resource group. Read-only: it
calls only get/list operations.

There is no ARM emulator: the tests drive this glue with fake management clients and the
parsers with the az fixtures; it has not been run against Azure by the test suite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from amlport.audit import armfiles as A
from amlport.audit.facts import ControlPlane, Fact
from amlport.errors import UsageError
from amlport.secrets import redact

T = TypeVar("T")
WORKSPACE_API = "2024-04-01"
KEYVAULT_API = "2023-07-01"
ORIGIN = "arm (live)"


@dataclass(frozen=True)
class LiveTarget:
    subscription_id: str
    resource_group: str
    account: str
    workspace: str | None = None


def _clients(target: LiveTarget) -> tuple[Any, Any, Any, Any]:
    try:
        from azure.identity import DefaultAzureCredential
        from azure.mgmt.resource import ResourceManagementClient
        from azure.mgmt.resource.locks import ManagementLockClient
        from azure.mgmt.storage import StorageManagementClient
    except ImportError as exc:
        raise UsageError(
            f"--arm-live needs the Azure management libraries ({exc.name} is missing)",
            hint="pip install 'amlport[arm]', or export the facts with az and use --arm DIR",
        ) from None
    cred = DefaultAzureCredential()
    sub = target.subscription_id
    return (
        cred,
        StorageManagementClient(cred, sub),
        ResourceManagementClient(cred, sub),
        ManagementLockClient(cred, sub),
    )


def collect_live(target: LiveTarget) -> ControlPlane:
    """The control-plane facts for ``target``, each unknown with a reason if its call fails."""
    cred, storage, resources, locks = _clients(target)
    rg, acct = target.resource_group, target.account
    cp = ControlPlane(label=f"live ARM: {target.subscription_id}/{rg}")
    try:
        cp.storage = _fetch(
            lambda: storage.storage_accounts.get_properties(rg, acct),
            A.parse_storage_account,
            "storage account",
        )
        service = _fetch(
            lambda: storage.blob_services.get_service_properties(rg, acct),
            A.parse_blob_service,
            "blob service properties",
        )
        for key in A.BLOB_SERVICE_FACTS:
            setattr(cp, key, A.sub_fact(service, key))
        cp.replication = _fetch(
            lambda: {"value": list(storage.object_replication_policies.list(rg, acct))},
            A.parse_or_policies,
            "object replication policies",
        )
        cp.locks = _fetch(
            lambda: {"value": list(locks.management_locks.list_at_subscription_level())},
            A.parse_locks,
            "locks",
        )
        _workspace_and_vault(cp, resources, target)
    finally:
        getattr(cred, "close", lambda: None)()
    A.check_consistency(cp)
    return cp


def _workspace_and_vault(cp: ControlPlane, resources: Any, target: LiveTarget) -> None:
    if not target.workspace:
        reason = "the workspace name is unknown (add 'workspace:' to workspace.yaml)"
        cp.workspace = Fact.unknown(reason)
        cp.key_vault = Fact.unknown(reason)
        return
    ws_id = (
        f"/subscriptions/{target.subscription_id}/resourceGroups/{target.resource_group}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{target.workspace}"
    )
    cp.workspace = _fetch(
        lambda: resources.resources.get_by_id(ws_id, WORKSPACE_API), A.parse_workspace, "workspace"
    )
    kv_id = cp.workspace.value.key_vault_id if cp.workspace.known and cp.workspace.value else None
    if not kv_id:
        cp.key_vault = Fact.unknown(f"key vault id unknown: {cp.workspace.reason or 'not set'}")
        return
    cp.key_vault = _fetch(
        lambda: resources.resources.get_by_id(kv_id, KEYVAULT_API), A.parse_key_vault, "key vault"
    )


def _fetch(call: Callable[[], Any], parse: Callable[[Any], T], what: str) -> Fact[T]:
    try:
        return Fact.of(parse(_plain(call())), ORIGIN)
    except A.ShapeError as exc:
        return Fact.unknown(f"{what}: unexpected response shape ({exc})")
    except Exception as exc:  # any SDK/transport error: the fact is unknown, with why
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status}" if status else type(exc).__name__
        return Fact.unknown(f"reading the {what} failed: {detail}: {redact(str(exc))[:160]}")


def _plain(obj: Any) -> Any:
    """SDK models to the REST JSON shape the parsers read."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    serialize = getattr(obj, "serialize", None)
    if callable(serialize):
        return serialize(keep_readonly=True)
    return obj
