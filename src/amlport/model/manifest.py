"""The bundle manifest: what one snapshot holds. Pure dataclasses and JSON, stdlib only.

A manifest is stored as canonical JSON (sorted keys, UTF-8, 2-space indent) in
``snapshots/<sha256 of those bytes>.json``. The snapshot id is therefore not inside the bytes
it names: ``to_json_bytes`` leaves ``snapshot_id`` out and the reader puts it back from the
file name after checking the hash. See docs/bundle-format.md for the full specification.

Versioning: ``schema`` is ``amlport.bundle/<major>[.<minor>]``. A reader checks the major
first and refuses one it does not know; fields it does not know from a newer minor of the
same major are accepted (top-level ones are kept in ``extra`` so they survive a round trip).

This module holds the value types; the streaming reader and writer of the canonical JSON
are ``manifest_codec.py``, and what a read keeps and shares is a ``LoadPlan``
(``loadplan.py``).
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import io
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from amlport import __version__
from amlport.errors import IntegrityError

SCHEMA_FAMILY = "amlport.bundle"
SCHEMA_MAJOR = 1
SCHEMA_MINOR = 0
SCHEMA = f"{SCHEMA_FAMILY}/{SCHEMA_MAJOR}"
SUPPORTED_MAJORS = (1,)
ASSET_KINDS = ("model", "environment", "pipeline", "component", "run", "data", "spec")
DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
_SCHEMA_RE = re.compile(r"^amlport\.bundle/(\d+)(?:\.(\d+))?\Z")
_HINT = "the manifest is damaged or was edited by hand; run `amlport verify` on the repository"

T = TypeVar("T")

if TYPE_CHECKING:
    from amlport.model.loadplan import LoadPlan


def _fail(where: str, what: str) -> IntegrityError:
    return IntegrityError(f"{where}: {what}", hint=_HINT)


# --- small pure helpers -----------------------------------------------------------------


def format_time(when: datetime) -> str:
    """ISO-8601 UTC with microseconds and a ``Z`` (sorts as text in time order)."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an ISO-8601 time with an offset (``Z`` accepted on Python 3.10 too)."""
    value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    if value.tzinfo is None:
        raise ValueError("no UTC offset")
    return value.astimezone(timezone.utc)


def parse_schema(schema: str, *, where: str = "manifest") -> tuple[int, int]:
    """(major, minor) of a schema string; IntegrityError for a foreign or unknown major."""
    supported = ", ".join(f"{SCHEMA_FAMILY}/{m}.x" for m in SUPPORTED_MAJORS)
    match = _SCHEMA_RE.match(schema)
    if not match:
        raise IntegrityError(f"{where}: unknown schema {schema!r}; supported: {supported}")
    major, minor = int(match.group(1)), int(match.group(2) or 0)
    if major not in SUPPORTED_MAJORS:
        raise IntegrityError(
            f"{where}: schema {schema!r} is newer than this amlport ({__version__}) can read; "
            f"supported: {supported}",
            hint="upgrade amlport to read this snapshot",
        )
    return major, minor


def check_bundle_path(path: str, *, where: str = "manifest") -> str:
    """A bundle path is relative POSIX: no leading ``/``, no ``.``/``..`` segments, no NUL.
    A ``\\`` is a character like any other, and so is an empty segment (``a//b``): both are
    legal in a blob name, and a backup must hold every blob. Whoever turns a bundle path
    into a local path refuses what the file system cannot hold (``bundle.files.local_path``,
    ``storage.target.LocalTarget``)."""
    bad = (
        not path
        or path.startswith("/")
        or "\x00" in path
        or any(seg in (".", "..") for seg in path.split("/"))
    )
    if bad:
        raise _fail(where, f"{path!r} is not a safe bundle path (relative, no '.' or '..' segment)")
    return path


# Asset attributes that name a place in the bundle: attribute -> what makes it a bundle path.
PATH_ATTRS = {"folder": "", "location": "files/"}


def check_path_attrs(attrs: Mapping[str, Any], where: str) -> None:
    """Every asset attribute that names a place in the bundle (``PATH_ATTRS``) is a string
    and a safe bundle path: an importer or ``verify --deep`` joins it to a folder."""
    for key, prefix in PATH_ATTRS.items():
        value = attrs.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise _fail(where, f"attribute '{key}' must be str, got {type(value).__name__}")
        check_bundle_path(prefix + value.rstrip("/"), where=f"{where}, attribute '{key}'")


def check_references(
    files: Iterable[FileEntry], assets: Iterable[AssetEntry] | None, *, where: str
) -> None:
    """One entry per bundle path, and every path an asset names (files, v2 YAML, model
    folder) in ``files``. ``assets`` None: only the first. One sorted list of the paths
    (a manifest stores them sorted, so sorting is a pass), no set of them."""
    paths = sorted(f.path for f in files)
    for before, after in itertools.pairwise(paths):
        if before == after:
            raise _fail(where, f"file {after!r} is listed more than once (one entry per path)")
    for asset in assets or ():
        for ref in [*asset.files, *([asset.v2_yaml] if asset.v2_yaml else [])]:
            if not holds_path(paths, ref):
                raise _fail(where, f"asset {asset.id!r} refers to {ref!r}, not in files")
        folder = asset.attrs.get("folder")
        if isinstance(folder, str) and folder and not holds_path(paths, folder, under=True):
            raise _fail(where, f"asset {asset.id!r} names folder {folder!r}, which holds no file")


def holds_path(paths: list[str], path: str, *, under: bool = False) -> bool:
    """Is ``path`` in the sorted ``paths`` (``under``: or a file below it)? What
    ``check_references`` asks of every path an asset names."""
    if under:
        path = path.rstrip("/")
    i = bisect.bisect_left(paths, path)
    if i < len(paths) and paths[i] == path:
        return True
    if not under:
        return False
    i = bisect.bisect_left(paths, path + "/")
    return i < len(paths) and paths[i].startswith(path + "/")


def check_digest(digest: str, *, where: str = "manifest") -> str:
    if not DIGEST_RE.match(digest):
        raise _fail(where, f"{digest!r} is not a digest of the form sha256:<64 hex>")
    return digest


def source_key(source: Mapping[str, Any]) -> str:
    """A file-name-safe key for one source: the account plus a hash of where its data lives.

    Snapshots of the same key form one retention group and share one incremental index.
    """
    identity = {
        "account": source.get("account"),
        "endpoint": source.get("endpoint"),
        "containers": source.get("containers"),
    }
    blob = json.dumps(identity, sort_keys=True, default=str).encode()
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", str(source.get("account") or "source"))[:40]
    return f"{slug}-{hashlib.sha256(blob).hexdigest()[:12]}"


def check_asset_kind(kind: str, where: str) -> None:
    if kind not in ASSET_KINDS:
        raise _fail(where, f"unknown asset kind {kind!r}; known: {', '.join(ASSET_KINDS)}")


# --- typed field access for from_dict ---------------------------------------------------


class _Fields:
    """Read typed fields out of a JSON object, naming the field in every error."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise _fail(where, f"expected an object, got {type(data).__name__}")
        self.data: dict[str, Any] = data
        self.where = where

    def _check(self, key: str, value: Any, typ: type | tuple[type, ...]) -> Any:
        # bool is an int in Python; a JSON true where a size belongs is still wrong.
        wrong_bool = isinstance(value, bool) and typ is int
        if wrong_bool or not isinstance(value, typ):
            name = typ.__name__ if isinstance(typ, type) else "/".join(t.__name__ for t in typ)
            raise _fail(self.where, f"field '{key}' must be {name}, got {type(value).__name__}")
        return value

    def req(self, key: str, typ: type | tuple[type, ...]) -> Any:
        if key not in self.data:
            raise _fail(self.where, f"required field '{key}' is missing")
        return self._check(key, self.data[key], typ)

    def opt(self, key: str, typ: type | tuple[type, ...], default: Any) -> Any:
        value = self.data.get(key)
        return default if value is None else self._check(key, value, typ)

    def strs(self, key: str) -> list[str]:
        items = self.opt(key, list, [])
        for i, item in enumerate(items):
            self._check(f"{key}[{i}]", item, str)
        return list(items)

    def objects(self, key: str, parse: Callable[[Any, str], T], *, required: bool) -> list[T]:
        items = self.req(key, list) if required else self.opt(key, list, [])
        return [parse(item, f"{self.where}.{key}[{i}]") for i, item in enumerate(items)]


# --- entries ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Origin:
    """Where a file of the default layout came from, less its blob name: a bundle path
    ``files/<datastore>/<name>`` names the blob ``name`` of ``container``. One object per
    (datastore, container), shared by every entry of it; the name is sliced from the path."""

    datastore: str
    container: str
    skip: int  # len("files/<datastore>/"): where the blob name starts in the bundle path


@functools.lru_cache(maxsize=1024)
def _origin(datastore: str, container: str) -> _Origin:
    return _Origin(datastore, container, len(f"files/{datastore}/"))


_ORIGIN_KEYS = frozenset(("datastore", "container", "path"))


class FileEntry:
    """One file of the snapshot: where it sits in the bundle and which object holds it.

    ``original`` is ``{"datastore", "container", "path"}`` in the source (or another small
    mapping). A 100k-file snapshot holds 100k of them, so the common form — the bundle path
    is ``files/<datastore>/<path>`` — is kept as a shared ``_Origin`` and rebuilt on access
    (docs/design/0003-scale.md); any other mapping is kept as given.
    """

    __slots__ = ("_origin", "digest", "original_digest", "path", "rewritten", "size")

    def __init__(
        self,
        path: str,
        digest: str,
        size: int,
        original: dict[str, Any] | None = None,
        rewritten: bool = False,
        original_digest: str | None = None,  # digest of the source bytes before rewriting
    ) -> None:
        self.path = path
        self.digest = digest
        self.size = size
        self.rewritten = rewritten
        self.original_digest = original_digest
        self.original = original

    @property
    def original(self) -> dict[str, Any] | None:
        origin = self._origin
        if isinstance(origin, _Origin):
            return {
                "datastore": origin.datastore,
                "container": origin.container,
                "path": self.path[origin.skip :],
            }
        return origin

    @original.setter
    def original(self, value: dict[str, Any] | None) -> None:
        self._origin: _Origin | dict[str, Any] | None = value
        if value is None or value.keys() != _ORIGIN_KEYS:
            return
        datastore, container, name = value["datastore"], value["container"], value["path"]
        if (
            isinstance(datastore, str)
            and isinstance(container, str)
            and isinstance(name, str)
            and self.path == f"files/{datastore}/{name}"
        ):
            self._origin = _origin(datastore, container)

    @property
    def compact_origin(self) -> bool:
        """Is ``original`` kept as a shared ``_Origin`` (nothing of it to intern)?"""
        return isinstance(self._origin, _Origin)

    def _key(self) -> tuple[Any, ...]:
        # Whether the origin is compact depends only on (path, original): equal entries
        # hold equal forms.
        return (
            self.path,
            self.digest,
            self.size,
            self._origin,
            self.rewritten,
            self.original_digest,
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FileEntry):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaces

    def __repr__(self) -> str:
        return (
            f"FileEntry(path={self.path!r}, digest={self.digest!r}, size={self.size!r}, "
            f"original={self.original!r}, rewritten={self.rewritten!r}, "
            f"original_digest={self.original_digest!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "digest": self.digest,
            "size": self.size,
            "original": dict(self.original) if self.original is not None else None,
            "rewritten": self.rewritten,
            "original_digest": self.original_digest,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> FileEntry:
        # The common entry (exact types, a relative path no segment of which starts with
        # ``.``, no NUL) is read without ``_Fields``: what it checks holds by those facts, and the
        # bytes of every digest are checked as below. Anything else takes the checks that
        # name what is wrong. (A snapshot's write parses each entry back: ~3 % of a first
        # backup's main process at 100k files, docs/design/0007, A, session 9.)
        if type(data) is dict:
            path, size = data.get("path"), data.get("size")
            digest, original = data.get("digest"), data.get("original")
            rewritten, original_digest = data.get("rewritten"), data.get("original_digest")
            if (
                type(path) is str
                and path
                and path[0] != "/"
                and "/." not in "/" + path
                and "\x00" not in path
                and type(digest) is str
                and DIGEST_RE.match(digest)
                and type(size) is int
                and size >= 0
                and (original is None or type(original) is dict)
                and (rewritten is None or type(rewritten) is bool)
                and (
                    original_digest is None
                    or (type(original_digest) is str and DIGEST_RE.match(original_digest))
                )
            ):
                return cls(path, digest, size, original, bool(rewritten), original_digest)
        return cls.checked(data, where)

    @classmethod
    def checked(cls, data: Any, where: str) -> FileEntry:
        """``from_dict`` by the checks that name what is wrong (every entry that is not the
        common one; and the reference its fast path is tested against)."""
        f = _Fields(data, where)
        size = f.req("size", int)
        if size < 0:
            raise _fail(where, f"field 'size' must not be negative, got {size}")
        original_digest = f.opt("original_digest", str, None)
        return cls(
            path=check_bundle_path(f.req("path", str), where=where),
            digest=check_digest(f.req("digest", str), where=where),
            size=size,
            original=f.opt("original", dict, None),
            rewritten=f.opt("rewritten", bool, False),
            original_digest=(
                check_digest(original_digest, where=where) if original_digest else None
            ),
        )


@dataclass(slots=True)
class AssetEntry:
    """One exported asset and the bundle files that make it up."""

    kind: str
    name: str
    id: str
    files: list[str] = field(default_factory=list)
    v2_yaml: str | None = None
    portable: bool = True
    requires: list[str] = field(default_factory=list)
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "id": self.id,
            "files": list(self.files),
            "v2_yaml": self.v2_yaml,
            "portable": self.portable,
            "requires": list(self.requires),
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_dict(cls, data: Any, where: str, *, known_kinds_only: bool = True) -> AssetEntry:
        f = _Fields(data, where)
        kind = f.req("kind", str)
        if known_kinds_only:
            check_asset_kind(kind, where)
        v2_yaml = f.opt("v2_yaml", str, None)
        attrs = f.opt("attrs", dict, {})
        check_path_attrs(attrs, where)
        return cls(
            kind=kind,
            name=f.req("name", str),
            id=f.req("id", str),
            files=[check_bundle_path(p, where=where) for p in f.strs("files")],
            v2_yaml=check_bundle_path(v2_yaml, where=where) if v2_yaml is not None else None,
            portable=f.opt("portable", bool, True),
            requires=f.strs("requires"),
            attrs=attrs,
        )


@dataclass(slots=True)
class RewriteRecord:
    """One location re-bound on export (``location``: JSON pointer, YAML path or ``line N``)."""

    file: str
    location: str
    before: str
    after: str
    rule: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "location": self.location,
            "before": self.before,
            "after": self.after,
            "rule": self.rule,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RewriteRecord:
        f = _Fields(data, where)
        record = cls(**{k: f.req(k, str) for k in ("file", "location", "before", "after", "rule")})
        check_bundle_path(record.file, where=where)
        return record


@dataclass(slots=True)
class RedactionRecord:
    """Secrets removed from one file: a kind and a count, never a value."""

    file: str
    kind: str
    count: int

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "kind": self.kind, "count": self.count}

    @classmethod
    def from_dict(cls, data: Any, where: str) -> RedactionRecord:
        f = _Fields(data, where)
        file = check_bundle_path(f.req("file", str), where=where)
        return cls(file=file, kind=f.req("kind", str), count=f.req("count", int))


# --- the manifest -----------------------------------------------------------------------

LISTS = ("assets", "files", "rewrites", "redactions")  # the long lists, written entry by entry
KEEPABLE = (*LISTS, "lineage")  # what ``Manifest.read`` may leave out (``keep``)
_KNOWN = (
    "schema", "tool_version", "created", "snapshot_id", "parent", "tags", "source", "selection",
    "assets", "files", "lineage", "rewrites", "redactions", "warnings", "stats", "provenance",
)  # fmt: skip


@dataclass(kw_only=True)
class Manifest:
    """Everything one snapshot holds. ``Repository.write_snapshot`` sets id and time."""

    source: dict[str, Any]  # WorkspaceDescriptor.to_dict() shape
    schema: str = SCHEMA
    tool_version: str = __version__
    created: str = ""  # ISO-8601 UTC; set on write when empty
    snapshot_id: str | None = None  # sha256 hex of the stored bytes; set on write / load
    parent: str | None = None  # previous snapshot of the same source
    tags: list[str] = field(default_factory=list)
    selection: dict[str, Any] = field(default_factory=dict)
    assets: list[AssetEntry] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    lineage: dict[str, Any] = field(default_factory=dict)  # node-link JSON
    rewrites: list[RewriteRecord] = field(default_factory=list)
    redactions: list[RedactionRecord] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # Earlier hops of what this snapshot holds (dev → qa → prod), from the source's import
    # records: [{"account", "workspace", "snapshot", "time"}]. Written only when not empty.
    provenance: list[dict[str, Any]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # unknown fields of a newer minor

    @property
    def source_key(self) -> str:
        return source_key(self.source)

    @property
    def created_at(self) -> datetime:
        return parse_time(self.created)

    def digests(self) -> set[str]:
        """Every object this snapshot references."""
        return {f.digest for f in self.files}

    def file(self, path: str) -> FileEntry | None:
        """The (first) entry at ``path``. By an index of the paths, built at the first call
        and again when ``files`` is another list or of another length: an import asks once
        per file, and a scan per call made a 125k-file restore quadratic (it never finished
        planning). A path the index misses is still looked for in the list."""
        files = self.files
        index = self.__dict__.get("_by_path")
        if index is None or index[0] is not files or index[1] != len(files):
            by_path: dict[str, FileEntry] = {}
            for f in files:
                by_path.setdefault(f.path, f)
            index = self.__dict__["_by_path"] = (files, len(files), by_path)
        entry = index[2].get(path)
        if entry is not None and entry.path == path:
            return entry
        return next((f for f in files if f.path == path), None)

    def header(self) -> dict[str, Any]:
        """Every top-level field but the four long lists (``LISTS``)."""
        out: dict[str, Any] = {k: v for k, v in self.extra.items() if k not in LISTS}
        out.update(
            schema=self.schema,
            tool_version=self.tool_version,
            created=self.created,
            parent=self.parent,
            tags=list(self.tags),
            source=dict(self.source),
            selection=dict(self.selection),
            lineage=dict(self.lineage),
            warnings=list(self.warnings),
            stats=dict(self.stats),
        )
        if self.provenance:
            out["provenance"] = [dict(h) for h in self.provenance]
        if self.snapshot_id is not None:
            out["snapshot_id"] = self.snapshot_id
        return out

    def items(self, key: str) -> Iterator[dict[str, Any]]:
        """The entries of one of the long lists, in their stored order, one dict at a time."""
        if key == "assets":
            yield from (a.to_dict() for a in sorted(self.assets, key=lambda a: (a.kind, a.id)))
        elif key == "files":
            yield from (f.to_dict() for f in sorted(self.files, key=lambda f: f.path))
        elif key == "rewrites":
            yield from (r.to_dict() for r in sorted(self.rewrites, key=lambda r: r.file))
        elif key == "redactions":
            yield from (
                r.to_dict() for r in sorted(self.redactions, key=lambda r: (r.file, r.kind))
            )
        else:
            raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        """Deterministic: files, assets and redactions sorted; rewrites grouped by file."""
        out = self.header()
        for key in LISTS:
            out[key] = list(self.items(key))
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "manifest") -> Manifest:
        manifest = cls._build(_Fields(data, where), {})
        check_references(manifest.files, manifest.assets, where=where)
        return manifest

    @classmethod
    def _build(cls, f: _Fields, parsed: dict[str, list[Any]]) -> Manifest:
        """From the top-level fields; ``parsed``: long lists already read entry by entry
        (``read``), the others are read from ``f`` here."""
        where = f.where
        _, minor = parse_schema(f.req("schema", str), where=where)  # the major comes first
        created = f.req("created", str)
        try:
            parse_time(created)
        except ValueError:
            raise _fail(where, f"field 'created' is not an ISO-8601 time: {created!r}") from None
        newer = minor > SCHEMA_MINOR  # a newer minor may add asset kinds

        def entries(key: str, *, required: bool) -> list[Any]:
            if key in parsed:  # read and checked entry by entry (``read``)
                return parsed[key]
            return f.objects(key, entry_parser(key, newer=newer), required=required)

        return cls(
            schema=f.data["schema"],
            tool_version=f.req("tool_version", str),
            created=created,
            snapshot_id=f.opt("snapshot_id", str, None),
            parent=f.opt("parent", str, None),
            tags=f.strs("tags"),
            source=f.req("source", dict),
            selection=f.opt("selection", dict, {}),
            assets=entries("assets", required=True),
            files=entries("files", required=True),
            lineage=f.opt("lineage", dict, {}),
            rewrites=entries("rewrites", required=False),
            redactions=entries("redactions", required=False),
            warnings=f.strs("warnings"),
            stats=f.opt("stats", dict, {}),
            provenance=[dict(h) for h in f.opt("provenance", list, []) if isinstance(h, dict)],
            extra={k: v for k, v in f.data.items() if k not in _KNOWN},
        )

    @classmethod
    def read(
        cls,
        fh: BinaryIO,
        *,
        where: str = "manifest",
        on_bytes: Callable[[bytes], None] | None = None,
        plan: LoadPlan | None = None,
        on_entry: Callable[[str, Any], None] | None = None,
    ) -> Manifest:
        """Read a stored manifest as a stream under ``plan`` (``manifest_codec.read_manifest``:
        what is kept, which strings are shared; the whole manifest by default)."""
        from amlport.model import manifest_codec  # the codec is built on these types

        plan = manifest_codec.WHOLE if plan is None else plan
        return manifest_codec.read_manifest(
            fh, where=where, on_bytes=on_bytes, plan=plan, on_entry=on_entry
        )

    def to_json_bytes(self) -> bytes:
        """The canonical stored form (without ``snapshot_id``, which names these bytes)."""
        return "".join(self.iter_json()).encode("utf-8")

    def iter_json(self, on_value: Callable[[str, Any], None] | None = None) -> Iterator[str]:
        """The canonical stored form as text chunks (``manifest_codec.iter_json``)."""
        from amlport.model import manifest_codec

        return manifest_codec.iter_json(self, on_value)

    @classmethod
    def from_json_bytes(cls, raw: bytes, *, where: str = "manifest") -> Manifest:
        return cls.read(io.BytesIO(raw), where=where)


def entry_parser(key: str, *, newer: bool) -> Callable[[Any, str], Any]:
    """The reader of one entry of a long list (``LISTS``); ``newer``: the manifest is of a
    newer minor, which may add asset kinds."""
    if key == "assets":
        return lambda d, w: AssetEntry.from_dict(d, w, known_kinds_only=not newer)
    parsers: dict[str, Callable[[Any, str], Any]] = {
        "files": FileEntry.from_dict,
        "rewrites": RewriteRecord.from_dict,
        "redactions": RedactionRecord.from_dict,
    }
    return parsers[key]
