"""The streaming codec of a manifest (``model/manifest.py`` holds the value types): the
canonical JSON written a chunk at a time (``iter_json``), and read an entry at a time
(``read_manifest``, ``EntryReader``) under a ``LoadPlan`` (what to keep, which strings to
share). Stdlib only, no I/O of its own: it reads and yields what the caller streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

from amlport.errors import IntegrityError
from amlport.model import jsonstream
from amlport.model.loadplan import WHOLE, LoadPlan
from amlport.model.manifest import (
    LISTS,
    SCHEMA_MINOR,
    Manifest,
    _fail,
    _Fields,
    check_asset_kind,
    check_references,
    entry_parser,
    parse_schema,
)


def read_manifest(
    fh: BinaryIO,
    *,
    where: str = "manifest",
    on_bytes: Callable[[bytes], None] | None = None,
    plan: LoadPlan = WHOLE,
    on_entry: Callable[[str, Any], None] | None = None,
) -> Manifest:
    """Read a stored manifest from a byte stream, each entry of the long lists as it
    arrives (``jsonstream``): memory is the typed manifest, not its text and dict tree.
    Equal strings are stored once (asset file lists name the files' paths again).

    Every entry is checked; only the lists (and the lineage) the ``plan`` keeps are kept
    (the others come back empty), and ``on_entry(key, entry)`` sees each typed entry (a
    summary of a snapshot without its lists in memory). The plan's ``strings`` and
    ``digests`` are shared instead of read again (``LoadPlan``).
    ``on_bytes`` sees every byte read; on an error the rest of the stream is still read
    (so the caller's hash of the whole stream decides between damaged and invalid). The
    first error in an entry is raised after the schema check: the major comes first.
    """
    reader = EntryReader(where, plan, on_entry=on_entry)
    header: dict[str, Any] = {}
    try:
        values = jsonstream.members(
            fh, LISTS, on_bytes=on_bytes, hollow=plan.hollow, leaf=reader.share.tree
        )
        for key, value in values:
            if not isinstance(value, jsonstream.Items):
                header[key] = value
                reader.parsed.pop(key, None)
                continue
            header.pop(key, None)
            reader.start(key)
            for item in value:
                reader.take(key, item)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        while on_bytes is not None and (rest := fh.read(1 << 20)):
            on_bytes(rest)
        raise _fail(where, f"not valid JSON ({type(exc).__name__}: {_short(exc)})") from None
    return reader.finish(header)


def iter_json(
    manifest: Manifest, on_value: Callable[[str, Any], None] | None = None
) -> Iterator[str]:
    """The canonical stored form as text chunks, one per list entry, so that a manifest
    of 100k files is written without ever holding its whole JSON (or dict form) in memory.

    The text is exactly ``json.dumps(to_dict(), indent=2, sort_keys=True,
    ensure_ascii=False)`` + newline: JSON strings hold no raw newline, so indenting a
    nested value is prefixing its lines. ``on_value(key, value)`` sees every top-level
    value before it is written, and each entry of a long list on its own (checks).
    """
    header = manifest.header()
    header.pop("snapshot_id", None)
    keys = sorted([*header, *LISTS])
    yield "{\n"
    for n, key in enumerate(keys):
        end = ",\n" if n < len(keys) - 1 else "\n"
        yield f"  {_dumps(key)}: "
        if key not in LISTS:
            if on_value is not None:
                on_value(key, header[key])
            yield from _iter_dumps(header[key], "  ")  # the lineage is long too
            yield end
            continue
        empty = True
        for item in manifest.items(key):
            if on_value is not None:
                on_value(key, item)
            lead = "[\n    " if empty else ",\n    "
            yield lead + _dumps(item).replace("\n", "\n    ")
            empty = False
        yield ("[]" if empty else "\n  ]") + end
    yield "}\n"


class EntryReader:
    """The entries of a manifest's long lists, one at a time, from whatever holds them (a
    format-1 manifest stream, format-2 chunks): each is typed and checked, shown to
    ``on_entry``, and kept when its ``LoadPlan`` keeps its list (``read_manifest`` explains the
    options). ``finish`` checks the schema first, then raises the first bad entry."""

    def __init__(
        self,
        where: str,
        plan: LoadPlan = WHOLE,
        *,
        on_entry: Callable[[str, Any], None] | None = None,
    ) -> None:
        self.where = where
        self.kept = plan.keep
        self.on_entry = on_entry
        self.share = plan.interning()
        self.parsed: dict[str, list[Any]] = {}
        self.failed: IntegrityError | None = None
        self.unknown_kind: IntegrityError | None = None  # an error unless of a newer minor
        self._parse: Callable[[Any, str], Any] | None = None
        self._key = ""
        self._index = 0
        self._last_path: str | None = None  # canonical order puts a path twice side by side

    def start(self, key: str) -> None:
        self._key, self._index, self._last_path = key, 0, None
        self._parse = entry_parser(key, newer=True)  # kinds are checked after the schema
        self.parsed[key] = []

    def take(self, key: str, item: Any) -> None:
        if key != self._key or self._parse is None:
            self.start(key)
        at = f"{self.where}.{key}[{self._index}]"
        self._index += 1
        if self.failed is not None:
            return
        assert self._parse is not None
        try:
            entry = self._parse(item, at)
            if key == "files":
                self._last_path = _next_path(self._last_path, entry.path, at)
        except IntegrityError as exc:
            self.failed = exc
            return
        if key == "assets" and self.unknown_kind is None:
            try:
                check_asset_kind(entry.kind, at)
            except IntegrityError as exc:
                self.unknown_kind = exc
        if self.on_entry is not None:
            self.on_entry(key, entry)
        if key in self.kept:
            self.parsed[key].append(self.share.entry(entry))

    def finish(self, header: dict[str, Any]) -> Manifest:
        """The manifest of ``header`` (every field but the long lists) and the entries."""
        fields = _Fields(header, self.where)
        _, minor = parse_schema(fields.req("schema", str), where=self.where)
        if self.failed is not None:
            raise self.failed
        if self.unknown_kind is not None and minor <= SCHEMA_MINOR:
            raise self.unknown_kind
        manifest = Manifest._build(fields, self.parsed)
        if "files" in self.kept:  # else only the side-by-side check (no list to check)
            assets = manifest.assets if "assets" in self.kept else None
            check_references(manifest.files, assets, where=self.where)
        return manifest


def _next_path(last: str | None, path: str, where: str) -> str:
    if path == last:
        raise _fail(where, f"file {path!r} is listed more than once (one entry per path)")
    return path


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False)


STREAM_MIN = 64  # a nested list longer than this is written an item at a time


def _iter_dumps(value: Any, pad: str) -> Iterator[str]:
    """``_dumps(value)`` with each line after the first indented by ``pad``, in chunks: one
    per item of a long nested list (the lineage's nodes and links), whole otherwise."""
    inner = pad + "  "
    if isinstance(value, list) and len(value) > STREAM_MIN:
        for n, item in enumerate(value):
            yield ("[\n" if n == 0 else ",\n") + inner + _dumps(item).replace("\n", "\n" + inner)
        yield "\n" + pad + "]"
    elif isinstance(value, dict) and _holds_long_list(value):
        for n, key in enumerate(sorted(value)):
            yield ("{\n" if n == 0 else ",\n") + inner + _dumps(key) + ": "
            yield from _iter_dumps(value[key], inner)
        yield "\n" + pad + "}"
    else:
        yield _dumps(value).replace("\n", "\n" + pad)


def _holds_long_list(value: dict[Any, Any]) -> bool:
    """Worth streaming, and streamed exactly as ``json.dumps`` writes it (text keys only)."""
    return all(isinstance(k, str) for k in value) and any(
        (isinstance(v, list) and len(v) > STREAM_MIN)
        or (isinstance(v, dict) and _holds_long_list(v))
        for v in value.values()
    )


def _short(exc: Exception) -> str:
    return str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
