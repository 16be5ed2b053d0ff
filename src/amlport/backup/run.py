"""``amlport backup``: an incremental snapshot of the whole workspace, and what changed.

A backup is an export of every include kind, data payloads too, plus the catch-all
(``catchall.py``) that carries every blob no exporter claimed — so a backup holds every blob
of the workspace containers. With ``--select`` or a narrower ``--include`` it is an export of
that selection (no catch-all). The new snapshot is compared with the previous snapshot of the
same source (its ``parent``): assets and runs added / removed / changed, and new bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from amlport.backup.catchall import CatchAll, RecordingSource
from amlport.backup.diff import DiffReport, diff_sides
from amlport.backup.locking import POLL_SECONDS, locked
from amlport.backup.sides import ALL_KINDS, SnapshotSide
from amlport.bundle import Repository, RepositoryLocked
from amlport.errors import ExitCode
from amlport.export import ExportRequest, ExportResult, complete_previous, run_export
from amlport.model.manifest import format_time
from amlport.progress import Progress
from amlport.storage.base import Source
from amlport.storage.guard import refuse_repository_in_source
from amlport.storage.opener import StorageAuth


@dataclass
class BackupRequest:
    select: list[str] = field(default_factory=list)
    include: frozenset[str] = ALL_KINDS
    tags: list[str] = field(default_factory=list)
    workers: int = 8
    retry_lock: float = 0.0  # seconds to wait for a conflicting lock (forget/prune running)
    cache_dir: Path | None = None  # the walk's read cache (ExportRequest.cache_dir)
    # The snapshot time. Library callers (tests simulating a schedule) may set it; the CLI
    # always uses the current time.
    now: datetime | None = None

    @property
    def whole_workspace(self) -> bool:
        return not self.select and self.include >= ALL_KINDS


@dataclass
class BackupResult:
    export: ExportResult
    changes: DiffReport | None  # None when there is no previous snapshot of this source
    whole_workspace: bool

    @property
    def snapshot_id(self) -> str | None:
        return self.export.snapshot_id

    @property
    def parent(self) -> str | None:
        return self.export.parent

    @property
    def exit_code(self) -> ExitCode:
        return self.export.exit_code

    def to_dict(self) -> dict[str, Any]:
        stats = self.export.stats
        return {
            "snapshot": self.snapshot_id,
            "parent": self.parent,
            "whole_workspace": self.whole_workspace,
            "assets": len(self.export.assets),
            "transfer": stats.to_dict() if stats else None,
            "cached_reads": self.export.cached_reads,
            "changes": self.changes.to_dict() if self.changes else None,
            "skipped": [{"item": n, "reason": r} for n, r in self.export.skipped],
            "warnings": self.export.warnings,
            "exit_code": int(self.exit_code),
        }

    def lines(self) -> list[str]:
        stats = self.export.stats
        out = [f"snapshot {self.snapshot_id} (parent {self.parent or '-'})"]
        if stats is not None:
            out.append(
                f"{stats.files} files, {stats.bytes:,} bytes; {stats.new_objects} new objects, "
                f"{stats.new_bytes:,} new bytes; {stats.reused} reused, {stats.read_bytes:,} "
                "bytes read"
            )
        cached = self.export.cache_line()
        if cached:
            out.append(cached)
        if self.changes is None:
            out.append(f"first snapshot of this source: {len(self.export.assets)} assets")
        else:
            out.append("changes since the previous snapshot:")
            out += ["  " + line for line in self.changes.lines()]
        return out


def backup_request(request: BackupRequest, source: Source) -> tuple[ExportRequest, Source]:
    """The export a backup runs, and the source to give it (recording, for the catch-all)."""
    export = ExportRequest(
        select=list(request.select),
        include=frozenset(request.include),
        tags=list(request.tags),
        workers=request.workers,
        created=format_time(request.now) if request.now is not None else "",
        cache_dir=request.cache_dir,
    )
    if not request.whole_workspace:
        return export, source
    recorder = RecordingSource(source)
    export.extension = CatchAll(recorder)
    return export, recorder


def run_backup(
    source: Source,
    repo_path: str | Path,
    request: BackupRequest,
    *,
    progress: Progress | None = None,
    on_warning: Callable[[str], None] | None = None,
    repo_auth: StorageAuth | None = None,
) -> BackupResult:
    """``repo_path``: a folder or an Azure container URL (``repo_auth``: its credential)."""
    export, src = backup_request(request, source)
    refuse_repository_in_source(source, repo_path)  # before the repository is created
    repo = Repository.open_or_init(repo_path, auth=repo_auth, on_warning=on_warning)
    # Holding a shared lock first lets --retry-lock wait for a forget/prune to finish, and keeps
    # any exclusive taker out while the export runs (it takes a shared lock of its own).
    deadline = time.monotonic() + request.retry_lock
    with repo, locked(repo, exclusive=False, wait=request.retry_lock):
        while True:
            try:
                result = run_export(
                    src,
                    repo_path,
                    export,
                    progress=progress,
                    repo_auth=repo_auth,
                    on_warning=on_warning,
                )
                break
            except RepositoryLocked:  # raced an exclusive taker that is backing off now
                if time.monotonic() >= deadline:
                    raise
                time.sleep(POLL_SECONDS)
        changes = None
        if result.manifest is not None and result.previous is not None:
            previous = complete_previous(repo, result.previous, result.manifest)
            changes = diff_sides(
                SnapshotSide(repo, previous), SnapshotSide(repo, result.manifest), audit=False
            )  # no audit facts: they would walk both snapshots on every backup
    return BackupResult(result, changes, request.whole_workspace)
