"""Optional: read the control-plane facts live from Azure Resource Manager.

A thin layer over azure-mgmt-storage, azure-mgmt-resource and azure-mgmt-resource-locks
(``pip install 'amlport[arm]'``), imported only when ``--arm-live`` is used. Each response is
turned into the ARM REST shape (``.as_dict()`` of the current "hybrid" models, ``.serialize()``
of the older msrest ones) and fed to the same parsers as the ``--arm`` files, so both paths
check the same way. Read-only: only GET requests. Every SDK call passes its arguments by
keyword (azure-mgmt-resource 26 made ``api_version`` keyword-only).

The endpoint is ``AMLPORT_ARM_ENDPOINT`` (sovereign clouds, tests) or public Azure; the token
scope follows it. The credential is ``DefaultAzureCredential`` unless the caller passes one.
The tests run every call here through the real SDK clients against a local HTTPS replay of the
official ARM examples (tests/helpers/armreplay.py, docs/design/0006-live-control-plane.md).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from amlport.audit import armfiles as A
from amlport.audit.facts import ControlPlane, Fact, Lock
from amlport.errors import UsageError
from amlport.secrets import redact

T = TypeVar("T")
WORKSPACE_API = "2024-04-01"
KEYVAULT_API = "2023-07-01"
MODELS_API = "2024-04-01"
ORIGIN = "arm (live)"
ENDPOINT_ENV = "AMLPORT_ARM_ENDPOINT"
PUBLIC_ENDPOINT = "https://management.azure.com"
GEO_SKUS = {"Standard_GRS", "Standard_RAGRS", "Standard_GZRS", "Standard_RAGZRS"}
MAX_PAGES = 200  # a bound on nextLink chains (models list): a looping server cannot hang us
WS_PROVIDER = "Microsoft.MachineLearningServices/workspaces"


@dataclass(frozen=True)
class LiveTarget:
    subscription_id: str
    resource_group: str
    account: str
    workspace: str | None = None

    @property
    def group_id(self) -> str:
        return f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"

    @property
    def storage_id(self) -> str:
        return f"{self.group_id}/providers/Microsoft.Storage/storageAccounts/{self.account}"

    @property
    def workspace_id(self) -> str | None:
        if not self.workspace:
            return None
        return f"{self.group_id}/providers/{WS_PROVIDER}/{self.workspace}"


@dataclass(frozen=True)
class ArmClients:
    storage: Any
    resources: Any
    locks: Any


def arm_endpoint() -> str:
    """The ARM endpoint: ``AMLPORT_ARM_ENDPOINT`` or public Azure. Must be https (the SDK
    refuses to send a bearer token over plain http)."""
    url = (os.environ.get(ENDPOINT_ENV) or PUBLIC_ENDPOINT).strip().rstrip("/")
    if not url.lower().startswith("https://"):
        raise UsageError(
            f"{ENDPOINT_ENV} must be an https URL, not {redact(url)!r}",
            hint="e.g. https://management.chinacloudapi.cn for Azure China",
        )
    return url


def default_credential() -> Any:
    """DefaultAzureCredential (az login, managed identity, workload identity)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise _missing(exc) from None
    return DefaultAzureCredential()


def _missing(exc: ImportError) -> UsageError:
    return UsageError(
        f"--arm-live needs the Azure management libraries ({exc.name} is missing)",
        hint="pip install 'amlport[arm]', or export the facts with az and use --arm DIR",
    )


def make_clients(subscription_id: str, *, credential: Any, endpoint: str) -> ArmClients:
    """The three management clients, all on ``endpoint`` with a token scope to match."""
    try:
        from azure.mgmt.resource.locks import ManagementLockClient
        from azure.mgmt.resource.resources import ResourceManagementClient
        from azure.mgmt.storage import StorageManagementClient
    except ImportError as exc:
        raise _missing(exc) from None
    kw: dict[str, Any] = {"base_url": endpoint}
    if endpoint != PUBLIC_ENDPOINT:  # sovereign clouds: the token audience is the endpoint
        kw["credential_scopes"] = [f"{endpoint}/.default"]
    return ArmClients(
        storage=StorageManagementClient(
            credential=credential, subscription_id=subscription_id, **kw
        ),
        resources=ResourceManagementClient(
            credential=credential, subscription_id=subscription_id, **kw
        ),
        locks=ManagementLockClient(credential=credential, subscription_id=subscription_id, **kw),
    )


def collect_live(target: LiveTarget, *, credential: Any = None) -> ControlPlane:
    """The control-plane facts for ``target``, each unknown with a reason if its call fails."""
    endpoint = arm_endpoint()
    cred = credential if credential is not None else default_credential()
    clients = make_clients(target.subscription_id, credential=cred, endpoint=endpoint)
    cp = ControlPlane(label=f"live ARM: {target.subscription_id}/{target.resource_group}")
    try:
        _storage(cp, clients.storage, target)
        _workspace_and_vault(cp, clients.resources, target)
        cp.locks, cp.lock_gaps = _locks(clients.locks, target, cp)
        if target.workspace_id:
            cp.registry = _fetch(
                lambda: _registered_models(clients.resources, str(target.workspace_id)),
                _model_uris,
                "model registry",
            )
    finally:
        if credential is None:
            getattr(cred, "close", lambda: None)()
    A.check_consistency(cp)
    return cp


def _storage(cp: ControlPlane, storage: Any, target: LiveTarget) -> None:
    rg, acct = target.resource_group, target.account
    cp.storage = _fetch(
        lambda: storage.storage_accounts.get_properties(resource_group_name=rg, account_name=acct),
        A.parse_storage_account,
        "storage account",
    )
    sku = cp.storage.value.sku if cp.storage.known and cp.storage.value else None
    if sku in GEO_SKUS:  # geoReplicationStats only comes with expand, and only for geo SKUs
        geo = _fetch(
            lambda: storage.storage_accounts.get_properties(
                resource_group_name=rg, account_name=acct, expand="geoReplicationStats"
            ),
            A.parse_storage_account,
            "storage account geo-replication status",
        )
        if geo.known:
            cp.storage = geo
    service = _fetch(
        lambda: storage.blob_services.get_service_properties(
            resource_group_name=rg, account_name=acct
        ),
        A.parse_blob_service,
        "blob service properties",
    )
    for key in A.BLOB_SERVICE_FACTS:
        setattr(cp, key, A.sub_fact(service, key))
    cp.replication = _fetch(
        lambda: {"value": _policies(storage, rg, acct)},
        A.parse_or_policies,
        "object replication policies",
    )


def _policies(storage: Any, rg: str, acct: str) -> list[Any]:
    """Each policy read on its own: the list call leaves out the rules."""
    ops = storage.object_replication_policies
    listed = [_plain(p) for p in ops.list(resource_group_name=rg, account_name=acct)]
    return [
        ops.get(
            resource_group_name=rg,
            account_name=acct,
            object_replication_policy_id=A.prop(p, "policyId") or p["name"],
        )
        for p in listed
    ]


def _locks(
    locks: Any, target: LiveTarget, cp: ControlPlane
) -> tuple[Fact[tuple[Lock, ...]], tuple[str, ...]]:
    """Every lock in the subscription; for an identity that may not list those, the locks at
    (and inherited by) the resource group, the storage account and the workspace, with the
    scopes that stayed unread as gaps."""
    ops = locks.management_locks
    whole = _fetch(partial(_value_list, ops.list_at_subscription_level), A.parse_locks, "locks")
    if whole.known:
        return whole, ()
    calls: dict[str, Callable[[], Any] | None] = {
        "resource group": lambda: ops.list_at_resource_group_level(
            resource_group_name=target.resource_group
        ),
        "storage account": lambda: ops.list_at_resource_level(
            resource_group_name=target.resource_group,
            resource_provider_namespace="Microsoft.Storage",
            parent_resource_path="",
            resource_type="storageAccounts",
            resource_name=target.account,
        ),
        "workspace": (
            lambda: ops.list_at_resource_level(
                resource_group_name=target.resource_group,
                resource_provider_namespace="Microsoft.MachineLearningServices",
                parent_resource_path="",
                resource_type="workspaces",
                resource_name=str(target.workspace),
            )
        )
        if target.workspace
        else None,
    }
    # list_by_scope would be simpler, but locks 1.0.0 percent-encodes the scope's slashes.
    found: dict[str, Lock] = {}
    gaps = [f"subscription {target.subscription_id}: {whole.reason}"]
    for label, call in calls.items():
        if call is None:
            continue
        fact = _fetch(partial(_value_list, call), A.parse_locks, f"{label} locks")
        if fact.known and fact.value is not None:
            found.update({lk.id.lower(): lk for lk in fact.value})
        else:
            gaps.append(f"{label}: {fact.reason}")
    if len(gaps) == 1 + sum(1 for c in calls.values() if c):
        return Fact.unknown("; ".join(gaps)), ()
    return Fact.of(tuple(found.values()), f"{ORIGIN}, per scope"), tuple(gaps)


def _value_list(call: Callable[[], Any]) -> dict[str, Any]:
    """A pager's items as the REST list shape the parsers read."""
    return {"value": list(call())}


def _workspace_and_vault(cp: ControlPlane, resources: Any, target: LiveTarget) -> None:
    ws_id = target.workspace_id
    if not ws_id:
        reason = "the workspace name is unknown (add 'workspace:' to workspace.yaml)"
        cp.workspace = Fact.unknown(reason)
        cp.key_vault = Fact.unknown(reason)
        cp.registry = Fact.unknown(reason)
        return
    cp.workspace = _fetch(
        lambda: resources.resources.get_by_id(resource_id=ws_id, api_version=WORKSPACE_API),
        A.parse_workspace,
        "workspace",
    )
    kv_id = cp.workspace.value.key_vault_id if cp.workspace.known and cp.workspace.value else None
    if not kv_id:
        cp.key_vault = Fact.unknown(f"key vault id unknown: {cp.workspace.reason or 'not set'}")
        return
    cp.key_vault = _fetch(
        lambda: resources.resources.get_by_id(resource_id=kv_id, api_version=KEYVAULT_API),
        A.parse_key_vault,
        "key vault",
    )


def _registered_models(resources: Any, ws_id: str) -> list[dict[str, Any]]:
    """Every model version of the workspace (model containers, then each one's versions),
    through the resource client's own pipeline: same endpoint, credential and retries."""
    versions: list[dict[str, Any]] = []
    for model in _get_pages(resources, f"{ws_id}/models?api-version={MODELS_API}"):
        name = str(model.get("name") or "")
        if not name or "/" in name:
            raise A.ShapeError(f"model container without a usable name: {name!r}")
        versions += _get_pages(
            resources, f"{ws_id}/models/{name}/versions?api-version={MODELS_API}"
        )
    return versions


def _get_pages(resources: Any, url: str) -> list[dict[str, Any]]:
    from azure.core.rest import HttpRequest

    items: list[dict[str, Any]] = []
    next_url: str | None = url
    for _ in range(MAX_PAGES):
        if not next_url:
            return items
        response = resources.send_request(HttpRequest("GET", next_url))
        response.raise_for_status()
        page = response.json()
        items += A.items_of(page, "model registry list")
        next_url = page.get("nextLink") if isinstance(page, dict) else None
    raise A.ShapeError(f"more than {MAX_PAGES} pages of nextLink")


def _model_uris(doc: Any) -> tuple[str, ...]:
    uris = [A.prop(v, "modelUri") for v in A.items_of(doc, "model versions")]
    return tuple(sorted({str(u) for u in uris if u}))


def _fetch(call: Callable[[], Any], parse: Callable[[Any], T], what: str) -> Fact[T]:
    try:
        return Fact.of(parse(_plain(call())), ORIGIN)
    except A.ShapeError as exc:
        return Fact.unknown(f"{what}: unexpected response shape ({exc})")
    except UsageError:
        raise
    except Exception as exc:  # any SDK/transport error: the fact is unknown, with why
        status = getattr(exc, "status_code", None)
        detail = f"HTTP {status}" if status else type(exc).__name__
        return Fact.unknown(f"reading the {what} failed: {detail}: {redact(str(exc))[:160]}")


def _plain(obj: Any) -> Any:
    """SDK models to the REST JSON shape the parsers read."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    serialize = getattr(obj, "serialize", None)  # msrest models (locks): REST names
    if callable(serialize):
        return serialize(keep_readonly=True)
    as_dict = getattr(obj, "as_dict", None)  # hybrid models (storage >= 25, resource 26)
    if callable(as_dict):
        return as_dict()
    return obj
