"""The importer contract.

- ``plan(item, ctx)`` is side-effect free: what ``--dry-run`` prints. Each ``ImportAction``
  says create | update | skip (the same content is already there) | conflict | blocked (with
  the reason: an unmapped datastore, an unmappable URI, a missing target).
- ``apply(action, ctx)`` carries one planned action out and returns the outcome. It is
  idempotent: applying a ``create`` whose content has meanwhile appeared is a ``skip``.
Importers read bundle bytes only through ``ctx`` (verified against their digests) and write
only through the write guard (``storage/guard.py``): the ``GuardedTarget`` they are given,
``ctx.guard.folder(...)`` for files, ``ctx.guard.admit(...)`` before any other write (an
MLflow registration). What a blob that is already there becomes is ``ctx.guard.decide``.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Mapping as ReadOnly
from dataclasses import dataclass, field
from typing import Any, Protocol

from amlport.bundle import Repository
from amlport.model.manifest import AssetEntry, Manifest
from amlport.model.mapping import Mapping
from amlport.rewriters.rules import RewriteRules
from amlport.storage.guard import WriteGuard

ACTIONS = ("create", "update", "skip", "conflict", "blocked", "failed")


@dataclass(slots=True)  # one per file of a restore: 100k+ held until the end
class ImportAction:
    importer: str
    action: str  # one of ACTIONS
    subject: str  # bundle path or asset id
    target: str  # where it lands (container/name, registry name/version, file)
    reason: str = ""
    details: ReadOnly[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "importer": self.importer,
            "action": self.action,
            "subject": self.subject,
            "target": self.target,
            "reason": self.reason,
        }


@dataclass
class ImportContext:
    repo: Repository
    manifest: Manifest
    mapping: Mapping
    rules: RewriteRules
    warn: Callable[[str], None]
    on_conflict: str = "fail"  # skip | overwrite | fail
    # The run's write guard. Without one, a closed guard with ``on_conflict``: the caller
    # opens it (``ctx.guard.open()``) once it has validated what it needs.
    guard: WriteGuard | None = None

    def __post_init__(self) -> None:
        if self.guard is None:
            self.guard = WriteGuard(on_conflict=self.on_conflict)
        self.on_conflict = self.guard.on_conflict

    @property
    def gate(self) -> WriteGuard:
        """The guard (always set after construction)."""
        assert self.guard is not None
        return self.guard

    def read(self, bundle_path: str) -> bytes:
        """A file of the snapshot, hash-checked."""
        return self.repo.read_file(self.manifest, bundle_path)

    def read_object(self, digest: str, size: int) -> bytes:
        """A file of the snapshot by its entry's digest and size, hash-checked: ``read``
        without finding the path (its first call indexes every path of the snapshot, ~6 MB
        at 100k files; an importer with the entry at hand reads it so; B, session 9)."""
        return self.repo.objects.get_bytes(digest, size)

    @property
    def snapshot_id(self) -> str:
        return str(self.manifest.snapshot_id)

    def assets(self, kind: str) -> list[AssetEntry]:
        return [a for a in self.manifest.assets if a.kind == kind]


class Importer(Protocol):
    @property
    def name(self) -> str: ...

    def plan(self, ctx: ImportContext) -> list[ImportAction]: ...

    def apply(self, action: ImportAction, ctx: ImportContext) -> ImportAction: ...
