"""``amlport promote``: workspace to workspace without a local copy.

The same selection and exporters as ``export`` decide what moves. Files that bind to storage
are read, re-bound (source → neutral → target) and written; payloads are copied server-side
when both ends are Azure (Copy Blob from a short-lived read-only SAS URL of the source, so no
payload byte passes through this machine), and streamed otherwise. Idempotent: a payload whose
target carries the source's etag and MD5 (``amlport_source_*`` metadata) is skipped; a
rewritten file whose target has the same SHA-256 is skipped.
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
from amlport.storage.target import DIGEST_METADATA, Target, TargetBlob
from amlport.walk import WalkOptions, walk_with_listing

Progress = Callable[[str, int, int | None], None]


@dataclass
class PromoteResult:
    actions: Counter[str] = field(default_factory=Counter)
    copied_server_side: int = 0
    client_bytes: int = 0  # payload bytes that passed through this machine
    failures: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)
    record: str | None = None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.PARTIAL if self.failures or self.blocked else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": dict(sorted(self.actions.items())),
            "copied_server_side": self.copied_server_side,
            "client_payload_bytes": self.client_bytes,
            "failures": self.failures,
            "blocked": self.blocked,
            "record": self.record,
        }


class _Promoter:
    def __init__(self, source: Source, target: Target, mapping: Mapping) -> None:
        self.source, self.target, self.mapping = source, target, mapping
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
        self.result = PromoteResult()

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
        if found is not None and found.sha256 == digest:
            return "skip"
        self.target.write_bytes(
            container, name, final, metadata={DIGEST_METADATA: digest}, overwrite=True
        )
        return "update" if found else "create"

    def _payload(self, blob: BlobInfo, container: str, name: str) -> str:
        meta = {
            "amlport_source_etag": (blob.etag or "").strip('"'),
            "amlport_source_md5": blob.content_md5 or "",
        }
        found = self.target.stat(container, name)
        if found is not None and found.size == blob.size and self._same(blob, found, meta):
            return "skip"
        if self.server_side:
            assert isinstance(self.source, AzureSource)
            url = self.source.signed_url(blob.container, blob.name)
            self.target.copy_from_url(container, name, url, metadata=meta, overwrite=True)
            self.result.copied_server_side += 1
        else:
            with self.source.open_stream(blob.container, blob.name) as stream:
                self.target.write_stream(container, name, stream, metadata=meta, overwrite=True)
            self.result.client_bytes += blob.size
        return "update" if found else "create"

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
) -> PromoteResult:
    inv, listing = walk_with_listing(source, options=WalkOptions(progress=progress))
    lg = build_graph(inv)
    chosen = select(inv, lg, request.select, request.include)
    writer = BundleWriter(
        source,
        listing,
        RewriteRules(direction="export", source=Identity.from_descriptor(inv.source)),
    )
    assets, _skipped = plan_assets(inv, lg, chosen, writer)
    promoter = _Promoter(source, target, mapping)
    target.ensure_containers()
    blobs = sorted(writer.blobs.values(), key=lambda b: (b.container, b.name))

    def safe(blob: BlobInfo) -> str:
        try:
            return promoter.one(blob)
        except AmlportError as exc:
            promoter.result.failures.append(f"{blob.container}/{blob.name}: {exc.message}")
            return "failed"

    with ThreadPoolExecutor(
        max_workers=request.workers, thread_name_prefix="amlport-promote"
    ) as pool:
        for n, action in enumerate(pool.map(safe, blobs), 1):
            promoter.result.actions[action] += 1
            if progress:
                progress("promote", n, len(blobs))
    result = promoter.result
    if result.actions["create"] or result.actions["update"]:
        result.record = _write_record(target, mapping, inv.source.to_dict(), assets, result)
    return result


def _write_record(
    target: Target,
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
