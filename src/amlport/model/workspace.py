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

import re
from dataclasses import dataclass, field
from typing import Any

from amlport.errors import UsageError
from amlport.model.schema import NameMap, Record, Text, load_config_yaml, validate

BLOBSTORE_PREFIX = "azureml-blobstore-"
ARTIFACT_CONTAINER = "azureml"
DEFAULT_BLOB_DATASTORE = "workspaceblobstore"
ARTIFACT_DATASTORE = "workspaceartifactstore"
DEFAULT_ENDPOINT = "core.windows.net"
WORKSPACE_HINT = "see the workspace.yaml shape in docs/concepts.md"

# What a user-written file may hold (Azure's naming rules, loosened only where the tests'
# emulator accounts need it): a container name is one safe path segment by construction.
CONTAINER_NAME = Text(
    "a container name (1 to 63 lowercase letters, digits and inner hyphens)",
    re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"),
)
DATASTORE_NAME = Text(
    "a datastore name (letters, digits, '_' and '-')",
    re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,254}"),
)
_ACCOUNT = Text(
    "a storage account name (lowercase letters and digits)", re.compile(r"[a-z0-9]{1,24}")
)
_ENDPOINT = Text(
    "a storage endpoint suffix such as core.windows.net", re.compile(r"[A-Za-z0-9.-]+(?::\d+)?")
)
# A snapshot records its source as amlport saw it (a local copy's folder names included):
# only what would make a name a path is refused there, and keys a newer amlport adds pass.
_SEGMENT = Text("a single path segment", re.compile(r"(?!\.\.?$)[^/\\]{1,255}"))


def workspace_schema(*, strict: bool = True) -> Record:
    """The shape of ``workspace.yaml`` (and of a map's ``target``); ``strict=False`` for the
    source a snapshot recorded."""
    container = CONTAINER_NAME if strict else _SEGMENT
    return Record(
        {
            "account": _ACCOUNT if strict else _SEGMENT,
            "endpoint": _ENDPOINT,
            "subscription_id": Text("a subscription id"),
            "resource_group": Text("a resource group name"),
            "workspace": Text("a workspace name"),
            "workspace_id": Text("a workspace id"),
            "region": Text("a region name"),
            "containers": Record(
                {"blobstore": container, "artifacts": container},
                required=frozenset({"blobstore"}),
                what="a mapping (blobstore: <container>, artifacts: <container>)",
            ),
            "datastores": NameMap(
                DATASTORE_NAME if strict else _SEGMENT,
                container,
                what="a mapping of datastore name to container",
            ),
        },
        required=frozenset({"account", "containers"}),
        allow_unknown=not strict,
    )


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
        cls, data: Any, *, where: str = "workspace.yaml", strict: bool = True
    ) -> WorkspaceDescriptor:
        """Validate (every problem named with its key, ``UsageError``) and build."""
        validate(workspace_schema(strict=strict), data, where=where, hint=WORKSPACE_HINT)
        _refuse_secrets(data, where)
        containers = data["containers"]
        return cls(
            account=data["account"],
            blobstore_container=containers["blobstore"],
            artifact_container=containers.get("artifacts") or ARTIFACT_CONTAINER,
            endpoint=data.get("endpoint") or DEFAULT_ENDPOINT,
            subscription_id=data.get("subscription_id"),
            resource_group=data.get("resource_group"),
            workspace=data.get("workspace"),
            workspace_id=data.get("workspace_id"),
            region=data.get("region"),
            datastores=dict(data.get("datastores") or {}),
        )

    @classmethod
    def from_yaml(cls, text: str, *, where: str) -> WorkspaceDescriptor:
        """A ``workspace.yaml``'s text: bounded YAML, then the schema; errors name ``where``."""
        return cls.from_dict(load_config_yaml(text, where, WORKSPACE_HINT), where=where)

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


def _refuse_secrets(data: dict[str, Any], where: str) -> None:
    """A workspace file names a workspace (account, resource group, containers): a value that
    looks like a secret (a SAS pasted into ``resource_group``…) is refused, naming its keys,
    before anything is read or written. Stored redacted it would change the workspace's
    identity, which snapshots, ``latest`` and the map's ``source:`` match on."""
    from amlport.secrets import find_secrets  # loaded on first use: not by `--help`

    found: dict[str, set[str]] = {}

    def visit(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                visit(v, f"{key}.{k}" if key else str(k))
        elif isinstance(value, str) and (kinds := find_secrets(value)):
            found[key] = set(kinds)

    visit(data, "")
    if found:
        named = ", ".join(f"{key} ({', '.join(sorted(kinds))})" for key, kinds in found.items())
        raise UsageError(
            f"{where}: {named} holds what looks like a secret; a workspace file names the "
            "workspace and never holds a credential",
            hint="put the plain name there (a resource group, account or container name has "
            "no token), and rotate the credential if the file was shared",
        )
