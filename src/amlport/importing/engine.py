"""``amlport import``: verify the snapshot, plan every importer, apply, record.

Order of safety: every write passes one ``WriteGuard`` (storage/guard.py), created closed.
Everything that can be checked is checked before it opens: the flags, the MLflow server, the
repository, the snapshot and every one of its objects (an integrity failure writes nothing),
and the target (never the repository itself). ``--dry-run`` stops after the plan with the
guard refusing every write; applying is idempotent (a re-run plans all ``skip``); the import
record is written last, and only when something changed.
"""

from __future__ import annotations

import hashlib
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, TypeVar, cast

from amlport.bundle import Repository
from amlport.bundle.store import DRY_RUN
from amlport.errors import AmlportError, DiskFull, ExitCode, IntegrityError, UsageError
from amlport.importers import IMPORTERS
from amlport.importers.base import ImportAction, ImportContext, Importer
from amlport.model import provenance
from amlport.model.loadplan import WHOLE, LoadPlan
from amlport.model.manifest import FileEntry, Manifest
from amlport.model.mapping import Mapping
from amlport.model.workspace import WorkspaceDescriptor
from amlport.progress import Progress
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.guard import POLICIES, GuardedTarget, WriteGuard, place_of_repository
from amlport.storage.opener import StorageAuth
from amlport.storage.target import DIGEST_METADATA, Target
from amlport.streams import ChunkStream

CONFLICT_POLICIES = POLICIES
_T = TypeVar("_T")


@dataclass
class ImportRequest:
    mapping: Mapping
    snapshot: str | None = None
    source: str | None = None  # --source ACCOUNT[/WORKSPACE]: whose latest (bundle/sources.py)
    dry_run: bool = False
    on_conflict: str = "fail"
    emit_assets: Path | None = None
    register_mlflow: str | None = None
    workspace: str | None = None
    workers: int = 8
    strict: bool = False  # a URI only kept with a warning is refused (blocks its file)


@dataclass
class ImportResult:
    snapshot_id: str
    dry_run: bool
    on_conflict: str = "fail"
    actions: list[ImportAction] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    record: str | None = None
    identity: str | None = None  # where the target's identity record is (written or kept)

    @property
    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(a.action for a in self.actions).items()))

    @property
    def rewrites(self) -> list[dict[str, str]]:
        """Every rewrite of the files the target holds (or, dry run, would hold): the file
        as it lands, where in it, before, after and the rule."""
        return rewrites_of(self.actions)

    @property
    def changed(self) -> int:
        return sum(1 for a in self.actions if a.action in ("create", "update"))

    @property
    def exit_code(self) -> ExitCode:
        # A conflict left alone on purpose (--on-conflict skip) is a warning, not a failure.
        bad = ("blocked", "failed") + (() if self.on_conflict == "skip" else ("conflict",))
        trouble = self.failures or any(a.action in bad for a in self.actions)
        if trouble:
            return ExitCode.WARNINGS if self.dry_run else ExitCode.PARTIAL
        kept = any(a.action == "conflict" for a in self.actions)
        return ExitCode.WARNINGS if self.warnings or kept else ExitCode.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot_id,
            "dry_run": self.dry_run,
            "on_conflict": self.on_conflict,
            "counts": self.counts,
            "actions": [a.to_dict() for a in self.actions],
            "failures": self.failures,
            "warnings": self.warnings,
            "record": self.record,
            "identity": self.identity,
            "rewrites": self.rewrites,
        }


def load_mapping(path: Path) -> Mapping:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read map file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(
            f"map file {path} is not UTF-8 text", hint="start from 'amlport map init REPO'"
        ) from None
    return Mapping.from_yaml(text, where=str(path))  # bounded YAML, then the map schema


def pick_snapshot(
    repo: Repository,
    snapshot: str | None,
    source: str | None = None,
    mapping: Mapping | None = None,
    plan: LoadPlan = WHOLE,
) -> Manifest:
    """``snapshot`` (None, ``latest``: the newest of the source ``--source`` or the map
    names), refused when it is of another source than either names (bundle/sources.py).
    ``plan``: what the read keeps (``LoadPlan``)."""
    from amlport.bundle.sources import parse_source, select_snapshot

    mapped = parse_source(mapping.source if mapping else None, where="map file 'source:'")
    return select_snapshot(repo, snapshot, parse_source(source), mapped, plan)


def import_rules(manifest: Manifest, mapping: Mapping, *, strict: bool = False) -> RewriteRules:
    source = WorkspaceDescriptor.from_dict(manifest.source, where="snapshot source", strict=False)
    mapping = mapping.with_aliases(source)
    return RewriteRules(
        direction="import",
        source=Identity.from_descriptor(source),
        target=Identity.from_descriptor(mapping.target),
        datastore_map=mapping.datastores,
        asset_renames=mapping.assets,
        strict=strict,
    )


def mapping_for(manifest: Manifest, mapping: Mapping) -> Mapping:
    """The map with the snapshot source's aliases (``Mapping.with_aliases``)."""
    source = WorkspaceDescriptor.from_dict(manifest.source, where="snapshot source", strict=False)
    return mapping.with_aliases(source)


def rewrites_of(actions: list[ImportAction]) -> list[dict[str, str]]:
    """The rewrites (``details["rewrites"]``) of the actions whose file the target holds."""
    return [
        r
        for a in actions
        if a.action in ("create", "update", "skip")
        for r in a.details.get("rewrites", ())
    ]


def run_import(
    repo_path: str | Path,
    target: Target,
    request: ImportRequest,
    *,
    progress: Progress | None = None,
    repo_auth: StorageAuth | None = None,
    guard: WriteGuard | None = None,
    narrow: Callable[[Manifest], Manifest] | None = None,
) -> ImportResult:
    """Plan and apply ``request``; every write goes through one ``WriteGuard``, opened only
    after the flags, the MLflow server, the repository and the snapshot were checked.
    ``narrow``: imports only the part of the (verified) snapshot it returns (``restore
    --select``, backup/select.py).
    ``guard``: a closed guard of the caller's (tests assert on it), else one is made."""
    guard = guard or WriteGuard(
        dry_run=request.dry_run,
        on_conflict=request.on_conflict,
        source=place_of_repository(repo_path),  # the run reads the repository
    )
    if (guard.dry_run, guard.on_conflict) != (request.dry_run, request.on_conflict):
        raise ValueError("the write guard and the request disagree on --dry-run/--on-conflict")
    guarded = guard.wrap(target)  # a target that is the repository is refused here
    importers = _importers(guarded, request)  # checks the MLflow server
    # A dry run writes nothing in the repository either, not even a lock file (F, session 8)
    repo = Repository.open(repo_path, auth=repo_auth, reading=DRY_RUN if guard.dry_run else None)
    with repo, repo.lock(exclusive=False):
        # Verified before it is read whole: the verification's own read of the snapshot is
        # not on top of the import's copy (100k files; docs/design/0007, C session 7).
        picked = pick_snapshot(
            repo, request.snapshot, request.source, request.mapping, LoadPlan.only()
        )
        verify_first(repo, picked)
        # The importers read the files and the assets; a --select narrowing reads the
        # lineage and the records too (backup/select.py).
        kept = WHOLE if narrow is not None else LoadPlan.only("files", "assets")
        manifest = repo.snapshots.load_exact(str(picked.snapshot_id), kept)
        del picked
        if narrow is not None:  # restore --select: only what the selection needs
            manifest = narrow(manifest)
        result = ImportResult(str(manifest.snapshot_id), request.dry_run, guard.on_conflict)
        ctx = ImportContext(
            repo,
            manifest,
            mapping_for(manifest, request.mapping),
            import_rules(manifest, request.mapping, strict=request.strict),
            result.warnings.append,
            guard=guard,
        )
        # One list of actions per importer, not a pair per file (a 100k-file plan held
        # 100k tuples through the apply; B, session 9).
        planned = [(imp, imp.plan(ctx)) for imp in importers]
        result.actions = [a for _, actions in planned for a in actions]
        if request.dry_run:
            return result
        guard.open()
        guarded.ensure_containers()
        result.actions = apply_planned(planned, ctx, result.failures, request.workers, progress)
        try:
            if result.changed:
                result.record = _write_record(guarded, manifest, request.mapping, result)
                _write_designer_documents(guarded, ctx, manifest, request.mapping)
            result.identity = write_identity(guarded, request.mapping.target)
        except DiskFull as exc:  # the files are written (exit 3); a re-run adds the record
            result.failures.append(f"import record: {exc.message}")
    return result


def verify_first(repo: Repository, manifest: Manifest) -> None:
    report = repo.verify(manifest.snapshot_id)
    if not report.ok:
        # A problem naming the files it damages, when one does: a damaged pack is reported
        # before the objects in it, and only they say which files the import cannot write.
        p = next((q for q in report.problems if q.paths), report.problems[0])
        raise IntegrityError(
            f"snapshot {str(manifest.snapshot_id)[:16]} failed verification before import: "
            f"{p.message}",
            hint="nothing was written; repair the repository or re-export",
        )


def _importers(target: GuardedTarget, request: ImportRequest) -> list[Importer]:
    return [
        IMPORTERS["datastore"](target),
        *asset_importers(target, request.emit_assets, request.register_mlflow),
    ]


def asset_importers(
    target: GuardedTarget, emit_assets: Path | None, register_mlflow: str | None
) -> list[Importer]:
    """The importers past storage (``--emit-assets``, ``--register-mlflow``; import and
    promote alike); an unreachable MLflow server (or no mlflow) fails here, before the write
    guard opens. Each comes from the ``IMPORTERS`` registry by name (its entry is lazy:
    azure-ai-ml and mlflow are imported only when the flag asks for them)."""
    found: list[Importer] = []
    if emit_assets is not None:
        # Where the YAML goes is known now: a folder inside the repository is refused before
        # the first write, not once the storage is restored (the guard checks it again).
        target.guard.folder(emit_assets, "--emit-assets folder")

        found.append(IMPORTERS["azureml_assets"](emit_assets))
    if register_mlflow is not None:
        registry = IMPORTERS["mlflow"](register_mlflow)
        registry.client()  # probes the server: validation, not a write
        found.append(registry)
    return found


def apply_planned(
    planned: list[tuple[Importer, list[ImportAction]]],
    ctx: ImportContext,
    failures: list[str],
    workers: int,
    progress: Progress | None,
) -> list[ImportAction]:
    """Storage first (in parallel), then the importers that build on it, in order.
    ``planned``: each importer with the actions it planned."""
    done: list[ImportAction] = []
    storage = [(i, actions) for i, actions in planned if i.name == "datastore"]
    total = sum(len(actions) for _, actions in storage)
    rest = [(i, a) for i, actions in planned if i.name != "datastore" for a in actions]

    def one(pair: tuple[Importer, ImportAction]) -> ImportAction:
        importer, action = pair
        try:
            return importer.apply(action, ctx)
        except AmlportError as exc:
            failures.append(f"{action.subject}: {exc.message}")
            return ImportAction(
                action.importer, "failed", action.subject, action.target, exc.message
            )

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="amlport-import") as pool:
        pairs = ((i, a) for i, actions in storage for a in actions)  # one at a time
        for n, outcome in enumerate(_in_order(pool, one, pairs, 4 * workers), 1):
            done.append(outcome)
            if progress:
                progress("import", n, total)
    done += [one(pair) for pair in rest]
    return done


def _in_order(
    pool: ThreadPoolExecutor,
    fn: Callable[[_T], ImportAction],
    items: Iterable[_T],
    ahead: int,
) -> Iterator[ImportAction]:
    """``pool.map(fn, items)`` with at most ``ahead`` items submitted and not yet returned:
    ``map`` submits every item at once, and a future per file of a 100k-file restore was
    ~1 KB each held to the end (docs/design/0007, C session 7). Same order, same errors."""
    pending: deque[Future[ImportAction]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:  # an error (or a caller that stops early): what was not started never starts
        for future in pending:
            future.cancel()


def _write_designer_documents(
    target: GuardedTarget, ctx: ImportContext, manifest: Manifest, mapping: Mapping
) -> None:
    """A designer pipeline's document (docs/designer.md) beside the import record, under the
    reserved prefix: ``amlport/pipelines/<run>.md`` (export reads only ``amlport/imports/``).
    Their entries are found in one pass over the files: no index of every path (B, session 9)."""
    docs = [
        str(doc)
        for asset in manifest.assets
        if asset.kind == "pipeline" and (doc := asset.attrs.get("designer_document"))
    ]
    wanted = set(docs)
    entries: dict[str, FileEntry] = {}
    for entry in manifest.files if wanted else ():
        if entry.path in wanted:
            entries.setdefault(entry.path, entry)  # the first, as ``Manifest.file``
    for doc in docs:
        name = f"{provenance.RECORDS_PREFIX}pipelines/{doc.rsplit('/', 1)[-1]}"
        container = mapping.target.artifact_container
        meta = {"amlport_snapshot": str(manifest.snapshot_id)}
        found = entries.get(doc)
        data = ctx.read(doc) if found is None else ctx.read_object(found.digest, found.size)
        target.write_bytes(container, name, data, metadata=meta, overwrite=True)


def _write_record(
    target: GuardedTarget, manifest: Manifest, mapping: Mapping, result: ImportResult
) -> str:
    """The import record, written as it is encoded (``provenance.encoded_pieces``): never
    whole in memory. The target writes it in one piece all the same (a local file renamed
    into place once complete, an Azure blob committed at its end): a write that fails leaves
    the record that was there, or none."""
    name = provenance.record_name(manifest)
    doc = provenance.record(manifest, mapping, result.counts, result.rewrites)
    with ChunkStream(provenance.encoded_pieces(doc)) as stream:
        target.write_stream(
            mapping.target.artifact_container,
            name,
            cast(BinaryIO, stream),
            metadata={"amlport_snapshot": str(manifest.snapshot_id)},
            overwrite=True,
        )
    return f"{mapping.target.artifact_container}/{name}"


def write_identity(target: GuardedTarget, identity: WorkspaceDescriptor) -> str:
    """The target's identity record (model/provenance.py), through the guard: written when
    it is missing or names something else, else left (a re-run writes nothing)."""
    container, name = identity.artifact_container, provenance.IDENTITY_NAME
    data = provenance.encode(provenance.identity_record(identity))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    found = target.stat(container, name)
    if found is None or found.sha256 != digest:
        meta = {DIGEST_METADATA: digest}
        target.write_bytes(container, name, data, metadata=meta, overwrite=found is not None)
    return f"{container}/{name}"
