"""Rewrite rules (what to re-bind, in which direction) and the records a rewrite leaves.

Pure data: no I/O. The rules say *where a location comes from* (``source``), *where it goes*
(``target``, import only) and how names translate (``datastore_map``, ``asset_renames``,
``job_output``). See ``docs/rewriting.md`` for every form and the reasoning.

Two outcomes besides "rewritten" exist for one URI:

- ``KeepWithWarning``: the URI is left as it is and the user is told why (another storage
  account, a named job output nobody resolved, a tracking URI). Raised by a family rewriter,
  turned into a warning by ``rewrite_uri``; never escapes the package.
- ``Unmappable``: the URI is bound to the workspace being re-bound but no rule says where it
  goes (a container of the source account that is no datastore, a datastore without a target).
  A real error (exit 2) naming the URI (never its query string) and where it was found; the
  caller decides whether it is fatal. The log rewriter downgrades it to a warning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from amlport.errors import AmlportError
from amlport.model.mapping import mapped_datastore
from amlport.model.uris import DatastorePath
from amlport.model.workspace import DEFAULT_ENDPOINT, WorkspaceDescriptor

__all__ = [
    "Change",
    "Direction",
    "Identity",
    "JobOutputResolver",
    "KeepWithWarning",
    "RewriteResult",
    "RewriteRules",
    "Unmappable",
    "UriChange",
]

Direction = Literal["export", "import"]
# (job name, output name) -> the folder that output was written to, or None if unknown.
JobOutputResolver = Callable[[str, str], DatastorePath | None]


def _frozen(mapping: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class Identity:
    """Where a workspace's storage lives: the facts a bound URI is compared with.

    ``containers`` maps container -> datastore (the datastore that re-binds it);
    ``datastores`` maps datastore -> container and may name more datastores than
    ``containers`` (several datastores can share one container). Any field may be unknown
    (None / empty); an unknown workspace scope matches every scope (see ``is_workspace``).
    """

    account: str | None = None
    endpoint: str = DEFAULT_ENDPOINT
    containers: Mapping[str, str] = field(default_factory=dict)
    subscription_id: str | None = None
    resource_group: str | None = None
    workspace: str | None = None
    workspace_id: str | None = None
    region: str | None = None
    datastores: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "containers", _frozen(self.containers))
        object.__setattr__(self, "datastores", _frozen(self.datastores))

    @classmethod
    def from_descriptor(cls, desc: WorkspaceDescriptor) -> Identity:
        containers = {c: desc.datastore_of(c) for c in dict.fromkeys(desc.datastores.values())}
        return cls(
            account=desc.account,
            endpoint=desc.endpoint,
            containers={c: ds for c, ds in containers.items() if ds is not None},
            subscription_id=desc.subscription_id,
            resource_group=desc.resource_group,
            workspace=desc.workspace,
            workspace_id=desc.workspace_id,
            region=desc.region,
            datastores=desc.datastores,
        )

    @property
    def known_datastores(self) -> frozenset[str]:
        return frozenset(self.datastores) | frozenset(self.containers.values())

    def owns(self, account: str, endpoint: str) -> bool:
        """Is ``account`` at ``endpoint`` this workspace's storage account?"""
        return (
            self.account is not None
            and account.lower() == self.account.lower()
            and endpoint.lower() == self.endpoint.lower()
        )

    def datastore_of(self, container: str) -> str | None:
        return self.containers.get(container)

    def container_of(self, datastore: str) -> str | None:
        if datastore in self.datastores:
            return self.datastores[datastore]
        return next((c for c, ds in self.containers.items() if ds == datastore), None)

    def is_workspace(
        self,
        subscription: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        workspace_id: str | None = None,
    ) -> bool:
        """Does a scope name this workspace? Unknown parts (either side) are not compared."""
        pairs = (
            (subscription, self.subscription_id),
            (resource_group, self.resource_group),
            (workspace, self.workspace),
            (workspace_id, self.workspace_id),
        )
        return all(a is None or b is None or a.lower() == b.lower() for a, b in pairs)

    @property
    def has_scope(self) -> bool:
        """Enough to write a long-form URI or an ARM scope for this workspace."""
        return None not in (self.subscription_id, self.resource_group, self.workspace)


@dataclass(frozen=True)
class RewriteRules:
    """How to re-bind: ``export`` makes locations neutral; ``import`` binds them to ``target``.

    ``datastore_map`` (import): source datastore -> target datastore. A datastore missing
    from it keeps its name when the target identity knows that name, else it is unmappable.
    ``asset_renames`` (import): ``name`` or ``name:version`` / ``name@label`` -> new name (a
    value with ``:``/``@`` replaces the version/label too). ``job_output`` (export) resolves
    named job outputs (``azureml://jobs/<job>/outputs/<out>``) to the folder they were written to.
    """

    direction: Direction
    source: Identity
    target: Identity | None = None
    datastore_map: Mapping[str, str] = field(default_factory=dict)
    asset_renames: Mapping[str, str] = field(default_factory=dict)
    job_output: JobOutputResolver | None = None
    # --strict: a URI that would only be kept with a warning (a long URI while the source
    # workspace's identity is unknown) is refused instead.
    strict: bool = False

    def __post_init__(self) -> None:
        if self.direction not in ("export", "import"):
            raise ValueError(f"direction must be 'export' or 'import', not {self.direction!r}")
        object.__setattr__(self, "datastore_map", _frozen(self.datastore_map))
        object.__setattr__(self, "asset_renames", _frozen(self.asset_renames))

    @property
    def exporting(self) -> bool:
        return self.direction == "export"

    def target_datastore(self, datastore: str, uri: str) -> str:
        """The target's name for a source datastore; raises ``Unmappable`` when it is not
        mapped. The rule is the importer's (``model.mapping.mapped_datastore``): listed in
        ``datastore_map`` and naming a datastore the target has a container for; a datastore
        the target merely has by the same name is not mapped."""
        target = self.target
        mapped = (
            self.datastore_map.get(datastore)
            if target is None  # no target identity to check against (rewriter tests)
            else mapped_datastore(self.datastore_map, target.container_of, datastore)
        )
        if mapped is not None:
            return mapped
        listed = self.datastore_map.get(datastore)
        reason = (
            f"datastore {datastore!r} is not mapped to a target datastore (add it under "
            "'datastores:' in the map file)"
            if listed is None
            else f"datastore {datastore!r} is mapped to target datastore {listed!r}, which the "
            "target has no container for (add it under the target's 'datastores:')"
        )
        raise Unmappable(uri, reason=reason)

    def target_container(self, datastore: str, uri: str) -> str:
        """The target container behind a *target* datastore name."""
        container = None if self.target is None else self.target.container_of(datastore)
        if container is None:
            raise Unmappable(uri, reason=f"target datastore {datastore!r} has no known container")
        return container


class KeepWithWarning(Exception):
    """Leave this URI as it is and warn with ``reason`` (raised by family rewriters)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def _without_query(uri: str) -> str:
    return uri.strip().partition("?")[0]


class Unmappable(AmlportError):
    """A workspace-bound URI that no rule re-binds. Exit code 2 (see docs/exit-codes.md)."""

    def __init__(self, uri: str, where: str = "", reason: str = "") -> None:
        self.uri = _without_query(uri)  # a query string may be a SAS: never keep it
        self.where = where
        self.reason = reason
        at = f" (found in {where})" if where else ""
        because = f": {reason}" if reason else ""
        super().__init__(
            f"cannot re-bind {self.uri}{at}{because}",
            hint="add a mapping for it (datastores/containers in the map file or in "
            "workspace.yaml), see docs/rewriting.md",
        )

    def at(self, where: str) -> Unmappable:
        """The same error, saying where the URI was found."""
        return Unmappable(self.uri, where, self.reason)

    def __reduce__(self) -> tuple[type[Unmappable], tuple[str, str, str]]:
        return (Unmappable, (self.uri, self.where, self.reason))


@dataclass(frozen=True)
class UriChange:
    """What ``rewrite_uri`` decided for one URI.

    ``before``/``after`` never carry a query string (a query may be a SAS). ``replacement``
    is the text to put where the URI was (the original when only a warning is reported).
    """

    before: str
    after: str
    replacement: str
    rule: str
    warning: str | None = None
    dropped_sas: bool = False

    @property
    def changed(self) -> bool:
        return self.after != self.before or self.dropped_sas


@dataclass(frozen=True)
class Change:
    """One rewritten site: the file, where in it (JSON/YAML pointer or ``line N``), and how."""

    file: str
    location: str
    before: str
    after: str
    rule: str


@dataclass
class RewriteResult:
    """A rewritten file: its bytes, every change, redaction counts by kind, and warnings."""

    data: bytes
    changes: list[Change] = field(default_factory=list)
    redactions: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return bool(self.changes or self.redactions)
