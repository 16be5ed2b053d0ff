"""The export plan: which source blobs and generated files go where in the repository.

Exporters only *plan* files (``add_blob``/``add_folder``/``add_generated`` do no I/O); the
transfer (``export/transfer.py``) does all the reading and writing afterwards, so
``--dry-run`` is exact and cheap.
"""

from __future__ import annotations

import weakref
import zlib
from collections.abc import Iterator, MutableMapping
from pathlib import Path

from amlport import __version__
from amlport.bundle.index import SourceIndex
from amlport.errors import AmlportError
from amlport.rewriters.files import needs_rewrite
from amlport.secrets import describe, find_secrets, has_secret, may_hold_secret
from amlport.storage.base import BlobInfo, Source
from amlport.storage.reuse import ReusingSource
from amlport.walk.handlers import SPECS_CONTAINER
from amlport.walk.listing import Listing


class UnstorableName(AmlportError):
    """A blob's name cannot be carried into a manifest: the blob is not exported."""


class SecretInName(UnstorableName):
    """A blob's name holds a credential: the blob is not exported."""


class BundlePlan:
    """The planned files: ``blobs`` (bundle path → listing facts) and ``generated`` (bundle
    path → bytes). Planning does no I/O besides listing ``--specs``."""

    def __init__(self, source: Source, listing: Listing, *, specs: Path | None = None) -> None:
        self.source = source
        self.listing = listing
        self.specs = specs  # --specs DIR: files of the pseudo-container "specs"
        if specs is not None:
            for path in sorted(p for p in specs.rglob("*") if p.is_file() and not p.is_symlink()):
                rel = path.relative_to(specs).as_posix()
                listing.add(BlobInfo(SPECS_CONTAINER, rel, path.stat().st_size))
            listing.freeze()
        self.blobs: dict[str, BlobInfo] = {}
        self.generated: PackedDocuments = PackedDocuments()
        self.warnings: list[str] = []
        self._shared: weakref.ref[SharedPaths] | None = None  # ``planned_paths``, while held

    def bundle_path(self, container: str, name: str) -> str:
        if container == SPECS_CONTAINER:
            return f"specs/{name}"
        datastore = self.source.descriptor.datastore_of(container) or container
        return f"files/{datastore}/{name}"

    def path_prefix(self, container: str) -> str:
        """A blob's bundle path less its name (``bundle_path(container, "")``); of an index
        space of rewritten forms, its container's. The source index keys its rows by this
        prefix + the blob name, so that a row holds its file's path string, not a name of
        its own (``LoadPlan.prefix``: a string per blob, ~15 MB at 100k)."""
        if container.startswith(REWRITE_SPACE):
            container = container.rsplit("/", 1)[-1]
        return self.bundle_path(container, "")

    def add_blob(self, container: str, name: str) -> str:
        """Plan one blob; its bundle path. A name a manifest cannot carry is refused
        (``UnstorableName``): one holding a credential (``SecretInName``: the name would carry
        it into the manifest), or a local file's name that is not Unicode."""
        _refuse_unstorable_name(container, name)
        path = self.bundle_path(container, name)
        if self._planned(path, container, name) is None:
            blob = self.listing.get(container, name)
            if blob is None:
                raise AmlportError(f"{container}/{name} is not in the source listing")
            self.blobs[path] = blob
        return path

    def is_planned(self, container: str, name: str) -> bool:
        return self._planned(self.bundle_path(container, name), container, name) is not None

    def _planned(self, path: str, container: str, name: str) -> BlobInfo | None:
        """This blob, if it is planned at ``path``. (No (container, name) → path map: the
        path is a function of the two, and a map of 100k+ key tuples cost 10 MB while
        planning.)"""
        planned = self.blobs.get(path)
        if planned is None or planned.name != name or planned.container != container:
            return None
        return planned

    def add_folder(self, container: str, prefix: str) -> list[str]:
        """Plan every blob under ``prefix``, except those whose name holds a credential (each
        is a warning: the rest of the folder is exported)."""
        blobs = self.listing.under(container, prefix)
        found = (self.add_blob_or_warn(container, b.name) for b in blobs)
        return [path for path in found if path is not None]

    def add_blob_or_warn(self, container: str, name: str) -> str | None:
        """``add_blob``, but a name a manifest cannot carry is a warning (None)."""
        try:
            return self.add_blob(container, name)
        except UnstorableName as exc:
            self.warnings.append(f"not exported: {exc.message}")
            return None

    def add_generated(self, bundle_path: str, data: bytes) -> str:
        if has_secret(data.decode("utf-8", "replace")):  # generated from names and paths only
            raise AmlportError(f"refusing to write {bundle_path}: it would contain a secret")
        self.generated[bundle_path] = data
        return bundle_path

    def release_listing(self) -> None:
        """Planning is over: drop the walk's listing (the planned blobs keep their facts)."""
        self.listing = Listing()

    def drop_unchanged_reads(self, index: SourceIndex) -> None:
        """The walk's reads of blobs the index already holds will not be read again: let
        them go before the transfer (an unchanged re-backup would otherwise keep every
        read until it ends). A row whose object is gone only costs a fresh read."""
        if not isinstance(self.source, ReusingSource):
            return
        for blob in self.blobs.values():
            space = rewrite_space(blob.container) if rewrites(blob) else blob.container
            if index.knows(space, blob.name, blob.etag, blob.size, blob.content_md5):
                self.source.discard(blob.container, blob.name)

    def listed(self, container: str, name: str) -> tuple[str | None, ...]:
        """The planned blob's name, etag and MD5 for an index row of (container, name), or
        of its rewritten form, and its bundle path while ``planned_paths`` is held (the
        row's key with ``path_prefix``): the index shares these strings instead of holding
        copies."""
        if container.startswith(REWRITE_SPACE):
            container = container.rsplit("/", 1)[-1]
        path = self.bundle_path(container, name)
        blob = self._planned(path, container, name)
        if blob is None:
            return ()
        shared = self._shared() if self._shared is not None else None
        held = shared.get(path) if shared is not None else None
        return (held, blob.name, blob.etag, blob.content_md5)

    def planned_paths(self) -> dict[str, str]:
        """Every planned bundle path, as ``{path: path}`` (to share equal strings); while the
        caller holds it, ``listed`` offers these path objects too."""
        shared = SharedPaths()
        shared.update((p, p) for p in (*self.blobs, *self.generated))
        self._shared = weakref.ref(shared)
        return shared

    @property
    def planned_bytes(self) -> int:
        return sum(b.size for b in self.blobs.values()) + self.generated.total_size


class SharedPaths(dict[str, str]):
    """``{path: path}`` of the planned files (a dict that a weak reference can name)."""


class PackedDocuments(MutableMapping[str, bytes]):
    """The generated documents (bundle path → bytes), held zlib-compressed (level 1) while
    they wait for the transfer: pipeline YAML, designer Markdown and run records are all
    held at the export's high-water mark, the end of planning, and shrink 4-8 x (~25 MB at
    100k blobs). Reading one gives its bytes back; the sizes are kept for the plan's total."""

    def __init__(self) -> None:
        self._packed: dict[str, tuple[int, bytes]] = {}

    def __getitem__(self, path: str) -> bytes:
        return zlib.decompress(self._packed[path][1])

    def __setitem__(self, path: str, data: bytes) -> None:
        self._packed[path] = (len(data), zlib.compress(data, 1))

    def __delitem__(self, path: str) -> None:
        del self._packed[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._packed)

    def __len__(self) -> int:
        return len(self._packed)

    def __contains__(self, path: object) -> bool:
        return path in self._packed

    @property
    def total_size(self) -> int:
        """Bytes of all the documents (uncompressed)."""
        return sum(size for size, _ in self._packed.values())


def _refuse_unstorable_name(container: str, name: str) -> None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        # A local file named with bytes that are not UTF-8 (decoded by the file system
        # layer with surrogate escapes): no blob can have it, no manifest can hold it.
        shown = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        raise UnstorableName(
            f"{container}/{shown}: the file's name is not valid UTF-8, so it cannot be a "
            "blob name nor be recorded in a snapshot",
            hint="rename the file (blob names are Unicode text)",
        ) from None
    if may_hold_secret(name) and (found := find_secrets(name)):
        raise SecretInName(  # the message is redacted by AmlportError
            f"{container}/{name}: the blob's name holds what looks like a secret "
            f"({describe(found)})",
            hint="rotate the credential and rename the blob",
        )


def rewrites(blob: BlobInfo) -> bool:
    """Is this blob stored rewritten (it may bind to storage, or is a spec file)?"""
    return blob.container == SPECS_CONTAINER or needs_rewrite(blob.name, blob.size)


REWRITE_SPACE = "rewritten/"


def rewrite_space(container: str) -> str:
    """The index's namespace for a container's rewritten forms (per amlport version: a
    new version may rewrite differently)."""
    return f"{REWRITE_SPACE}{__version__}/{container}"
