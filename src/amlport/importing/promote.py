"""``amlport promote``: workspace to workspace without a local copy.

The same selection and exporters as ``export`` decide what moves. Files that bind to storage
are read, re-bound (source → neutral → target) and written; payloads are copied server-side
when both ends are Azure (Copy Blob from a short-lived read-only SAS URL of the source, so no
payload byte passes through this machine), and streamed otherwise. Idempotent: a payload whose
target carries the source's etag and MD5 (``amlport_source_*`` metadata) is skipped; a
rewritten file whose target has the same SHA-256 is skipped.

Every write passes the run's write guard (storage/guard.py): a target that is the source (same
folder however spelled, or same account and container) is refused before the walk; a blob
that differs is a conflict unless ``--on-conflict overwrite`` (``skip`` leaves it and reports
the conflict); ``--dry-run`` plans the same and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from amlport.bundle.sources import check_live_source, parse_source
from amlport.errors import AmlportError, ExitCode
from amlport.export.engine import ExportRequest, plan_assets
from amlport.export.selection import select
from amlport.export.writer import MAX_REWRITE_BYTES, BundleWriter
from amlport.importing import records
from amlport.lineage import build_graph
from amlport.model.mapping import Mapping
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Identity, RewriteRules, Unmappable
from amlport.storage.azure import AzureSource
from amlport.storage.base import BlobInfo, Source
from amlport.storage.guard import GuardedTarget, WriteGuard, place_of_source
from amlport.storage.outage import OutageBreaker
from amlport.storage.target import DIGEST_METADATA, Target, TargetBlob
from amlport.walk import WalkOptions, walk_with_listing

Progress = Callable[[str, int, int | None], None]


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
    record: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        failed = self.conflicts if self.on_conflict == "fail" else []
        if self.failures or self.blocked or failed:
            return ExitCode.WARNINGS if self.dry_run else ExitCode.PARTIAL
        return ExitCode.WARNINGS if self.conflicts else ExitCode.OK

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
            "record": self.record,
        }


class _Promoter:
    def __init__(self, source: Source, target: GuardedTarget, mapping: Mapping) -> None:
        self.source, self.target, self.mapping = source, target, mapping
        self.guard = target.guard
        src_id = Identity.from_descriptor(source.descriptor)
        self.to_neutral = RewriteRules(direction="export", source=src_id)
        self.to_target = RewriteRules(
            direction="import",
            source=src_id,
            target=Identity.from_descriptor(mapping.target),
            datastore_map=mapping.datastores,
            asset_renames=mapping.assets,
        )
        self.server_side = target.supports_copy and isinstance(source, AzureSource)
        self.result = PromoteResult(self.guard.dry_run, self.guard.on_conflict)

    def where(self, blob: BlobInfo) -> tuple[str, str] | None:
        datastore = self.source.descriptor.datastore_of(blob.container) or blob.container
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
            neutral = rewrite_file(blob.name, data, self.to_neutral).data
            final = rewrite_file(blob.name, neutral, self.to_target).data
        except Unmappable as exc:
            self.result.blocked.append(f"{blob.container}/{blob.name}: {exc.message}")
            return "blocked"
        digest = "sha256:" + hashlib.sha256(final).hexdigest()
        found = self.target.stat(container, name)
        action = self._decide(container, name, found, found is not None and found.sha256 == digest)
        if action in ("create", "update") and not self.guard.dry_run:
            self.target.write_bytes(
                container, name, final, metadata={DIGEST_METADATA: digest},
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
    guard of the caller's, with the same flags; tests assert on it)."""
    guard = guard or WriteGuard(
        dry_run=request.dry_run, on_conflict=on_conflict, source=place_of_source(source)
    )
    if (guard.dry_run, guard.on_conflict) != (request.dry_run, on_conflict):
        raise ValueError("the write guard and the request disagree on --dry-run/--on-conflict")
    guard.source = guard.source or place_of_source(source)
    guarded = guard.wrap(target)  # refused here when the target is the source
    # The map's ``source:`` must name this workspace, as import and restore check it against
    # the snapshot's source (bundle/sources.py): one workspace's map never re-binds another's.
    check_live_source(
        source.descriptor.to_dict(),
        parse_source(mapping.source, where="map file 'source:'"),
        where="the source",
    )
    inv, listing = walk_with_listing(source, options=WalkOptions(progress=progress))
    lg = build_graph(inv)
    chosen = select(inv, lg, request.select, request.include)
    writer = BundleWriter(
        source,
        listing,
        RewriteRules(direction="export", source=Identity.from_descriptor(inv.source)),
    )
    assets, _skipped = plan_assets(inv, lg, chosen, writer)
    promoter = _Promoter(source, guarded, mapping)
    guard.open()  # a dry run stays refused: the plan below stats, it writes nothing
    if not request.dry_run:
        guarded.ensure_containers()
    blobs = sorted(writer.blobs.values(), key=lambda b: (b.container, b.name))

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

    with ThreadPoolExecutor(
        max_workers=request.workers, thread_name_prefix="amlport-promote"
    ) as pool:
        for n, action in enumerate(pool.map(safe, blobs), 1):
            promoter.result.actions[action] += 1
            if progress:
                progress("promote", n, len(blobs))
    result = promoter.result
    if breaker.stopped is not None:
        result.failures.insert(0, f"promote stopped: {breaker.stopped}")
    if not request.dry_run and (result.actions["create"] or result.actions["update"]):
        result.record = _write_record(guarded, mapping, inv.source.to_dict(), assets, result)
    return result


def _write_record(
    target: GuardedTarget,
    mapping: Mapping,
    source: dict[str, Any],
    assets: list[Any],
    result: PromoteResult,
) -> str:
    now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
    hop = {
        "account": source.get("account"),
        "workspace": source.get("workspace"),
        "snapshot": f"promote@{now}",
        "time": now,
    }
    doc = {
        "format": records.RECORD_FORMAT,
        "snapshot": None,
        "promoted": True,
        "source": source,
        "target": mapping.target.to_dict(),
        "hops": [hop],
        "counts": dict(sorted(result.actions.items())),
        "assets": {a.id: mapping.asset_name(a.name) for a in assets},
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    name = f"{records.IMPORTS_PREFIX}promote-{digest[:16]}.json"
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    target.write_bytes(mapping.target.artifact_container, name, data, metadata={}, overwrite=True)
    return f"{mapping.target.artifact_container}/{name}"
