"""What ``run_export`` is asked (``ExportRequest``) and what it reports (``ExportResult``).

Apart from the engine (``engine.py``), which imports the walk, the lineage graph and the
exporters: a caller that only builds a request or a result (``backup`` decided from its
listing, docs/design/0007) does not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from amlport.errors import ExitCode
from amlport.export.kinds import DEFAULT_INCLUDE
from amlport.export.transfer import TransferStats
from amlport.model.manifest import AssetEntry, Manifest

if TYPE_CHECKING:
    from amlport.export.selection import Selection
    from amlport.export.writer import BundleWriter
    from amlport.lineage import LineageGraph
    from amlport.model.inventory import Inventory


class PlanExtension(Protocol):
    """Plans more files after the exporters (``backup``'s catch-all); returns their assets.

    It may add nodes to ``chosen.nodes`` (the lineage subgraph the snapshot records). Its
    ``name`` is recorded in the manifest's ``selection`` as ``extension``.
    """

    name: str

    def __call__(
        self, inv: Inventory, lg: LineageGraph, chosen: Selection, writer: BundleWriter
    ) -> list[AssetEntry]: ...

    def release(self) -> None:
        """Drop what planning needed (the transfer does not)."""


@dataclass
class ExportRequest:
    select: list[str] = field(default_factory=list)
    include: frozenset[str] = DEFAULT_INCLUDE
    specs: Path | None = None
    dry_run: bool = False
    tags: list[str] = field(default_factory=list)
    workers: int = 8
    created: str = ""  # snapshot time (ISO-8601 UTC, format_time); empty: when it is written
    extension: PlanExtension | None = None
    # Folder of the walk's read cache (``walk/cache.py``; the CLI's default:
    # ``default_cache_dir()``); None: every file the walk parses is read from the source.
    cache_dir: Path | None = None
    # Header fields the snapshot records besides its own (``Manifest.extra``), given how the
    # transfer went: a backup's listing fingerprint (``backup/fingerprint.py``).
    record: Callable[[TransferStats], dict[str, Any]] | None = None


@dataclass
class ExportResult:
    assets: list[AssetEntry]
    skipped: list[tuple[str, str]]  # (item node, reason)
    planned_files: int
    planned_bytes: int
    data_skipped_bytes: int
    warnings: list[str]
    stats: TransferStats | None = None
    snapshot_id: str | None = None
    parent: str | None = None
    retries: int = 0  # storage calls retried (throttling, broken connections): walk + transfer
    cached_reads: int = 0  # files the walk took from its read cache, not from the source
    # The snapshot written and the one before it (same source), for callers that compare
    # them (backup) without reading either back. ``previous`` holds the lists the transfer
    # carries over (``CARRIED``) only: ``complete_previous`` reads the rest.
    manifest: Manifest | None = field(default=None, repr=False)
    previous: Manifest | None = field(default=None, repr=False)

    def cache_line(self) -> str | None:
        """What the read cache saved, for the text output (None when it saved nothing)."""
        if not self.cached_reads:
            return None
        return f"{self.cached_reads} parsed files unchanged: taken from the read cache"

    @property
    def exit_code(self) -> ExitCode:
        if self.stats is not None and self.stats.integrity_failures:
            return ExitCode.INTEGRITY  # an object failed its MD5 check (docs/exit-codes.md)
        if self.stats is not None and self.stats.failures:
            return ExitCode.PARTIAL
        return ExitCode.WARNINGS if self.warnings or self.skipped else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        stats = self.stats.to_dict() if self.stats else None
        return {
            "snapshot": self.snapshot_id,
            "parent": self.parent,
            "assets": [
                {
                    "kind": a.kind,
                    "name": a.name,
                    "id": a.id,
                    "files": len(a.files),
                    "portable": a.portable,
                    "v2_yaml": a.v2_yaml,
                }
                for a in self.assets
            ],
            "skipped": [{"item": n, "reason": r} for n, r in self.skipped],
            "planned": {
                "files": self.planned_files,
                "bytes": self.planned_bytes,
                "data_left_out_bytes": self.data_skipped_bytes,
            },
            "transfer": stats,
            "retries": self.retries,
            "cached_reads": self.cached_reads,
            "warnings": self.warnings,
        }
