"""``amlport export``: walk, select, run the exporters, transfer, write the snapshot last.

Atomicity: objects are written first (each atomically, named by hash); the manifest is
written last, so an interrupted export leaves no snapshot and a re-run reuses every object
already stored. A run where some files failed still records a snapshot of what succeeded,
marked incomplete, and reports a partial failure (exit 3).
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlport import secret_prefilter
from amlport.bundle import Repository
from amlport.export.request import ExportRequest, ExportResult
from amlport.export.request import PlanExtension as PlanExtension
from amlport.export.selection import Selection, select
from amlport.export.workers import WalkReads, warm_up
from amlport.export.writer import BundleWriter
from amlport.exporters import registered
from amlport.exporters.base import AssetUnsupported, ExportContext
from amlport.lineage import LineageGraph, build_graph
from amlport.lineage.packed import PackedNodeLink
from amlport.model.inventory import Inventory
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, holds_path, source_key
from amlport.model.provenance import IMPORTS_PREFIX, MAX_RECORD_BYTES, provenance_from
from amlport.progress import Progress
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.base import Source
from amlport.storage.guard import refuse_repository_in_source
from amlport.storage.opener import StorageAuth
from amlport.storage.reuse import ReusingSource
from amlport.walk import WalkOptions, walk_with_listing
from amlport.walk.cache import ReadCache
from amlport.walk.listing import Listing

CARRIED = ("files", "rewrites", "redactions")  # what an export reads of the previous snapshot


def run_export(
    source: Source,
    repo_path: str | Path,
    request: ExportRequest,
    *,
    progress: Progress | None = None,
    repo_auth: StorageAuth | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ExportResult:
    """``repo_path``: a folder or an Azure container URL (``repo_auth``: its credential).
    ``on_warning``: told about what does not change the result (a read cache not used).
    A repository in (or holding) the source folder or container is refused first."""
    refuse_repository_in_source(source, repo_path)
    if not request.dry_run:  # the transfer stores again what the walk read: read it once
        source = ReusingSource(source)
    # The collector's full passes find nothing in what lives through the walk and
    # planning (the modules, then the inventory and the listing): frozen, they skip it
    # (``_frozen``).
    with _frozen():
        inv, listing, cached = _walk(source, request, progress, on_warning or _ignore)
        gc.freeze()  # and the walk's inventory and listing, through planning
        lg = build_graph(inv)
        chosen = select(inv, lg, request.select, request.include)
        rules = RewriteRules(direction="export", source=Identity.from_descriptor(inv.source))
        writer = BundleWriter(source, listing, rules, specs=request.specs)
        assets, skipped = plan_assets(inv, lg, chosen, writer)
        if request.extension is not None:
            assets += request.extension(inv, lg, chosen, writer)
        result = ExportResult(
            assets=assets,
            skipped=skipped,
            planned_files=len(writer.blobs) + len(writer.generated),
            planned_bytes=writer.planned_bytes,
            data_skipped_bytes=sum(chosen.data_skipped.values()) + _uploads_left_out(inv, writer),
            warnings=[],
            cached_reads=cached,
        )
        if request.dry_run:
            result.retries = source.retry_count
            return result
        warm_up(source, len(writer.blobs))  # worker processes for the transfer (export/workers.py)
        source_desc, provenance = inv.source.to_dict(), _provenance(writer, inv)
        # The walk's inventory, graph and listing are not needed past planning: let them go
        # before the lineage is copied out and the transfer and the previous snapshot take
        # memory (100k-blob workspaces: this is the run's high-water mark).
        del inv, listing
        writer.release_listing()
        if request.extension is not None:
            request.extension.release()
    # The inventory and the graph are reference cycles (the walk's records, networkx's
    # views): ``del`` alone leaves them to a full collection, which a process with 100k+
    # live objects seldom runs, so they stayed through the transfer (~45 MB at 100k blobs).
    # So: one collection for the inventory and listing (thawed) before the lineage is built
    # beside the graph, one for the graph once the lineage is out.
    gc.collect()
    lineage = lg.to_node_link(chosen.nodes)
    commit = _Commit(source_desc, PackedNodeLink(lineage), chosen.roots, provenance)
    del lg, chosen, lineage
    gc.collect()
    repo = Repository.open_or_init(repo_path, auth=repo_auth, on_warning=on_warning)
    # What is alive now (the plan, the modules) lives through the transfer: frozen too.
    with _frozen(), repo, repo.lock(exclusive=False):  # shared: objects are write-once
        _transfer_and_commit(repo, commit, writer, request, result, progress)
    result.retries = source.retry_count
    return result


@contextmanager
def _frozen() -> Iterator[None]:
    """Objects alive now (and those ``gc.freeze`` adds inside) are left out of the cyclic
    collector's passes until the block ends. A first backup of 100k blobs holds ~1M objects
    that live through its walk, planning and transfer; each of the ~14 full passes of those
    phases walked them all and found nothing (~0.15 s each): frozen, they cost ~1 s less.
    Only a cycle among frozen objects that dies inside the block waits for its end to be
    collected (``run_export`` collects right after the first block)."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _uploads_left_out(inv: Inventory, writer: BundleWriter) -> int:
    """Bytes of upload folders (``LocalUpload/<hash>``, ``UI/…``) no exporter carries: part
    of "data payloads left out" with the run outputs left out (a data node has no size)."""
    total = 0
    for loc in inv.uploads:
        container = inv.source.container_of(loc.datastore)
        if container is None:
            continue
        for blob in writer.listing.under(container, loc.path):
            if not writer.is_planned(container, blob.name):
                total += blob.size
    return total


def _walk(
    source: Source, request: ExportRequest, progress: Progress | None, warn: Callable[[str], None]
) -> tuple[Inventory, Listing, int]:
    """The walk, with the read cache of this source when one is asked for; and how many
    files the cache gave."""
    cache = None
    # the byte scan's compiled expressions are kept beside the read cache (docs/design/0005)
    # A dry run writes nothing, its cache folder included: it uses what is kept there.
    secret_prefilter.keep_compiled_in(request.cache_dir, write=not request.dry_run)
    if request.cache_dir is not None:
        key = source_key(source.descriptor.to_dict())
        cache = ReadCache.open(request.cache_dir, key, on_warning=warn, read_only=request.dry_run)
    ahead = WalkReads.of(source, request.workers, scan_secrets=True)  # worker processes
    options = WalkOptions(specs=request.specs, progress=progress, cache=cache, ahead=ahead)
    if cache is None:
        return (*walk_with_listing(source, options=options), 0)
    try:
        inv, listing = walk_with_listing(source, options=options)
    except BaseException:
        cache.close()  # what this walk did not finish is not kept
        raise
    cache.finish()
    if isinstance(source, ReusingSource):  # the files the walk kept there: read from there
        source.read_cached_from(cache.reader())
    return inv, listing, cache.hits


def _ignore(_message: str) -> None:
    pass


@dataclass
class _Commit:
    """What the snapshot records besides the transferred files, taken before the transfer."""

    source: dict[str, Any]
    lineage: PackedNodeLink  # compressed through the transfer (~10 MB at 100k blobs)
    roots: list[str]
    provenance: list[dict[str, Any]]


def complete_previous(
    repo: Repository, previous: Manifest, current: Manifest | None = None
) -> Manifest:
    """``ExportResult.previous`` with its assets and lineage read back (a comparison needs
    them; the transfer did not): one more read of the snapshot, never two copies of its
    file list. The assets' file lists share the entries' path strings (~17 MB at 100k).

    ``current``: the snapshot just written after it. Where both format-2 roots name the
    same pieces for the assets and the lineage, those are equal (pieces are named by their
    bytes): they are taken from ``current`` and nothing is read (an unchanged re-backup)."""
    assert previous.snapshot_id is not None
    if current is not None and _same_pieces(repo, previous.snapshot_id, current.snapshot_id):
        return dataclasses.replace(previous, assets=current.assets, lineage=current.lineage)
    paths = {f.path: f.path for f in previous.files}
    rest = repo.snapshots.load_exact(
        previous.snapshot_id, LoadPlan.only("assets", "lineage", strings=paths)
    )
    del paths
    for key in CARRIED:
        setattr(rest, key, getattr(previous, key))
    return rest


_COMPLETED = ("assets", "lineage.nodes", "lineage.links")  # what complete_previous reads


def _same_pieces(repo: Repository, previous: str, current: str | None) -> bool:
    """Do two format-2 snapshots hold the same assets and lineage (the same pieces)?"""
    snapshots = repo.snapshots
    if current is None or snapshots.format_of(previous) != 2 or snapshots.format_of(current) != 2:
        return False
    a, b = snapshots.read_root(previous), snapshots.read_root(current)
    if a.get("lineage") != b.get("lineage"):
        return False
    return all(a["lists"].get(k) == b["lists"].get(k) for k in _COMPLETED)


def plan_assets(
    inv: Inventory, lg: LineageGraph, chosen: Selection, writer: BundleWriter
) -> tuple[list[AssetEntry], list[tuple[str, str]]]:
    warnings: list[str] = []
    ctx = ExportContext(inv, lg, writer, warnings.append, selected={i.node for i in chosen.items})
    exporters = registered(on_warning=warnings.append)  # a broken plugin: a warning, not a crash
    assets: list[AssetEntry] = []
    skipped: list[tuple[str, str]] = []
    for item in chosen.items:
        exporter = next((e for e in exporters if e.accepts(item, ctx)), None)
        if exporter is None:
            skipped.append((item.node, f"no exporter handles {item.kind} {item.name!r}"))
            continue
        try:
            assets.append(exporter.export(item, ctx))
        except AssetUnsupported as exc:
            skipped.append((item.node, exc.message))
    skipped += [("-", w) for w in warnings]
    return assets, skipped


def _provenance(writer: BundleWriter, inv: Inventory) -> list[dict[str, Any]]:
    hops, problems = earlier_hops(writer.source, inv)
    writer.warnings.extend(problems)  # the run exits 1: provenance it could not carry
    return hops


def earlier_hops(source: Source, inv: Inventory) -> tuple[list[dict[str, Any]], list[str]]:
    """Earlier hops, from the import records amlport left in this workspace (if any), and
    one problem per record that could not be read (export and promote carry them forward)."""
    container = inv.source.artifact_container
    limit = MAX_RECORD_BYTES + 1  # one byte more tells a record too large to read
    raw = [
        (f"{container}/{name}", source.read_bytes(container, name, max_bytes=limit))
        for name in sorted(inv.amlport_records)
        if name.startswith(IMPORTS_PREFIX)
    ]
    return provenance_from(raw)


def _transfer_and_commit(
    repo: Repository,
    commit: _Commit,
    writer: BundleWriter,
    request: ExportRequest,
    result: ExportResult,
    progress: Progress | None,
) -> None:
    key = source_key(commit.source)
    # The index rows hold the plan's listing strings (name, etag, MD5); the previous
    # snapshot's entries hold the plan's path strings (the assets' file lists hold them too);
    # and both hold one string per digest (~40 MB of copies at 100k blobs, otherwise).
    paths = writer.planned_paths()
    digests: dict[str, str] = {}  # apart from the paths: a full dict grows to 4x its table
    index = repo.source_index(  # its rows' keys: the planned paths (``path_prefix``)
        key, LoadPlan(known=writer.listed, strings=digests, prefix=writer.path_prefix)
    )
    writer.drop_unchanged_reads(index)
    # What the transfer carries over from the previous snapshot: its file entries (shared by
    # both manifests) and the rewrite and redaction records of unchanged files. Its assets
    # and lineage would only take memory while the files move (``complete_previous``).
    previous = repo.latest_snapshot(key, LoadPlan.only(*CARRIED, strings=paths, digests=digests))
    del paths, digests
    total = writer.planned_bytes

    def report(_files: int, done_bytes: int) -> None:
        if progress:
            progress("export", done_bytes, total)

    try:
        with repo.objects.batch():  # durable (packs: then their index) before the index
            stats = writer.transfer(repo, index, previous, workers=request.workers, progress=report)
    finally:
        index.save()  # what was stored stays reusable, even after an interruption
    # Saved, the index's rows (a name, etag and MD5 per blob) are not needed for the
    # snapshot: they go before it is written (docs/design/0007, "Peak memory at 100k").
    del index
    if isinstance(writer.source, ReusingSource):
        writer.source.drop()  # unchanged files were not read again: their bytes go now
    result.stats = stats
    failed = {f.path for f in stats.failures} | writer.withheld  # secrets kept out
    result.warnings = sorted(set(writer.warnings)) + [f"not exported: {f}" for f in stats.failures]
    for asset in result.assets:
        asset.files = [f for f in asset.files if f not in failed]
    if failed:
        result.assets = _without_emptied_folders(result.assets, writer.entries, result.warnings)
    manifest = Manifest(
        source=commit.source,
        created=request.created,
        parent=previous.snapshot_id if previous else None,
        tags=sorted(request.tags),
        selection={
            "select": request.select,
            "include": sorted(request.include),
            "roots": commit.roots,
            "specs": bool(request.specs),
            **({"extension": request.extension.name} if request.extension else {}),
        },
        assets=result.assets,
        files=sorted(writer.entries.values(), key=lambda f: f.path),
        lineage=commit.lineage.unpack(),
        rewrites=sorted(writer.rewrites, key=lambda r: (r.file, r.location)),
        redactions=sorted(writer.redactions, key=lambda r: (r.file, r.kind)),
        warnings=result.warnings + [f"skipped {n}: {r}" for n, r in result.skipped],
        stats={
            **stats.to_dict(),
            "complete": not stats.failures,
            "failures": len(stats.failures),
            "data_left_out_bytes": result.data_skipped_bytes,
        },
        provenance=commit.provenance,
        extra=request.record(stats) if request.record is not None else {},
    )
    writer.entries.clear()  # the manifest holds them, sorted: the dict's table goes
    result.snapshot_id = repo.write_snapshot(manifest)
    result.parent = manifest.parent
    result.manifest, result.previous = manifest, previous


def _without_emptied_folders(
    assets: list[AssetEntry], entries: dict[str, FileEntry], warnings: list[str]
) -> list[AssetEntry]:
    """The assets of a partial run, without those whose folder (a model's) kept no file:
    every file of it failed or was withheld, and a snapshot naming an empty folder is not a
    snapshot (``check_references``, whose test this is). Each one left out is a warning; the
    run is partial already (exit 3 or 1) and the next run exports it again."""
    paths = sorted(f.path for f in entries.values())
    kept: list[AssetEntry] = []
    for asset in assets:
        folder = asset.attrs.get("folder")
        if isinstance(folder, str) and folder and not holds_path(paths, folder, under=True):
            warnings.append(f"not exported: asset {asset.id}: no file of {folder} was stored")
            continue
        kept.append(asset)
    return kept
