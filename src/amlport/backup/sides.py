"""The two sides of a diff: a stored snapshot, or a live source planned as a backup would be.

A side answers, per bundle path, the cheapest fact it has about a file: the stored digest
(snapshot: always; live: for generated files, and from the repository's incremental index
when the listing's etag/size/MD5 match), the source size and MD5 when they say something about
the stored form, and — only when nothing cheaper decides — the stored form's digest itself (a
live side reads the blob and rewrites it as a backup would). ``amlport.backup.diff`` compares
two sides with these, cheapest first.

Sizes and MD5s of a live blob count only where its bytes are what a backup stores (binary
files), or when the other side is a snapshot of the same source: there any change of the
source bytes is a change. Between workspaces of different identity (a restored copy, another
stage) files that bind to storage are compared in their neutral, re-bound form.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from amlport import __version__
from amlport.backup.catchall import NAME as CATCH_ALL
from amlport.backup.catchall import CatchAll, RecordingSource
from amlport.backup.facts import AuditFact, inventory_facts, snapshot_facts
from amlport.bundle import Repository, SourceIndex
from amlport.bundle.codec import Hasher
from amlport.errors import AmlportError
from amlport.export.engine import plan_assets
from amlport.export.kinds import ALL_KINDS as ALL_KINDS
from amlport.export.selection import select
from amlport.export.writer import MAX_REWRITE_BYTES, BundleWriter
from amlport.lineage import build_graph
from amlport.model.inventory import Inventory
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, source_key
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.base import BlobInfo, Source
from amlport.walk import walk_with_listing

CHUNK = 1 << 20


@dataclass
class SnapshotSide:
    """A snapshot in a repository."""

    repo: Repository
    manifest: Manifest
    label: str = ""
    # The manifest was read without its redaction (and rewrite) records (``diff``'s load,
    # backup/compare.py): ``audit_facts`` reads its files and redaction records again.
    partial: bool = False
    _files: dict[str, FileEntry] = field(default_factory=dict)
    _facts: list[AuditFact] | None = None
    _reread: bool = False  # ``compared`` let go of the files: the walk reads them again

    def __post_init__(self) -> None:
        self._files = {f.path: f for f in self.manifest.files}
        if not self.label:
            self.label = f"{self.repo.location}@{str(self.manifest.snapshot_id)[:16]}"

    @property
    def assets(self) -> list[AssetEntry]:
        return self.manifest.assets

    @property
    def lineage(self) -> dict[str, Any]:
        return self.manifest.lineage

    @property
    def selection(self) -> dict[str, Any]:
        return self.manifest.selection

    @property
    def source_key(self) -> str:
        return self.manifest.source_key

    def paths(self) -> AbstractSet[str]:
        return self._files.keys()

    def size_of(self, path: str) -> int:
        return self._files[path].size

    def stored_digest(self, path: str) -> str | None:
        return self._files[path].digest

    def source_size(self, path: str) -> int | None:
        entry = self._files[path]
        return entry.size if not entry.rewritten else None

    def listing_md5(self, path: str) -> str | None:
        return None  # a snapshot has no listing; ``source_md5`` computes it when asked

    def source_md5(self, path: str) -> str | None:
        entry = self._files[path]
        if entry.rewritten:
            return None
        md5 = hashlib.md5()
        with self.repo.open_object(entry.digest) as fh:
            while chunk := fh.read(CHUNK):
                md5.update(chunk)
        return md5.hexdigest()

    def final_digest(self, path: str) -> str:
        return self._files[path].digest

    def audit_facts(self) -> list[AuditFact]:
        """Computed offline from the stored files and redaction records (backup/facts.py)."""
        if self._facts is None:
            if self._reread or self.partial:  # its files and redaction records, read again
                keep = LoadPlan.only("files", "redactions")
                snapshot_id = str(self.manifest.snapshot_id)
                # Passed on alone: the walk lets go of the files once it has their names
                self._facts = snapshot_facts(
                    self.repo, self.repo.snapshots.load_exact(snapshot_id, keep)
                )
            else:
                self._facts = snapshot_facts(self.repo, self.manifest)
        return self._facts

    def compared(self) -> None:
        """Drop the path table, the assets, the lineage, the files and the redaction
        records: ``audit_facts``, if still to come, reads the files and redaction records
        again for its walk (a diff's walk of one snapshot was beside the other one's
        files: docs/design/0007, C session 7). The manifest itself is not changed (a
        backup's caller still holds it): the side keeps a copy without those lists."""
        self._files = {}
        if self._facts is None and self.manifest.files:
            self._reread = True
        self.manifest = dataclasses.replace(
            self.manifest, assets=[], lineage={}, rewrites=[], files=[], redactions=[]
        )


@dataclass
class LivePlan:
    """What a backup (or an export with a given selection) of a live source would hold now."""

    source: Source
    assets: list[AssetEntry]
    writer: BundleWriter
    lineage: dict[str, Any]
    selection: dict[str, Any]
    inventory: Inventory | None = None  # the walk (its audit facts: backup/facts.py)


def plan_live(source: Source, selection: dict[str, Any] | None = None) -> LivePlan:
    """Walk and plan like ``backup`` (or like the given snapshot ``selection``); no transfer."""
    recorder = RecordingSource(source)
    inv, listing = walk_with_listing(recorder)
    lg = build_graph(inv)
    wanted = selection or {}
    include = frozenset(wanted.get("include") or ALL_KINDS) & ALL_KINDS
    chosen = select(inv, lg, list(wanted.get("select") or []), include)
    rules = RewriteRules(direction="export", source=Identity.from_descriptor(inv.source))
    writer = BundleWriter(recorder, listing, rules)
    assets, _ = plan_assets(inv, lg, chosen, writer)
    catch_all = selection is None or wanted.get("extension") == CATCH_ALL
    if catch_all:
        assets += CatchAll(recorder)(inv, lg, chosen, writer)
    used: dict[str, Any] = {"select": list(wanted.get("select") or []), "include": sorted(include)}
    if catch_all:
        used["extension"] = CATCH_ALL
    return LivePlan(recorder, assets, writer, lg.to_node_link(chosen.nodes), used, inv)


class LiveSide:
    """A live source (folder or account), planned; reads blobs only when asked to."""

    def __init__(
        self,
        plan: LivePlan,
        label: str,
        index: SourceIndex | None = None,
        *,
        peer_key: str | None = None,
        hasher: Callable[[], Hasher] | None = None,
    ) -> None:
        """``hasher``: how the other side's repository names bytes (keyed in an encrypted
        one, ``bundle/crypto.py``); plain SHA-256 by default."""
        self.plan = plan
        self.label = label
        self.index = index
        self.same_source = peer_key == self.source_key  # the other side backed up this source
        self._digests: dict[str, str] = {}
        self._new_hash: Callable[[], Hasher] = hasher or hashlib.sha256

    @property
    def assets(self) -> list[AssetEntry]:
        return self.plan.assets

    @property
    def lineage(self) -> dict[str, Any]:
        return self.plan.lineage

    @property
    def selection(self) -> dict[str, Any]:
        return self.plan.selection

    @property
    def source_key(self) -> str:
        return source_key(self.plan.source.descriptor.to_dict())

    def paths(self) -> set[str]:
        return set(self.plan.writer.blobs) | set(self.plan.writer.generated)

    def audit_facts(self) -> list[AuditFact]:
        """The audit facts of the walk the plan made (backup/facts.py)."""
        inv = self.plan.inventory
        return inventory_facts(inv) if inv is not None else []

    def compared(self) -> None:
        """Nothing to let go: the plan is the live side (its facts are its walk's)."""

    def _blob(self, path: str) -> BlobInfo | None:
        return self.plan.writer.blobs.get(path)

    def size_of(self, path: str) -> int:
        blob = self._blob(path)
        return blob.size if blob is not None else len(self.plan.writer.generated[path])

    def stored_digest(self, path: str) -> str | None:
        blob = self._blob(path)
        if blob is None:
            return self._digest(self.plan.writer.generated[path])
        if self.index is None:
            return None
        space = blob.container
        if _rewritable(blob):
            space = f"rewritten/{__version__}/{blob.container}"
        return self.index.lookup(space, blob.name, blob.etag, blob.size, blob.content_md5)

    def _bytes_count(self, blob: BlobInfo) -> bool:
        """Do this blob's size and MD5 speak for its stored form (see the module doc)?"""
        return self.same_source or not _rewritable(blob)

    def source_size(self, path: str) -> int | None:
        blob = self._blob(path)
        return blob.size if blob is not None and self._bytes_count(blob) else None

    def listing_md5(self, path: str) -> str | None:
        blob = self._blob(path)
        if blob is None or not blob.content_md5 or not self._bytes_count(blob):
            return None
        return blob.content_md5.lower()

    def source_md5(self, path: str) -> str | None:
        return self.listing_md5(path)

    def final_digest(self, path: str) -> str:
        """The digest a backup would store now: the bytes, rewritten where they bind."""
        if path in self._digests:
            return self._digests[path]
        blob = self._blob(path)
        if blob is None:
            return self._digest(self.plan.writer.generated[path])
        try:
            digest = self._read_digest(blob, path)
        except AmlportError as exc:  # gone since the listing, or not re-bindable: a change
            digest = f"unreadable: {exc.message}"
        self._digests[path] = digest
        return digest

    def _read_digest(self, blob: BlobInfo, path: str) -> str:
        if _rewritable(blob):
            data = self.plan.source.read_bytes(blob.container, blob.name)
            return self._digest(
                rewrite_file(blob.name, data, self.plan.writer.rules, bundle_path=path).data
            )
        sha = self._new_hash()
        with self.plan.source.open_stream(blob.container, blob.name) as fh:
            while chunk := fh.read(CHUNK):
                sha.update(chunk)
        return "sha256:" + sha.hexdigest()

    def _digest(self, data: bytes) -> str:
        sha = self._new_hash()
        sha.update(data)
        return "sha256:" + sha.hexdigest()


def _rewritable(blob: BlobInfo) -> bool:
    return needs_rewrite(blob.name, blob.size) and blob.size <= MAX_REWRITE_BYTES
