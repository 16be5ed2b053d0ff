"""``amlport backup``: an incremental snapshot of the whole workspace, and what changed.

A backup is an export of every include kind, data payloads too, plus the catch-all
(``catchall.py``) that carries every blob no exporter claimed — so a backup holds every blob
of the workspace containers. With ``--select`` or a narrower ``--include`` it is an export of
that selection (no catch-all). The new snapshot is compared with the previous snapshot of the
same source (its ``parent``): assets and runs added / removed / changed, and new bytes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from amlport import __version__
from amlport.backup.catchall import CatchAll
from amlport.backup.diff import DiffReport, Section
from amlport.backup.fingerprint import FIELD, Fingerprint, context, recorded
from amlport.backup.locking import POLL_SECONDS, locked
from amlport.backup.recording import RecordingSource
from amlport.bundle import Repository, RepositoryLocked
from amlport.bundle.snapshots import SnapshotInfo
from amlport.bundle.trees import TreeReader
from amlport.errors import ExitCode
from amlport.export.kinds import ALL_KINDS
from amlport.export.request import ExportRequest, ExportResult
from amlport.export.transfer import TransferStats
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import format_time, source_key
from amlport.model.provenance import IDENTITY_NAME
from amlport.progress import Progress
from amlport.storage.base import BlobInfo, Source
from amlport.storage.guard import refuse_repository_in_source
from amlport.storage.opener import StorageAuth

SKIPPED = "skipped "  # how the export records a skipped item among the warnings
# The walk, the exporters and the comparison of two snapshots are imported where a backup
# runs them: one decided from its listing never does (docs/design/0007).


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
    # Walk, plan and compare every file even when the listing (and everything else the
    # snapshot is a function of) is the previous snapshot's (``--force``).
    force: bool = False

    @property
    def whole_workspace(self) -> bool:
        return not self.select and self.include >= ALL_KINDS


@dataclass
class BackupResult:
    export: ExportResult
    changes: DiffReport | None  # None when there is no previous snapshot of this source
    whole_workspace: bool
    # The snapshot was decided from the listing: it names the previous snapshot's pieces;
    # nothing was walked, planned or transferred (``fingerprint.py``).
    from_listing: bool = False
    asset_count: int | None = None  # when ``export.assets`` was not built (from the listing)

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
            "from_listing": self.from_listing,
            "assets": self.assets,
            "transfer": stats.to_dict() if stats else None,
            "cached_reads": self.export.cached_reads,
            "changes": self.changes.to_dict() if self.changes else None,
            "skipped": [{"item": n, "reason": r} for n, r in self.export.skipped],
            "warnings": self.export.warnings,
            "exit_code": int(self.exit_code),
        }

    @property
    def assets(self) -> int:
        return len(self.export.assets) if self.asset_count is None else self.asset_count

    def lines(self) -> list[str]:
        stats = self.export.stats
        out = [f"snapshot {self.snapshot_id} (parent {self.parent or '-'})"]
        if self.from_listing:
            out.append(
                "the listing is the previous snapshot's: its lists were taken as they are "
                "(--force walks and compares every file)"
            )
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
            out.append(f"first snapshot of this source: {self.assets} assets")
        else:
            out.append("changes since the previous snapshot:")
            out += ["  " + line for line in self.changes.lines()]
        return out


def backup_request(request: BackupRequest, source: Source) -> tuple[ExportRequest, RecordingSource]:
    """The export a backup runs, and the source to give it: it records the listing (for the
    catch-all, and to list before the walk) and the reads that failed."""
    export = ExportRequest(
        select=list(request.select),
        include=frozenset(request.include),
        tags=list(request.tags),
        workers=request.workers,
        created=format_time(request.now) if request.now is not None else "",
        cache_dir=request.cache_dir,
    )
    recorder = RecordingSource(source, keep=request.whole_workspace)
    if request.whole_workspace:
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
    # The listing (pages of it, on a thread of their own) goes on while the repository is
    # opened and locked: a backup decided from its listing is mostly this listing.
    src.start_listing()
    refuse_repository_in_source(source, repo_path)  # before the repository is created
    repo = Repository.open_or_init(repo_path, auth=repo_auth, on_warning=on_warning)
    # Holding a shared lock first lets --retry-lock wait for a forget/prune to finish, and keeps
    # any exclusive taker out while the export runs (it takes a shared lock of its own).
    deadline = time.monotonic() + request.retry_lock
    with repo, locked(repo, exclusive=False, wait=request.retry_lock):
        # While the first page of the listing is on its way: the lists of the snapshot a
        # listing would be decided against, as far as the source can name it unlisted.
        ahead = None if request.force else _read_ahead(repo, src)
        fingerprint = _list(src, export, progress)
        if not request.force:
            same = _from_listing(repo, src, fingerprint, request, ahead)
            if same is not None:
                return same
        del ahead  # not held through a walk (peak memory)
        export.record = _recorder(src, fingerprint)
        from amlport.backup.diff import diff_sides
        from amlport.backup.sides import SnapshotSide
        from amlport.export.engine import complete_previous, run_export

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


def _list(src: RecordingSource, export: ExportRequest, progress: Progress | None) -> Fingerprint:
    """List the source (before the walk, which takes these blobs) and fingerprint it."""
    options = {
        "select": list(export.select),
        "include": sorted(export.include),
        "extension": export.extension.name if export.extension is not None else None,
    }
    fingerprint = Fingerprint(context(src.descriptor.to_dict(), options))

    def on_blob(blob: BlobInfo) -> None:
        fingerprint.add(blob)
        if progress is not None and fingerprint.blobs % 5000 == 0:
            progress("list", fingerprint.blobs, None)

    src.list_ahead(on_blob)
    if progress is not None:
        progress("list", fingerprint.blobs, fingerprint.blobs)
    return fingerprint


def _recorder(
    src: RecordingSource, fingerprint: Fingerprint
) -> Callable[[TransferStats], dict[str, Any]]:
    """The fingerprint the snapshot records: only when the run read everything it tried
    (a failed read would be tried again by the next run, which must then walk)."""

    def record(stats: TransferStats) -> dict[str, Any]:
        if stats.failures or stats.stopped or src.read_errors:
            return {}
        return {FIELD: fingerprint.record()}

    return record


def _previous_of(repo: Repository, src: RecordingSource) -> SnapshotInfo | None:
    """The newest snapshot of the source, as the export will name it: the workspace's own
    identity record (``amlport/identity.json``), when the walk would adopt it, decides."""
    desc = src.descriptor
    identity = next(
        (
            b
            for b in src.blobs
            if b.name == IDENTITY_NAME and b.container == desc.artifact_container
        ),
        None,
    )
    if identity is not None:
        from amlport.walk.identity import adopt_identity
        from amlport.walk.listing import Listing

        listing = Listing()
        listing.add(identity)
        listing.freeze()
        adopt_identity(src, listing, lambda _where, _message: None)  # the walk warns
    return _newest_of(repo, src)


def _newest_of(repo: Repository, src: RecordingSource) -> SnapshotInfo | None:
    """The newest snapshot of the source as its descriptor names it now."""
    key = source_key(src.descriptor.to_dict())
    mine = [i for i in repo.snapshots.infos() if i.source_key == key]
    return mine[-1] if mine else None


@dataclass
class _Lists:
    """What ``_from_listing`` reads of a format-2 snapshot: its header, files and warnings."""

    snapshot: str
    header: dict[str, Any]
    files: list[tuple[str, int]] | None
    warnings: list[Any]


def _read_lists(repo: Repository, info: SnapshotInfo, digest: str | None) -> _Lists | None:
    """The root's header, then (when ``digest`` is None or the header records it) the
    files and warnings lists; None when the header records another fingerprint."""
    snapshots = repo.snapshots
    root = snapshots.read_root(info.id)
    header = root["manifest"]
    if digest is not None and recorded(header) != digest:
        return None
    reader, where = TreeReader(snapshots.objects), f"snapshot {info.short_id}"
    lists = root["lists"]
    files = _file_sizes(reader.entries(lists["files"], "files", where))
    warnings = (
        list(reader.entries(lists["warnings"], "warnings", where)) if ("warnings" in lists) else []
    )
    return _Lists(info.id, header, files, warnings)


def _read_ahead(repo: Repository, src: RecordingSource) -> _Lists | None:
    """The lists of the newest finished format-2 snapshot of the source as its descriptor
    names it before the listing (the identity record may name it otherwise after), read
    while the listing is on its way (``_from_listing`` uses them only for the snapshot it
    decides against, read again otherwise). Any failure: None (the same reads, after the
    listing, fail or not exactly as they would have)."""
    try:
        newest = _newest_of(repo, src)
        if newest is None or not newest.complete or repo.snapshots.format_of(newest.id) != 2:
            return None
        return _read_lists(repo, newest, None)
    except Exception:  # a guess: the reads after the listing decide
        return None


def _from_listing(
    repo: Repository,
    src: RecordingSource,
    fingerprint: Fingerprint,
    request: BackupRequest,
    ahead: _Lists | None = None,
) -> BackupResult | None:
    """When the previous snapshot of the source recorded this fingerprint (and finished):
    a new snapshot naming its lists, with this run's time, parent and tags. None: walk.
    ``ahead``: the lists ``_read_ahead`` read, used if they are that snapshot's."""
    info = _previous_of(repo, src)
    if info is None or not info.complete or src.read_errors:
        return None
    snapshots, digest = repo.snapshots, fingerprint.digest()
    if snapshots.format_of(info.id) == 2:  # the root and two lists: nothing else is read
        if ahead is not None and ahead.snapshot == info.id:
            got: _Lists | None = ahead if recorded(ahead.header) == digest else None
        else:
            got = _read_lists(repo, info, digest)
        if got is None:
            return None
        header, files, warnings = got.header, got.files, got.warnings
    else:
        previous = snapshots.load_exact(info.id, LoadPlan.only("files"))
        header, warnings = previous.header(), list(previous.warnings)
        if recorded(header) != digest:
            return None
        files = [(f.digest, f.size) for f in previous.files]
        del previous
    # Every object the snapshot names must still be stored whole (``write_snapshot``'s
    # check): a missing or cut-short one is stored again by a backup that walks.
    if files is None or not repo.objects_intact(files):
        return None
    stats = dict(header.get("stats") or {})
    stats.update(
        new_objects=0, new_bytes=0, read_bytes=0, reused=info.files, rewritten=0, streamed=0
    )
    snapshot = repo.write_snapshot_again(
        info.id,
        {
            **({"created": format_time(request.now)} if request.now is not None else {}),
            "parent": info.id,
            "tags": sorted(request.tags),
            "stats": stats,
            "tool_version": __version__,
            FIELD: {**fingerprint.record(), "decided": "listing"},
        },
    )
    return _result_of(info, snapshot, stats, warnings, request, repo.location)


def _file_sizes(entries: Iterable[Any]) -> list[tuple[str, int]] | None:
    """(digest, size) of each file entry of a list; None when one is malformed (the walk
    then decides, and its snapshot is checked entry by entry)."""
    out: list[tuple[str, int]] = []
    for entry in entries:
        digest = entry.get("digest") if isinstance(entry, dict) else None
        size = entry.get("size") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not isinstance(size, int) or isinstance(size, bool):
            return None
        out.append((digest, size))
    return out


def _result_of(
    info: SnapshotInfo,
    snapshot: str,
    stats: dict[str, Any],
    recorded_warnings: list[Any],
    request: BackupRequest,
    location: str,
) -> BackupResult:
    """What a backup decided from its listing reports: the previous snapshot's counts and
    warnings (the same lists), nothing read, nothing new, nothing changed."""
    warnings: list[str] = []
    skipped: list[tuple[str, str]] = []
    for text in map(str, recorded_warnings):
        if text.startswith(SKIPPED):  # "skipped <node>: <reason>" (export/engine.py)
            node, _, reason = text[len(SKIPPED) :].partition(": ")
            skipped.append((node, reason))
        else:
            warnings.append(text)
    transfer = TransferStats(
        files=int(stats.get("files", info.files)),
        bytes=int(stats.get("bytes", info.size)),
        reused=info.files,
    )
    export = ExportResult(
        assets=[],
        skipped=skipped,
        planned_files=info.files,
        planned_bytes=info.size,
        data_skipped_bytes=int(stats.get("data_left_out_bytes", 0)),
        warnings=warnings,
        stats=transfer,
        snapshot_id=snapshot,
        parent=info.id,
    )
    runs = info.counts.get("run", 0)
    changes = DiffReport(
        a=f"{location}@{info.id[:16]}",  # as ``SnapshotSide`` labels them
        b=f"{location}@{snapshot[:16]}",
        assets=Section(unchanged=info.assets - runs),
        runs=Section(unchanged=runs),
        files={
            "added": 0,
            "removed": 0,
            "changed": 0,
            "unchanged": info.files,
            "bytes_added": 0,
            "bytes_changed": 0,
        },
        nodes_added=[],
        nodes_removed=[],
        edges_added=[],
        edges_removed=[],
        audit_compared=False,
    )
    return BackupResult(
        export, changes, request.whole_workspace, from_listing=True, asset_count=info.assets
    )
