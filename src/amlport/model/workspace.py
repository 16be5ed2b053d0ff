"""The identity of a workspace's storage: account, containers, datastores, workspace.

Shape of ``workspace.yaml`` (the fixtures carry one; a live source may be given one to name
non-default containers, e.g. hub workspaces' ``{workspace-id}-azureml``)::

    account: azmlautoprice5241
    endpoint: core.windows.net          # storage suffix; sovereign clouds differ
    subscription_id: 6a1c…
    resource_group: rg-ml-dev
    workspace: autoprice-dev
    workspace_id: bfe051f9-…            # the GUID in azureml-blobstore-<guid>
    region: westeurope
    containers:
      blobstore: azureml-blobstore-bfe051f9-…
      artifacts: azureml
    datastores:                         # datastore name -> container
      workspaceblobstore: azureml-blobstore-bfe051f9-…
      workspaceartifactstore: azureml
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.errors import UsageError

BLOBSTORE_PREFIX = "azureml-blobstore-"
ARTIFACT_CONTAINER = "azureml"
DEFAULT_BLOB_DATASTORE = "workspaceblobstore"
ARTIFACT_DATASTORE = "workspaceartifactstore"
DEFAULT_ENDPOINT = "core.windows.net"


@dataclass(frozen=True)
class WorkspaceDescriptor:
    account: str
    blobstore_container: str
    artifact_container: str = ARTIFACT_CONTAINER
    endpoint: str = DEFAULT_ENDPOINT
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    workspace_id: str | None = None
    region: str | None = None
    datastores: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # The two built-in datastores always exist; explicit entries win.
        merged = {
            DEFAULT_BLOB_DATASTORE: self.blobstore_container,
            ARTIFACT_DATASTORE: self.artifact_container,
        }
        merged.update(self.datastores)
        object.__setattr__(self, "datastores", merged)

    @property
    def containers(self) -> tuple[str, ...]:
        """The containers amlport reads, blobstore first."""
        return (self.blobstore_container, self.artifact_container)

    def container_of(self, datastore: str) -> str | None:
        return self.datastores.get(datastore)

    def datastore_of(self, container: str) -> str | None:
        """The datastore that names ``container`` (the built-in one when several do)."""
        names = [ds for ds, c in self.datastores.items() if c == container]
        for preferred in (DEFAULT_BLOB_DATASTORE, ARTIFACT_DATASTORE):
            if preferred in names:
                return preferred
        return names[0] if names else None

    @classmethod
    def from_dict(
        cls, data: dict[str, Any], *, where: str = "workspace.yaml"
    ) -> WorkspaceDescriptor:
        if not isinstance(data, dict):
            raise UsageError(f"{where}: expected a mapping", hint="see docs/concepts.md")
        containers = data.get("containers") or {}
        account = data.get("account")
        blobstore = containers.get("blobstore")
        if not account or not blobstore:
            raise UsageError(
                f"{where}: 'account' and 'containers.blobstore' are required",
                hint="see the workspace.yaml shape in docs/concepts.md",
            )
        datastores = data.get("datastores") or {}
        if not isinstance(datastores, dict):
            raise UsageError(f"{where}: 'datastores' must map datastore name to container")
        return cls(
            account=str(account),
            blobstore_container=str(blobstore),
            artifact_container=str(containers.get("artifacts") or ARTIFACT_CONTAINER),
            endpoint=str(data.get("endpoint") or DEFAULT_ENDPOINT),
            subscription_id=_opt(data.get("subscription_id")),
            resource_group=_opt(data.get("resource_group")),
            workspace=_opt(data.get("workspace")),
            workspace_id=_opt(data.get("workspace_id")),
            region=_opt(data.get("region")),
            datastores={str(k): str(v) for k, v in datastores.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"account": self.account, "endpoint": self.endpoint}
        for key in ("subscription_id", "resource_group", "workspace", "workspace_id", "region"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out["containers"] = {
            "blobstore": self.blobstore_container,
            "artifacts": self.artifact_container,
        }
        out["datastores"] = dict(self.datastores)
        return out


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)


def guess_containers(names: list[str]) -> tuple[str | None, str | None]:
    """Pick (blobstore, artifacts) containers from a container listing.

    Classic workspaces use ``azureml-blobstore-<guid>`` and ``azureml``; hub/project
    workspaces use ``<workspace-id>-blobstore`` and ``<workspace-id>-azureml``.
    """
    blob = sorted(n for n in names if n.startswith(BLOBSTORE_PREFIX) or n.endswith("-blobstore"))
    art = [n for n in names if n == ARTIFACT_CONTAINER] or sorted(
        n for n in names if n.endswith("-azureml")
    )
    return (blob[0] if blob else None, art[0] if art else None)
