"""``amlport restore``: import a snapshot into a target, then (``--check``) prove it landed.

The import is ``amlport import`` itself (verify the snapshot first, plan, apply, record;
idempotent). The check (``check.py``) hashes every restored file against what the import meant
to write and compares the rescanned target's lineage with the snapshot's. A failed check is an
integrity failure (exit 4): the target does not hold what the backup holds.

``--dry-run`` plans and writes nothing (the import's write guard refuses every write);
``--check --read-only`` verifies the snapshot and runs the check alone, importing nothing: it
proves a disaster-recovery copy without changing it (a missing blob is reported, not made).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlport.backup.check import CheckReport, check_restore
from amlport.backup.select import Selected, select_manifest
from amlport.bundle import Repository
from amlport.bundle.store import DRY_RUN
from amlport.errors import ExitCode, UsageError
from amlport.importing import ImportRequest, ImportResult, run_import
from amlport.importing.engine import pick_snapshot, verify_first
from amlport.model.loadplan import WHOLE, LoadPlan
from amlport.model.manifest import Manifest
from amlport.model.mapping import Mapping
from amlport.model.workspace import WorkspaceDescriptor
from amlport.progress import Progress
from amlport.storage.base import Source
from amlport.storage.guard import check_policy
from amlport.storage.local import LocalSource
from amlport.storage.opener import StorageAuth, is_url
from amlport.storage.target import Target

LATEST = "latest"
_TROUBLE = ("blocked", "conflict", "failed")


@dataclass
class RestoreRequest:
    mapping: Mapping
    snapshot: str = LATEST  # id, unique prefix, or "latest"
    source: str | None = None  # --source ACCOUNT[/WORKSPACE]: whose latest (bundle/sources.py)
    check: bool = False
    read_only: bool = False  # with check: check only, import nothing (verify a DR copy)
    dry_run: bool = False
    on_conflict: str = "fail"
    emit_assets: Path | None = None
    workers: int = 8
    select: list[str] = field(default_factory=list)  # KIND:NAME: one asset and its needs


@dataclass
class RestoreReport:
    imported: ImportResult
    check: CheckReport | None = None
    read_only: bool = False
    selected: Selected | None = None  # --select: what the restore was narrowed to

    @property
    def exit_code(self) -> ExitCode:
        if self.check is not None and not self.check.ok:
            return ExitCode.INTEGRITY
        return self.imported.exit_code

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.imported.snapshot_id,
            "import": {
                "counts": self.imported.counts,
                "failures": self.imported.failures,
                "warnings": self.imported.warnings,
                "record": self.imported.record,
                "not_done": [a.to_dict() for a in self.imported.actions if a.action in _TROUBLE],
            },
            "check": self.check.to_dict() if self.check else None,
            "read_only": self.read_only,
            "dry_run": self.imported.dry_run,
            "selected": None
            if self.selected is None
            else {
                "roots": self.selected.roots,
                "assets": self.selected.assets,
                "files": self.selected.files,
            },
            "exit_code": int(self.exit_code),
        }

    def lines(self) -> list[str]:
        counts = ", ".join(f"{n} {k}" for k, n in self.imported.counts.items()) or "nothing"
        short = self.imported.snapshot_id[:16]
        if self.read_only:
            out = [f"check of snapshot {short} against the target (--read-only: nothing written)"]
        elif self.imported.dry_run:
            out = [f"restore of snapshot {short} (dry run: nothing written): {counts}"]
        else:
            out = [f"restore of snapshot {short}: {counts}"]
        if self.selected is not None:
            s = self.selected
            out.append(
                f"selected: {len(s.roots)} asset(s) asked for, {len(s.assets)} restored with "
                f"what they need ({s.files} file(s))"
            )
        out += [f"  failed: {f}" for f in self.imported.failures]
        out += [
            f"  {a.action}: {a.subject} ({a.reason})"
            for a in self.imported.actions
            if a.action in _TROUBLE
        ][:50]
        c = self.check
        if c is None:
            out.append("not checked (add --check to rescan the target and compare)")
            return out
        out.append(
            f"check: {c.files_checked} file(s) hashed ({len(c.files_missing)} missing, "
            f"{len(c.digest_mismatches)} differ, {c.files_blocked} not restorable under this map)"
        )
        out.append(
            f"check: lineage {c.nodes_expected} node(s), {c.edges_expected} edge(s) expected; "
            f"{len(c.missing_nodes) + len(c.kind_mismatches)} node(s) and "
            f"{len(c.missing_edges) + len(c.extra_edges)} edge(s) differ, "
            f"{len(c.unresolved)} no longer resolve; {c.pointers} pointer(s), "
            f"{c.dangling_pointers} dangling"
        )
        problems = c.problems()
        out += [f"  problem: {p}" for p in problems[:50]]
        if len(problems) > 50:
            out.append(f"  … {len(problems) - 50} more (use --json for all)")
        out.append("check: PASSED" if c.ok else "check: FAILED")
        return out


def target_as_source(
    location: str, descriptor: WorkspaceDescriptor, auth: StorageAuth | None = None
) -> Source:
    """Open a restore target read-only, to walk it (the map file's target names it)."""
    if is_url(location):
        from amlport.storage.azure import open_azure_source

        return open_azure_source(location, descriptor=descriptor, auth=auth)
    return LocalSource(Path(location), descriptor)


def run_restore(
    repo_path: str | Path,
    target: Target,
    request: RestoreRequest,
    *,
    scan: Callable[[], Source] | None = None,
    progress: Progress | None = None,
    repo_auth: StorageAuth | None = None,
) -> RestoreReport:
    """Import, then check when asked; ``scan`` opens the target as a source for the check.
    ``repo_path``: a folder or an Azure container URL (``repo_auth``: its credential)."""
    _check_request(request, scan)
    reading = DRY_RUN if request.dry_run else None  # no lock file either (F, session 8)
    repo = Repository.open(repo_path, auth=repo_auth, reading=reading)
    with repo, repo.lock(exclusive=False):  # the snapshot must not be pruned under us
        # Its id is all a plain restore needs here (the import reads the snapshot itself).
        whole = request.read_only or bool(request.select)
        plan = WHOLE if whole else LoadPlan.only()
        picked = pick_snapshot(repo, request.snapshot, request.source, request.mapping, plan)
        snapshot_id = str(picked.snapshot_id)
        selected = select_manifest(picked, request.select) if request.select else None
        manifest: Manifest | None = picked
        if request.read_only:  # nothing is imported, so no write guard is ever opened
            verify_first(repo, picked)
            imported = ImportResult(snapshot_id, True, request.on_conflict)
        else:
            # The import reads the snapshot again: one copy at a time (a 100k-file snapshot
            # is ~100 MB in memory); the check reads it once more after the import.
            manifest = None
            del picked
            imported = run_import(
                repo_path,
                target,
                ImportRequest(
                    mapping=request.mapping,
                    snapshot=snapshot_id,
                    dry_run=request.dry_run,
                    on_conflict=request.on_conflict,
                    emit_assets=request.emit_assets,
                    workers=request.workers,
                ),
                progress=progress,
                repo_auth=repo_auth,
                narrow=None if selected is None else (lambda _m: selected.manifest),
            )
        report = RestoreReport(imported, read_only=request.read_only, selected=selected)
        if selected is not None:
            manifest = selected.manifest  # the check compares what was selected
        if request.check and scan is not None:
            if manifest is None:
                manifest = repo.snapshots.load_exact(snapshot_id)
            with scan() as source:
                report.check = check_restore(repo, manifest, request.mapping, target, source)
    return report


def _check_request(request: RestoreRequest, scan: Callable[[], Source] | None) -> None:
    """Flags that cannot go together fail before anything is opened."""
    check_policy(request.on_conflict)
    if request.read_only and not request.check:
        raise UsageError("--read-only needs --check", hint="restore --check --read-only")
    if request.check and request.dry_run:
        raise UsageError(
            "--check with --dry-run would check a target nothing was written to",
            hint="to check a target without writing to it, use --check --read-only",
        )
    if request.check and scan is None:
        raise ValueError("run_restore(check=True) needs a scan factory")
