"""Walk one workspace's storage into an ``Inventory``.

One listing of every blob, then one parallel pass that reads only the small files that carry
meaning (pointers, designer metadata, MLmodel, lineage logs, YAML, Dockerfiles; logs too when
the secret scan is on), then a pure linking step. Nothing is written anywhere.

Files are parsed up to ``max_parse_bytes``; a larger one is still scanned whole for secrets,
as a stream with bounded memory (``scan_secrets``), and only a file whose structure matters
(YAML, MLmodel, a lineage log) is reported as not parsed whole.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Protocol

from amlport.errors import AmlportError, ParseError, UsageError
from amlport.model import findings as F
from amlport.model.findings import Finding, Severity
from amlport.model.inventory import Inventory, Loc, Output, Upload
from amlport.model.provenance import RECORDS_PREFIX
from amlport.progress import Progress
from amlport.secrets import describe, find_secrets, may_hold_secret, redact, scan_stream
from amlport.storage.base import BlobInfo, ReadResult, Source
from amlport.walk import classify as C
from amlport.walk.cache import ReadCache
from amlport.walk.early import Early
from amlport.walk.handlers import SPECS_CONTAINER, Handlers
from amlport.walk.identity import adopt_identity
from amlport.walk.linker import link
from amlport.walk.listing import Listing

MAX_PARSE_BYTES = 8 * 1024 * 1024
MAX_POINTER_BYTES = 64 * 1024
NAMES_SEARCHED_TOGETHER = 256  # blob names searched for secrets as one text (``_names``)


class ReadAhead(NamedTuple):
    """One file read ahead of the walk by another process (``ReadsAhead``): its bytes (at
    most the parse limit and one byte), the byte scan of them when they are whole (None:
    not scanned), what the read cache stores of them (``cache.packed``; None: nothing), and
    the record parsed of them when they are whole (``early.parse``; None: parse them here)."""

    data: bytes
    found: Counter[str] | None
    packed: bytes | None
    parsed: Early | None = None


class ReadsAhead(Protocol):
    """Reads of the walk done ahead in other processes (``export/workers.py``: a local
    copy's files read, scanned and packed by worker processes)."""

    def warm_up(self, listed: int) -> None:
        """The listing holds ``listed`` blobs: start what the reads will need."""

    def __call__(
        self, blobs: list[BlobInfo], max_bytes: int, pack: bool
    ) -> Generator[tuple[BlobInfo, ReadAhead | None], None, None] | None:
        """Each of ``blobs``, in order, with what was read of it ahead (None: read it here,
        as without workers: a failed read, a large file, a worker that died); or None: the
        reads are too few to pay for the processes."""


@dataclass
class WalkOptions:
    specs: Path | None = None
    workers: int = 8
    scan_secrets: bool = True
    max_parse_bytes: int = MAX_PARSE_BYTES
    progress: Progress | None = None
    # Files read on an earlier run, still matching the listing (``cache.py``). The walk
    # writes to it only with the secret scan on; the caller closes it (``finish``).
    cache: ReadCache | None = None
    # The reads of a local copy done ahead by worker processes (None: all on this process).
    ahead: ReadsAhead | None = None


def walk(
    source: Source, *, specs: Path | None = None, options: WalkOptions | None = None
) -> Inventory:
    return walk_with_listing(source, specs=specs, options=options)[0]


def walk_with_listing(
    source: Source, *, specs: Path | None = None, options: WalkOptions | None = None
) -> tuple[Inventory, Listing]:
    """Walk, and keep the listing for the next step (export reuses it: no second listing)."""
    opts = options or WalkOptions()
    if specs is not None:
        opts.specs = specs
    walker = _Walker(source, opts)
    return walker.run(), walker.listing


class _Walker:
    def __init__(self, source: Source, options: WalkOptions) -> None:
        self.source = source
        self.opts = options
        self.inv = Inventory(source=source.descriptor)
        self.handlers = Handlers(self.inv, scan_secrets=options.scan_secrets)
        self.listing = Listing()
        self.reads: list[tuple[BlobInfo, Callable[[BlobInfo, bytes], None]]] = []

    def _progress(self, phase: str, done: int, total: int | None) -> None:
        if self.opts.progress:
            self.opts.progress(phase, done, total)

    def run(self) -> Inventory:
        blobstore, artifacts = self._list()
        if found := adopt_identity(self.source, self.listing, self._identity_problem):
            self.inv.source = found  # amlport/identity.json (walk/identity.py)
        known_runs = self._classify_artifacts(artifacts)
        self._classify_blobstore(blobstore, known_runs)
        self._read_all()
        if self.opts.specs is not None:
            self._read_specs(self.opts.specs)
        link(self.inv, self.listing.has_blobs_under)
        return self.inv

    # -- listing -------------------------------------------------------------------------
    def _list(self) -> tuple[list[BlobInfo], list[BlobInfo]]:
        desc = self.source.descriptor
        blobstore: list[BlobInfo] = []
        artifacts: list[BlobInfo] = []
        named: list[BlobInfo] = []  # names not yet searched for secrets (``_names``)
        for blob in self.source.list_blobs():
            self.inv.blobs += 1
            self.inv.bytes += blob.size
            self.listing.add(blob)
            if self.opts.scan_secrets:
                named.append(blob)
                if len(named) >= NAMES_SEARCHED_TOGETHER:
                    self._names(named)
            if blob.container == desc.artifact_container:
                artifacts.append(blob)
            elif blob.container == desc.blobstore_container:
                blobstore.append(blob)
            else:
                self.inv.unknown[f"container:{blob.container}"] += 1
            if self.inv.blobs % 5000 == 0:
                self._progress("list", self.inv.blobs, None)
        self._names(named)
        self._progress("list", self.inv.blobs, self.inv.blobs)
        self.listing.freeze()
        if self.opts.ahead is not None:
            self.opts.ahead.warm_up(self.inv.blobs)
        return blobstore, artifacts

    def _names(self, blobs: list[BlobInfo]) -> None:
        """``_secret_in_name`` of each blob whose name may hold a secret, in order, and
        ``blobs`` emptied. Their names are searched together first: a trigger in a name is
        a trigger in the names joined (a substring; lower-casing is per character), so a
        join holding none spares a search of each name (one per blob: ~1 % of a first
        backup's main process at 100k blobs, docs/design/0007, A, session 9)."""
        if blobs and may_hold_secret("\n".join(b.name for b in blobs)):
            for blob in blobs:
                if may_hold_secret(blob.name):
                    self._secret_in_name(blob)
        blobs.clear()

    def _secret_in_name(self, blob: BlobInfo) -> None:
        """A blob whose *name* holds a credential (a SAS pasted into a path): the finding
        names it redacted; export does not copy it (its name would carry the secret)."""
        found = find_secrets(blob.name)
        if found:
            self._finding(
                F.SECRET_IN_FILE,
                f"{blob.container}/{blob.name}",  # redacted by _finding
                f"the blob's name contains credentials ({describe(found)}); rotate them and "
                "rename the blob: export does not copy it",
                Severity.HIGH,
            )

    def _queue(self, blob: BlobInfo, handler: Callable[[BlobInfo, bytes], None]) -> None:
        self.reads.append((blob, handler))

    # -- artifact container ------------------------------------------------------------------
    def _classify_artifacts(self, blobs: list[BlobInfo]) -> set[str]:
        h = self.handlers
        for blob in blobs:
            ap = C.classify_artifact(blob.name)
            if ap is None:
                if blob.name.startswith(RECORDS_PREFIX):
                    self.inv.amlport_records.append(blob.name)  # our own import records
                else:
                    self.inv.unknown[f"artifacts:{blob.name.split('/', 1)[0]}"] += 1
                continue
            run = self.inv.run(ap.run_id)
            run.exists = True
            if ap.role in ("log", "execution_log"):
                run.log_files.append(ap.rest)
                if h.wants_log(ap.rest) and C.is_log_text(ap.rest):
                    self._queue(blob, h.on_log)
            elif ap.role == "pointer_candidate" and blob.size <= MAX_POINTER_BYTES:
                self._queue(blob, h.on_pointer_candidate)
            elif ap.role == "mlmodel":
                self._queue(blob, h.on_mlmodel)
            else:
                run.artifacts.append(ap.rest)
                self._queue_content(blob)
        return {rid for rid, r in self.inv.runs.items() if r.exists}

    # -- blobstore -----------------------------------------------------------------------------
    def _classify_blobstore(self, blobs: list[BlobInfo], known_runs: set[str]) -> None:
        desc = self.source.descriptor
        datastore = desc.datastore_of(desc.blobstore_container) or "workspaceblobstore"
        workdirs = self._legacy_workdirs(blobs)
        for blob in blobs:
            bp = C.classify_blobstore(blob.name)
            if bp.area == "run_scoped" and bp.key is not None:
                if (bp.root, bp.key) in workdirs:
                    self._add_workdir_file(datastore, bp, blob)
                else:
                    self._add_output_file(datastore, f"{bp.root}/{bp.key}", bp.key, bp.rest, blob)
            elif bp.area == "upload" and bp.key is not None:
                self._add_upload_file(Loc(datastore, f"{bp.root}/{bp.key}"), bp.root, blob)
            elif bp.root in known_runs and C.port_folder(bp.rest):
                # v2 outputs also appear without the azureml/ segment: <job>/<output>/…
                self._add_output_file(datastore, bp.root, bp.root, bp.rest, blob)
            else:
                self._add_upload_file(Loc(datastore, bp.root), "user", blob)
            self._queue_content(blob)

    @staticmethod
    def _legacy_workdirs(blobs: list[BlobInfo]) -> set[tuple[str, str]]:
        """``azureml/<run>/`` folders that are v1 working directories, not output ports."""
        found: set[tuple[str, str]] = set()
        for blob in blobs:
            bp = C.classify_blobstore(blob.name)
            if (
                bp.area == "run_scoped"
                and bp.root == "azureml"
                and bp.key is not None
                and ("/" not in bp.rest or bp.rest.startswith("azureml-setup/"))
            ):
                found.add((bp.root, bp.key))
        return found

    def _add_workdir_file(self, datastore: str, bp: C.BlobstorePath, blob: BlobInfo) -> None:
        run = self.inv.run(str(bp.key))
        run.exists = True  # the working directory is the run's own record
        if run.runtime == "unknown":
            run.runtime = "legacy_workdir"
        self.handlers.note_workdir(Loc(datastore, f"{bp.root}/{bp.key}"), blob)

    def _add_output_file(
        self, datastore: str, scope: str, run_id: str, rest: str, blob: BlobInfo
    ) -> None:
        split = C.port_folder(rest)
        port, inner = split if split else (rest, rest)
        loc = Loc(datastore, f"{scope}/{port}")
        out = self.inv.outputs.get(loc)
        if out is None:
            out = self.inv.outputs[loc] = Output(loc=loc, run_id=run_id, port=port)
        out.files.append(inner)
        out.size += blob.size
        if split and "/" not in inner and inner in self.handlers.OUTPUT_MARKERS:
            self._queue(blob, self.handlers.output_marker_reader(loc))

    def _add_upload_file(self, loc: Loc, kind: str, blob: BlobInfo) -> None:
        up = self.inv.uploads.get(loc)
        if up is None:
            up = self.inv.uploads[loc] = Upload(loc=loc, kind=kind)
        up.files += 1
        up.size += blob.size

    def _queue_content(self, blob: BlobInfo) -> None:
        """Queue files whose content matters wherever they are: YAML, Dockerfiles, MLmodel,
        and, for the secret scan, code and configuration files."""
        handler = self._spec_handler(blob.name)
        if handler is None and self.opts.scan_secrets and C.is_secret_prone(blob.name):
            handler = self.handlers.on_scanned_file  # code, notebooks, env and config files
        if handler is not None:
            self._queue(blob, handler)

    # -- reading -----------------------------------------------------------------------------
    def _read_all(self) -> None:
        handlers = {blob.key: fn for blob, fn in self.reads}
        total = len(self.reads)
        limit = self.opts.max_parse_bytes
        done = 0
        cache = self.opts.cache
        misses = self.reads
        if cache is not None:
            misses = []
            for blob, fn in self.reads:
                data = cache.get(blob)
                if data is None:
                    misses.append((blob, fn))
                    continue
                # The transfer may store it: no second read. A clean file stays in the cache
                # (the transfer takes it from there); one with a finding goes, so it is offered.
                clean = self._dispatch(fn, blob, data, f"{blob.container}/{blob.name}")
                if clean and cache.touch(blob):
                    self.source.cached(blob)
                else:
                    self.source.offer(blob, data)
                done += 1
            self.reads = []
        keep = (
            cache if cache is not None and self.opts.scan_secrets and not cache.read_only else None
        )
        with closing(self._read(misses, limit + 1, pack=keep is not None)) as results:
            for result, ahead in results:
                done += 1
                if done % 500 == 0 or done == total:
                    self._progress("read", done, total)
                path = f"{result.blob.container}/{result.blob.name}"
                if result.error is not None or result.data is None:
                    self._finding(F.MALFORMED_FILE, path, f"could not be read: {result.error}")
                    continue
                data = result.data
                if len(data) > limit:
                    self._partial(result.blob, path, limit)
                    data = _clip(data, limit)
                elif ahead is not None:
                    if ahead.found is not None:
                        self.handlers.scanned = (data, ahead.found)  # the byte scan, done ahead
                    if ahead.parsed is not None:
                        self.handlers.parsed = (data, ahead.parsed)  # parsed ahead (early.py)
                try:
                    clean = self._dispatch(handlers[result.blob.key], result.blob, data, path)
                finally:
                    self.handlers.scanned = self.handlers.parsed = None
                packed = ahead.packed if ahead else None
                # whole files only: a clipped one is refused; one kept there is not kept in
                # memory as well (``storage/reuse.py``)
                if keep is not None and clean and keep.put(result.blob, data, packed=packed):
                    self.source.cached(result.blob)
        if done == total and not misses:
            self._progress("read", done, total)

    def _read(
        self,
        blobs: list[tuple[BlobInfo, Callable[[BlobInfo, bytes], None]]],
        max_bytes: int,
        *,
        pack: bool,
    ) -> Generator[tuple[ReadResult, ReadAhead | None], None, None]:
        """The reads of ``blobs``, in order, with what was done ahead of each (worker
        processes: ``opts.ahead``). A file not read ahead is read here, through the source
        and its wrappers, so a failure is found, counted and worded as without workers; one
        read ahead is offered to the source as the walk's read would have kept it."""
        listed = [b for b, _ in blobs]
        ahead = self.opts.ahead(listed, max_bytes, pack) if self.opts.ahead else None
        if ahead is None:
            for result in self.source.read_many(
                listed, max_bytes=max_bytes, workers=self.opts.workers
            ):
                yield result, None
            return
        with closing(ahead):
            for blob, done in ahead:
                if done is None:
                    for result in self.source.read_many([blob], max_bytes=max_bytes, workers=1):
                        yield result, None
                    continue
                self.source.offer(blob, done.data)  # as a read through the source keeps it
                yield ReadResult(blob, done.data), done

    def _partial(self, blob: BlobInfo, path: str, limit: int) -> None:
        """A file larger than the parse limit: scan all of it for secrets, as a stream."""
        if not self.handlers.only_scanned(blob):
            self._finding(
                F.TRUNCATED_READ, path, f"only the first {limit} bytes were parsed", Severity.INFO
            )
        if not self.opts.scan_secrets:
            return
        self.handlers.streamed.add(blob.key)
        try:
            with self.source.open_stream(blob.container, blob.name) as stream:
                found = scan_stream(stream)
        except AmlportError as exc:
            self._finding(F.MALFORMED_FILE, path, f"could not be scanned whole: {exc.message}")
            self.handlers.streamed.discard(blob.key)  # the handler scans what was read
            return
        self.handlers.report_secrets(path, found)

    def _dispatch(
        self, fn: Callable[[BlobInfo, bytes], None], blob: BlobInfo, data: bytes, path: str
    ) -> bool:
        """Hand one file to its handler; whether it gave no finding (the read cache keeps
        only such files)."""
        before = len(self.inv.findings)
        try:
            fn(blob, data)
        except ParseError as exc:
            self._finding(F.MALFORMED_FILE, path, exc.reason)
        except AmlportError as exc:
            self._finding(F.MALFORMED_FILE, path, exc.message)
        return len(self.inv.findings) == before

    def _identity_problem(self, path: str, message: str) -> None:
        self._finding(F.MALFORMED_FILE, path, message, Severity.LOW)

    def _finding(
        self, code: str, path: str, message: str, severity: Severity = Severity.MEDIUM
    ) -> None:
        # A blob's name may hold a credential (a SAS pasted into a path): never in a finding.
        self.inv.findings.append(Finding(code, redact(path), redact(message), severity))

    def _read_specs(self, folder: Path) -> None:
        """``--specs DIR``: v2 YAML kept in git, merged into the inventory as ``specs/<path>``."""
        if not folder.is_dir():
            raise UsageError(f"--specs {folder} is not a folder", hint="give a folder of v2 YAML")
        for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()):
            name = path.relative_to(folder).as_posix()
            handler = self._spec_handler(name)
            if handler is not None:
                blob = BlobInfo(container=SPECS_CONTAINER, name=name, size=path.stat().st_size)
                self._dispatch(handler, blob, path.read_bytes(), f"specs/{name}")

    def _spec_handler(self, name: str) -> Callable[[BlobInfo, bytes], None] | None:
        if name.rsplit("/", 1)[-1] == "MLmodel":
            return self.handlers.on_mlmodel
        if C.is_spec_candidate(name) or C.is_dockerfile(name):
            return self.handlers.on_spec_file
        return None


def _clip(data: bytes, limit: int) -> bytes:
    """The first ``limit`` bytes, not ending inside a UTF-8 character (no false non-UTF-8)."""
    cut = limit
    while cut > max(0, limit - 3) and data[cut] & 0xC0 == 0x80:
        cut -= 1
    return data[:cut]
