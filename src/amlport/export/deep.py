"""``verify --deep``: each v2 YAML of a snapshot loads with ``azure.ai.ml`` and each MLmodel
folder with ``mlflow``, from a verified extraction of the snapshot's files.

Every file is extracted hash-checked, so a document that does not load holds the bytes the
export stored: the spec is invalid as exported — in the source too when amlport rewrote
nothing in it (``rewritten`` False). That is a warning about the workspace's content (exit 1,
the failing fields named, the whole reason kept), not a damaged bundle: a damaged object
fails its hash check first (exit 4).

Memory (docs/design/0007, "verify --deep in bounded memory (D, session 9)"): importing the two
loaders takes 113 MB (azure-ai-ml) and 171 MB (mlflow) of a process, so each runs in a child
process of its own (``DeepCheck``), started as the check begins so that its imports overlap the
extraction, and both load their share at the same time. The snapshot is read as a stream: each
file is extracted as its entry arrives, and only the documents to load (a path and a loader
each) and the rewritten paths are kept. The children are workers of the export's pool
(``export/workers.py``: a forkserver, Ctrl-C left to this process, a watch that ends them
when it is gone). They get paths in the extraction folder, never a key: decryption stays
here, and the folder (0700, removed at the end) holds the plaintext as the in-process check's
did. A child that dies (killed, or crashed by a document) is an error naming the documents
it was loading; Ctrl-C stops the children at once.

A child that hangs (a pathological document, a library bug, a child stopped by a signal)
does not hang the command (docs/design/0007, "A loader that hangs (F, session 10)"): each
chunk of documents has a bound, ``(BOUND_FIXED + documents) * $AMLPORT_DEEP_TIMEOUT``
seconds (10 by default: 760 s for a chunk of 64) counted from when the chunk could start,
and an import ``BOUND_IMPORT *`` that (600 s); past it the children are ended and the error
names the library and the documents of the chunk, as for a child that dies (exit 2).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from amlport.bundle import Repository, files, keys
from amlport.errors import AmlportError, UsageError
from amlport.model.loadplan import SUMMARY
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, RewriteRecord
from amlport.secrets import redact

MAX_REASON = 4000  # characters of a loader's message kept (a schema error lists every field)
MAX_SENT = 1 << 20  # characters of a loader's message a child sends back
# azure-ai-ml's ValidationException lists each failing field as ``"path": "<field>"``.
_FIELD = re.compile(r'"path":\s*"([^"\n]{1,200})"')

AZURE = "azure-ai-ml"
MLFLOW = "mlflow"
# The v2 YAML loaders of azure.ai.ml, by asset kind.
AZURE_LOADERS = {
    "model": "load_model",
    "environment": "load_environment",
    "data": "load_data",
    "pipeline": "load_job",
    "component": "load_component",
}
MLMODEL = "mlmodel"
CHUNK = 64  # documents per task: a hand-over costs far less than 64 loads
SMALL = 1 << 20  # files of at most this many bytes are extracted in one read
# How long a child may take: seconds per document of a chunk ($AMLPORT_DEEP_TIMEOUT, a
# positive number; anything else is ignored, as $AMLPORT_PACKS is), a fixed part of a chunk
# (in documents: a slow start on a loaded machine) and an import's bound (in documents).
TIMEOUT_ENV = "AMLPORT_DEEP_TIMEOUT"
TIMEOUT_DEFAULT = 10.0
BOUND_FIXED = 12
BOUND_IMPORT = 60


@dataclass(frozen=True)
class DeepProblem:
    path: str
    reason: str  # the loader's whole message (redacted, bounded), not only its first line
    fields: tuple[str, ...] = ()  # the failing fields the loader names
    rewritten: bool = False  # amlport rewrote the file on export (else: as in the source)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "reason": self.reason,
            "fields": list(self.fields),
            "origin": "rewritten on export" if self.rewritten else "source",
        }

    def summary(self) -> str:
        """One line: the file, the failing fields, where the invalid spec comes from."""
        fields = f" (field {', '.join(self.fields)})" if self.fields else ""
        where = "as exported (amlport rewrote it)" if self.rewritten else "in the source workspace"
        return f"{self.path} does not load{fields}: invalid {where}"


@dataclass(frozen=True)
class _Document:
    path: str  # bundle path of the document: a v2 YAML or a model folder's MLmodel
    loader: str  # an AZURE_LOADERS value, or MLMODEL
    target: str  # what the loader is given: the file, or the MLmodel's folder

    @property
    def library(self) -> str:
        return MLFLOW if self.loader == MLMODEL else AZURE


def _need(module: str, package: str, what: str) -> None:
    """Is ``module`` installed? Asked without importing it (the children do): a submodule's
    spec imports its package, and ``mlflow``'s package alone is 150 MB of this process."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UsageError(
            f"verify --deep needs {package} to load {what}",
            hint="pip install 'amlport[azureml,mlflow]'",
        )


def deep_verify(repo: Repository, snapshot: Manifest | str) -> tuple[int, list[DeepProblem]]:
    """(number of documents checked, problems) of one snapshot (a manifest, or the id of one
    read as a stream). Reads only; writes to a temp folder."""
    with DeepCheck() as check:
        return check.check(repo, snapshot)


class DeepCheck:
    """The loader processes of ``verify --deep``, for the snapshots checked in one command."""

    def __init__(self) -> None:
        _need("azure.ai.ml", AZURE, "the v2 YAML")
        _need("mlflow", MLFLOW, "MLmodel folders")
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._ready: dict[str, Future[None]] = {}
        self._started = 0.0  # when the children began importing (time.monotonic())

    def __enter__(self) -> DeepCheck:
        self._started = time.monotonic()
        try:
            with _key_withheld():
                for library in (AZURE, MLFLOW):
                    pool = ProcessPoolExecutor(
                        1,
                        mp_context=_context(),
                        initializer=_start,
                        initargs=(os.getpid(),),
                    )
                    self._pools[library] = pool
                    # started now: the child imports its library while this process extracts
                    self._ready[library] = pool.submit(_import, library)
        except BaseException:
            self.stop(kill=True)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop(kill=exc is not None)

    def stop(self, *, kill: bool) -> None:
        """End the children: at once (``kill``: Ctrl-C, an error), or once they are idle."""
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            if kill:
                for process in list((pool._processes or {}).values()):
                    if process.is_alive():
                        process.kill()
            pool.shutdown(wait=True, cancel_futures=True)

    def check(self, repo: Repository, snapshot: Manifest | str) -> tuple[int, list[DeepProblem]]:
        """(number of documents checked, problems) of one snapshot, in the order the
        in-process check reported them: the v2 YAML in asset order, then the MLmodels."""
        if not self._pools:
            raise RuntimeError("DeepCheck used outside its with block")
        with tempfile.TemporaryDirectory(prefix="amlport-verify-") as tmp:
            root = Path(tmp)
            found = _Found(repo, root)
            if isinstance(snapshot, Manifest):
                for asset in snapshot.assets:
                    found.take("assets", asset)
                for entry in snapshot.files:
                    found.take("files", entry)
                for record in snapshot.rewrites:
                    found.take("rewrites", record)
            else:
                sid = repo.snapshots.resolve(snapshot)
                repo.snapshots.load_exact(sid, SUMMARY, on_entry=found.take)
            docs = found.documents()
            try:
                failed = self._load(root, docs)
            except BaseException:  # Ctrl-C: no child reads the folder as it is removed
                self.stop(kill=True)
                raise
        problems = [
            _problem(docs[i].path, text, root, docs[i].path in found.rewritten)
            for i, text in sorted(failed.items())
        ]
        return len(docs), problems

    def _load(self, root: Path, docs: list[_Document]) -> dict[int, str]:
        """Each document loaded by the child of its library: {index: the loader's message}
        for the documents that do not load."""
        per = _per_document()
        for library, ready in self._ready.items():  # a failed import: an error before any load
            self._result(ready, library, [], self._started + BOUND_IMPORT * per)
        self._ready = {}
        tasks: list[tuple[Future[list[tuple[int, str]]], list[_Document]]] = []
        for library, pool in self._pools.items():
            mine = [(i, d) for i, d in enumerate(docs) if d.library == library]
            for at in range(0, len(mine), CHUNK):
                part = mine[at : at + CHUNK]
                jobs = [(i, d.loader, str(root / d.target)) for i, d in part]
                sent = [d for _, d in part]
                tasks.append((self._submit(pool, library, jobs, sent), sent))
        # A chunk starts once its child's previous task is done, at the latest when this
        # process saw that done: its bound counts from then (never too early).
        seen = dict.fromkeys(self._pools, time.monotonic())
        failed: dict[int, str] = {}
        for future, sent in tasks:
            library = sent[0].library
            deadline = seen[library] + (BOUND_FIXED + len(sent)) * per
            failed.update(self._result(future, library, sent, deadline))
            seen[library] = time.monotonic()
        return failed

    @staticmethod
    def _submit(
        pool: ProcessPoolExecutor,
        library: str,
        jobs: list[tuple[int, str, str]],
        chunk: list[_Document],
    ) -> Future[list[tuple[int, str]]]:
        try:
            return pool.submit(load_chunk, jobs)
        except BrokenProcessPool:
            raise _ended(library, chunk) from None

    @staticmethod
    def _result(future: Future[Any], library: str, chunk: list[_Document], deadline: float) -> Any:
        """The task's result, by ``deadline`` (time.monotonic()); past it, an error naming
        the library and the chunk's documents (the caller ends the children)."""
        try:
            return future.result(timeout=max(deadline - time.monotonic(), 0.0))
        except BrokenProcessPool:
            raise _ended(library, chunk) from None
        except TimeoutError:
            raise _hung(library, chunk) from None
        except Exception as exc:  # the child's import of its library failed
            raise AmlportError(
                f"verify --deep: a loader library could not be imported: {redact(str(exc))}",
                hint="pip install 'amlport[azureml,mlflow]'",
            ) from None


@contextlib.contextmanager
def _key_withheld() -> Iterator[None]:
    """The repository's passphrase (``$AMLPORT_REPO_KEY``) out of the environment while the
    children (and the fork server they come from, when this starts it) are made: a child
    never holds the key, not even in an environment a library could log. The repository
    was opened with it before."""
    saved = os.environ.pop(keys.ENV, None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ[keys.ENV] = saved


def _context() -> Any:
    """The export workers' start method (a forkserver: never a fork of this process, with
    its threads and memory); a fresh interpreter where there is none."""
    from amlport.export import workers

    if workers.START_METHOD in multiprocessing.get_all_start_methods():
        return workers.context()
    return multiprocessing.get_context("spawn")


def _documents(chunk: list[_Document], lead: str, none: str) -> str:
    """The chunk's first three documents for an error (``none`` for an empty chunk)."""
    if not chunk:
        return none
    more = f" and {len(chunk) - 3} more" if len(chunk) > 3 else ""
    return f"{lead}{', '.join(d.path for d in chunk[:3])}{more}"


def _ended(library: str, chunk: list[_Document]) -> AmlportError:
    return AmlportError(
        f"verify --deep: the process loading documents with {library} ended unexpectedly"
        f"{_documents(chunk, ' while loading one of: ', '')}"
        " (killed, out of memory, or crashed by a document)",
        hint="run it again; if it ends the same way, check those documents one by one",
    )


def _hung(library: str, chunk: list[_Document]) -> AmlportError:
    return AmlportError(
        f"verify --deep: the process loading documents with {library} gave no result in time"
        f"{_documents(chunk, ' loading one of: ', ' importing it')}"
        " (a document it hangs on, or a stopped process); it was ended",
        hint=f"check those documents one by one; on a slow machine raise ${TIMEOUT_ENV} "
        f"(seconds per document, {TIMEOUT_DEFAULT:g} by default)",
    )


def _per_document() -> float:
    """Seconds a document may take (``$AMLPORT_DEEP_TIMEOUT`` when a positive number)."""
    try:
        value = float(os.environ.get(TIMEOUT_ENV, ""))
    except ValueError:
        return TIMEOUT_DEFAULT
    return value if 0 < value < 1e6 else TIMEOUT_DEFAULT


class _Found:
    """What a streamed read of a snapshot shows, kept small: each file extracted as its
    entry arrives, the documents to load, the rewritten paths."""

    def __init__(self, repo: Repository, root: Path) -> None:
        self.repo = repo
        self.root = root
        self.yaml: list[_Document] = []
        self.mlmodels: list[_Document] = []
        self.rewritten: set[str] = set()

    def take(self, key: str, entry: Any) -> None:
        if key == "assets":
            self._asset(entry)
        elif key == "files":
            self._extract(entry)
        elif key == "rewrites":
            record: RewriteRecord = entry
            self.rewritten.add(record.file)

    def _asset(self, asset: AssetEntry) -> None:
        loader = AZURE_LOADERS.get(asset.kind)
        if asset.v2_yaml and loader is not None:
            self.yaml.append(_Document(asset.v2_yaml, loader, asset.v2_yaml))
        # MLflow model assets only: a broken MLmodel inside a run record is evidence, not a
        # model.
        folder = asset.attrs.get("folder")
        if asset.kind == "model" and asset.attrs.get("format") == "mlflow" and folder:
            self.mlmodels.append(_Document(f"{folder}/MLmodel", MLMODEL, folder))

    def _extract(self, entry: FileEntry) -> None:
        """The file's verified bytes below the root (a damaged object raises
        IntegrityError); a temporary folder, so not made durable."""
        target = files.local_path(self.root, entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        objects = self.repo.objects
        with open(target, "wb") as out:
            if entry.size <= SMALL:
                out.write(objects.get_bytes(entry.digest, entry.size))
            else:
                with objects.open(entry.digest, entry.size) as src:
                    shutil.copyfileobj(src, out)

    def documents(self) -> list[_Document]:
        return [*self.yaml, *self.mlmodels]


def _problem(path: str, text: str, root: Path, rewritten: bool) -> DeepProblem:
    """A loader's failure, named by bundle path (the temporary extraction folder taken out of
    its message), redacted and bounded."""
    text = redact(text.replace(f"{root}{os.sep}", "")).strip()
    reason = text if len(text) <= MAX_REASON else text[:MAX_REASON] + " …"
    fields = tuple(dict.fromkeys(m[1] for m in _FIELD.finditer(text)))
    return DeepProblem(path, reason, fields, rewritten)


# --- in a child --------------------------------------------------------------------------------

_LOADERS: dict[str, Callable[[str], Any]] = {}


def _start(main: int) -> None:
    """A child's start, as an export worker's: Ctrl-C is the main process's (it stops the
    children), and the child ends when the main process is gone."""
    from amlport.export.workers import become_child

    os.environ.pop(keys.ENV, None)  # a fork server started before the check may hold it
    become_child(main)


def _import(library: str) -> None:
    """Import one loader library (this child loads only its documents)."""
    if library == MLFLOW:
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow.models import Model

        _LOADERS[MLMODEL] = Model.load
        return
    from azure.ai import ml

    # azure-ai-ml logs "Class X: This is an experimental class, …" for some classes its
    # loaders build; with no logging set up Python prints that on stderr, once per class. The
    # check loads the documents, it does not use those classes: the lines are noise.
    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
    for name in AZURE_LOADERS.values():
        _LOADERS[name] = getattr(ml, name)


def load_chunk(jobs: list[tuple[int, str, str]]) -> list[tuple[int, str]]:
    """Load each (index, loader, path); (index, the loader's message) of those that fail."""
    failed: list[tuple[int, str]] = []
    for index, loader, path in jobs:
        if loader not in _LOADERS:
            _import(MLFLOW if loader == MLMODEL else AZURE)
        try:
            _LOADERS[loader](path)
        except (Exception, SystemExit) as exc:  # a loader's exit is its document's failure
            failed.append((index, f"{type(exc).__name__}: {exc}"[:MAX_SENT]))
    return failed
