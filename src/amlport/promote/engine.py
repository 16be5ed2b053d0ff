"""``amlport promote``: workspace to workspace without a local copy, above export and import.

Export's selection and planning (``export.engine.plan_assets``) decide what moves. Files that
bind to storage are read, re-bound (source → neutral with export's rules, neutral → target
with import's) and written; payloads are copied server-side when both ends are Azure (Copy
Blob from a short-lived read-only SAS URL of the source, so no payload byte passes through
this machine), and streamed otherwise. Idempotent: a payload whose target carries the source's
etag and MD5 (``amlport_source_*`` metadata) is skipped; a rewritten file whose target has the
same SHA-256 is skipped.

Provenance goes forward: the source's own import records (``export.engine.earlier_hops``)
give the earlier hops, and the promotion's record lists them and then its own hop, with the
source's account and workspace (its workspace file, or the identity record an earlier import
left in it) — so dev → qa → prod lists the dev and the qa hop. Every rewrite (before, after,
rule) is in the record and in ``--json``; the target's identity record is written as import
writes it. ``--emit-assets``/``--register-mlflow`` run import's own asset importers
(``importing.engine.asset_importers``) over a snapshot of the selection exported into a
temporary repository.

Every write passes the run's write guard (storage/guard.py): a target that is the source (same
folder however spelled, or same account and container) is refused before the walk; a blob
that differs is a conflict unless ``--on-conflict overwrite`` (``skip`` leaves it and reports
the conflict); ``--dry-run`` plans the same and writes nothing.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from amlport.bundle import Repository
from amlport.bundle.sources import check_live_source, parse_source
from amlport.errors import AmlportError, ExitCode
from amlport.export import ExportRequest, run_export
from amlport.export.engine import earlier_hops, plan_assets
from amlport.export.selection import select
from amlport.export.writer import MAX_REWRITE_BYTES, BundleWriter
from amlport.importers.base import ImportAction, ImportContext, Importer
from amlport.importers.datastore import changes_of
from amlport.importing.engine import (
    apply_planned,
    asset_importers,
    import_rules,
    mapping_for,
    write_identity,
)
from amlport.lineage import build_graph
from amlport.model import provenance
from amlport.model.mapping import Mapping
from amlport.model.workspace import WorkspaceDescriptor
from amlport.progress import Progress
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Identity, RewriteRules, Unmappable
from amlport.storage.azure import AzureSource
from amlport.storage.base import BlobInfo, Source
from amlport.storage.guard import GuardedTarget, WriteGuard, place_of_source
from amlport.storage.outage import OutageBreaker
from amlport.storage.target import DIGEST_METADATA, Target, TargetBlob
from amlport.walk import WalkOptions, walk_with_listing

_TROUBLE = ("blocked", "failed")


@dataclass
class PromoteRequest(ExportRequest):
    """Export's request (what moves) and what promote adds to it."""

    emit_assets: Path | None = None  # v2 YAML bound to the target (import's importer)
    register_mlflow: str | None = None  # MLflow registry (import's importer)
    strict: bool = False  # a URI only kept with a warning is refused (blocks its file)


@dataclass
class PromoteResult:
    dry_run: bool = False
    on_conflict: str = "fail"
    actions: Counter[str] = field(default_factory=Counter)
    copied_server_side: int = 0
    client_bytes: int = 0  # payload bytes that passed through this machine
    failures: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)  # differing blobs not replaced
    warnings: list[str] = field(default_factory=list)
    rewrites: list[dict[str, str]] = field(default_factory=list)
    hops: list[dict[str, Any]] = field(default_factory=list)  # the record's provenance
    assets: list[ImportAction] = field(default_factory=list)  # --emit-assets, --register-mlflow
    record: str | None = None
    identity: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        failed = self.conflicts if self.on_conflict == "fail" else []
        bad = any(a.action in _TROUBLE for a in self.assets)
        if self.failures or self.blocked or failed or bad:
            return ExitCode.WARNINGS if self.dry_run else ExitCode.PARTIAL
        return ExitCode.WARNINGS if self.conflicts or self.warnings else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "on_conflict": self.on_conflict,
            "conflicts": self.conflicts,
            "counts": dict(sorted(self.actions.items())),
            "copied_server_side": self.copied_server_side,
            "client_payload_bytes": self.client_bytes,
            "failures": self.failures,
            "blocked": self.blocked,
            "warnings": self.warnings,
            "rewrites": self.rewrites,
            "hops": self.hops,
            "assets": [a.to_dict() for a in self.assets],
            "record": self.record,
            "identity": self.identity,
        }


class _Promoter:
    def __init__(
        self, source: Source, identity: WorkspaceDescriptor, target: GuardedTarget,
        mapping: Mapping, strict: bool,
    ) -> None:  # fmt: skip
        self.source, self.identity, self.target = source, identity, target
        self.mapping = mapping = mapping.with_aliases(identity)  # files listed under aliases
        self.guard = target.guard
        src_id = Identity.from_descriptor(identity)
        self.to_neutral = RewriteRules(direction="export", source=src_id, strict=strict)
        self.to_target = RewriteRules(
            direction="import",
            source=src_id,
            target=Identity.from_descriptor(mapping.target),
            datastore_map=mapping.datastores,
            asset_renames=mapping.assets,
            strict=strict,
        )
        self.server_side = target.supports_copy and isinstance(source, AzureSource)
        self.result = PromoteResult(self.guard.dry_run, self.guard.on_conflict)

    def where(self, blob: BlobInfo) -> tuple[str, str] | None:
        datastore = self.identity.datastore_of(blob.container) or blob.container
        mapped = self.mapping.target_datastore(datastore)
        if mapped is None:
            return None
        return str(self.mapping.target.container_of(mapped)), blob.name

    def one(self, blob: BlobInfo) -> str:
        dest = self.where(blob)
        if dest is None:
            self.result.blocked.append(f"{blob.container}/{blob.name}: datastore not mapped")
            return "blocked"
        if needs_rewrite(blob.name, blob.size) and blob.size <= MAX_REWRITE_BYTES:
            return self._rewritten(blob, *dest)
        return self._payload(blob, *dest)

    def _rewritten(self, blob: BlobInfo, container: str, name: str) -> str:
        data = self.source.read_bytes(blob.container, blob.name)
        try:
            neutral = rewrite_file(blob.name, data, self.to_neutral)
            final = rewrite_file(blob.name, neutral.data, self.to_target)
        except Unmappable as exc:
            self.result.blocked.append(f"{blob.container}/{blob.name}: {exc.message}")
            return "blocked"
        digest = "sha256:" + hashlib.sha256(final.data).hexdigest()
        found = self.target.stat(container, name)
        action = self._decide(container, name, found, found is not None and found.sha256 == digest)
        if action in ("create", "update", "skip"):
            where = f"{container}/{name}"
            self.result.rewrites += changes_of(where, neutral.changes + final.changes)
            self.result.warnings += [f"{where}: {w}" for w in neutral.warnings + final.warnings]
        if action in ("create", "update") and not self.guard.dry_run:
            self.target.write_bytes(
                container, name, final.data, metadata={DIGEST_METADATA: digest},
                overwrite=action == "update",
            )  # fmt: skip
        return action

    def _decide(self, container: str, name: str, found: TargetBlob | None, same: bool) -> str:
        """The guard's conflict policy; a differing blob not replaced is recorded."""
        action, reason = self.guard.decide(found is not None, same)
        if action == "conflict":
            self.result.conflicts.append(f"{container}/{name}: {reason}")
        return action

    def _payload(self, blob: BlobInfo, container: str, name: str) -> str:
        meta = {
            "amlport_source_etag": (blob.etag or "").strip('"'),
            "amlport_source_md5": blob.content_md5 or "",
        }
        found = self.target.stat(container, name)
        same = found is not None and found.size == blob.size and self._same(blob, found, meta)
        action = self._decide(container, name, found, same)
        if action not in ("create", "update") or self.guard.dry_run:
            return action
        overwrite = action == "update"
        if self.server_side:
            assert isinstance(self.source, AzureSource)
            url = self.source.signed_url(blob.container, blob.name)
            self.target.copy_from_url(container, name, url, metadata=meta, overwrite=overwrite)
            self.result.copied_server_side += 1
        else:
            with self.source.open_stream(blob.container, blob.name) as stream:
                self.target.write_stream(
                    container, name, stream, metadata=meta, overwrite=overwrite
                )
            self.result.client_bytes += blob.size
        return action

    def _same(self, blob: BlobInfo, found: TargetBlob, meta: dict[str, str]) -> bool:
        """Same payload: the target records this source version, or (local) hashes equal."""
        if any(meta.values()) and all(found.metadata.get(k) == v for k, v in meta.items() if v):
            return True
        if found.sha256 is None:
            return False
        h = hashlib.sha256()
        with self.source.open_stream(blob.container, blob.name) as stream:
            while chunk := stream.read(4 * 1024 * 1024):
                h.update(chunk)
        return "sha256:" + h.hexdigest() == found.sha256


def run_promote(
    source: Source,
    target: Target,
    mapping: Mapping,
    request: ExportRequest,
    *,
    progress: Progress | None = None,
    on_conflict: str = "fail",
    guard: WriteGuard | None = None,
) -> PromoteResult:
    """``request.dry_run``: plan and write nothing. Every write passes one write guard that
    refuses the source itself and opens only once the plan is made (``guard``: a closed
    guard of the caller's, with the same flags; tests assert on it). ``request`` may be a
    ``PromoteRequest`` (``--emit-assets``, ``--register-mlflow``, ``--strict``)."""
    opts = request if isinstance(request, PromoteRequest) else _promote_request(request)
    guard = guard or WriteGuard(
        dry_run=request.dry_run, on_conflict=on_conflict, source=place_of_source(source)
    )
    if (guard.dry_run, guard.on_conflict) != (request.dry_run, on_conflict):
        raise ValueError("the write guard and the request disagree on --dry-run/--on-conflict")
    guard.source = guard.source or place_of_source(source)
    guarded = guard.wrap(target)  # refused here when the target is the source
    extras = asset_importers(guarded, opts.emit_assets, opts.register_mlflow)  # probes MLflow
    inv, listing = walk_with_listing(source, options=WalkOptions(progress=progress))
    # The map's ``source:`` must name this workspace, as import and restore check it against
    # the snapshot's source (bundle/sources.py): one workspace's map never re-binds another's.
    # (After the walk: an identity record the source holds names its workspace.)
    check_live_source(
        inv.source.to_dict(),
        parse_source(mapping.source, where="map file 'source:'"),
        where="the source",
    )
    lg = build_graph(inv)
    chosen = select(inv, lg, request.select, request.include)
    writer = BundleWriter(
        source,
        listing,
        RewriteRules(direction="export", source=Identity.from_descriptor(inv.source)),
    )
    assets, _skipped = plan_assets(inv, lg, chosen, writer)
    earlier, problems = earlier_hops(source, inv)
    promoter = _Promoter(source, inv.source, guarded, mapping, opts.strict)
    result = promoter.result
    result.warnings += problems
    guard.open()  # a dry run stays refused: the plan below stats, it writes nothing
    if not request.dry_run:
        guarded.ensure_containers()
    blobs = sorted(writer.blobs.values(), key=lambda b: (b.container, b.name))
    _copy(promoter, blobs, request.workers, progress)
    name, doc = provenance.promote_record(
        inv.source.to_dict(),
        earlier,
        mapping,
        dict(result.actions),
        {a.id: mapping.asset_name(a.name) for a in assets},
        result.rewrites,
    )
    result.hops = doc["hops"]
    if request.dry_run:
        return result
    if result.actions["create"] or result.actions["update"]:
        container = mapping.target.artifact_container
        guarded.write_bytes(container, name, provenance.encode(doc), metadata={}, overwrite=True)
        result.record = f"{container}/{name}"
    result.identity = write_identity(guarded, mapping.target)
    if extras:
        result.assets = _asset_importers(source, mapping, opts, guard, extras, result)
    return result


def _promote_request(request: ExportRequest) -> PromoteRequest:
    return PromoteRequest(**{f.name: getattr(request, f.name) for f in fields(ExportRequest)})


def _copy(
    promoter: _Promoter, blobs: list[BlobInfo], workers: int, progress: Progress | None
) -> None:
    breaker = OutageBreaker()  # export's policy: the source down, no other blob is tried

    def safe(blob: BlobInfo) -> str:
        try:
            breaker.check()
            action = promoter.one(blob)
        except AmlportError as exc:
            breaker.failed(exc)
            promoter.result.failures.append(f"{blob.container}/{blob.name}: {exc.message}")
            return "failed"
        breaker.succeeded()
        return action

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amlport-promote") as pool:
        for n, action in enumerate(pool.map(safe, blobs), 1):
            promoter.result.actions[action] += 1
            if progress:
                progress("promote", n, len(blobs))
    if breaker.stopped is not None:
        promoter.result.failures.insert(0, f"promote stopped: {breaker.stopped}")


def _asset_importers(
    source: Source,
    mapping: Mapping,
    request: PromoteRequest,
    guard: WriteGuard,
    extras: list[Importer],
    result: PromoteResult,
) -> list[ImportAction]:
    """Import's asset importers over the selection, exported into a temporary repository
    (they read a snapshot: the model folder MLflow registers, the YAML the assets bind)."""
    with tempfile.TemporaryDirectory(prefix="amlport-promote-") as tmp:
        repo_path = Path(tmp) / "repo"
        selection = ExportRequest(
            select=request.select, include=request.include, workers=request.workers
        )
        exported = run_export(source, repo_path, selection)
        manifest = exported.manifest
        if manifest is None:  # pragma: no cover - a non-dry-run export always has one
            return []
        repo = Repository.open(repo_path)
        with repo:
            ctx = ImportContext(
                repo,
                manifest,
                mapping_for(manifest, mapping),
                import_rules(manifest, mapping, strict=request.strict),
                result.warnings.append,
                guard=guard,
            )
            planned = [(imp, imp.plan(ctx)) for imp in extras]
            return apply_planned(planned, ctx, result.failures, request.workers, None)
