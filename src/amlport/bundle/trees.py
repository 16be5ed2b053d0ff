"""Format-2 snapshots: a small root and content-addressed, compressed pieces.

A format-1 snapshot is one JSON manifest listing every file, rewritten whole by every run.
Format 2 stores the same manifest (``model/manifest.py``) as:

- **chunks**: each long list (files, assets, rewrites, redactions, warnings, the lineage's
  nodes and links) is cut into runs of entries. Where a run ends is decided by the entry
  itself (a hash of its key: a file's path, an asset's id), not by its position, so an entry
  added, changed or removed changes its own chunk only, and an unchanged part of the
  workspace is the same chunk in every snapshot (restic and borg cut their trees and data
  the same way). A chunk is canonical JSON, zstd-compressed, a metadata object.
- **list nodes**: per list, the chunks in order with their entry counts (one metadata
  object; the same object while the list is unchanged).
- **the root** (``snapshots/<id>``, id = the name of its plain bytes): the manifest's header
  (source, time, tags, parent, stats, selection), the lineage's small fields, and per list
  its node, entry count and totals, so that listing snapshots reads roots only.

An unchanged re-backup therefore adds one root of about a kilobyte; a 1% change adds the
chunks it touched and the list nodes above them. Reading walks root → nodes → chunks; a
caller that walks several snapshots (prune, diff) passes the names it has seen and skips
what it already read. Every piece is named by its hash and checked when read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from amlport.bundle.objects import ObjectStore, format_digest, hex_of
from amlport.errors import IntegrityError, ParseError
from amlport.model.manifest import LISTS, Manifest
from amlport.model.manifest_codec import EntryReader
from amlport.safeload import load_json

ROOT_FORMAT = "amlport.snapshot/2"
NODE_FORMAT = "amlport.list/2"
CHUNK_FORMAT = "amlport.chunk/2"
VALUE_FORMAT = "amlport.value/2"
#: header fields always in the root (what listing snapshots needs); any other field whose
#: JSON is longer than MAX_INLINE_VALUE is a piece of its own (a backup's selection names
#: every node: 100+ KB at 10k blobs, the same bytes in every unchanged snapshot)
INLINE = frozenset(("schema", "tool_version", "created", "parent", "tags", "source", "stats"))
MAX_INLINE_VALUE = 2048
LINEAGE_LISTS = ("nodes", "links")
#: every list of a format-2 snapshot, in the order they are written
ALL_LISTS = (*LISTS, "warnings", "lineage.nodes", "lineage.links")
#: a chunk ends after an entry whose key hashes to 0 modulo this (so ~this many entries)
CUT_EVERY = {"assets": 16, "files": 32}
FANOUT = 64  # a node with more references than this is split into sub-nodes
MAX_DEPTH = 6  # nodes below a root (64^6 chunks: far beyond any workspace)
DEFAULT_CUT_EVERY = 128
MAX_CHUNK_TEXT = 512 << 10  # a chunk also ends once its text is this long
MAX_ROOT_BYTES = 16 << 20
_HINT = "the snapshot is damaged; run `amlport verify`, then forget it or restore its pieces"


def dumps(value: Any) -> str:
    """Canonical compact JSON: sorted keys, UTF-8, no spaces (the bytes that are named)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)  # fmt: skip


def _cut_key(key: str, entry: Any) -> str:
    """What decides whether a chunk ends after ``entry``: what names the entry in its list
    (a file's path, an asset's kind and id, a record's file and place), so that the cut
    stays where it is when the entry's content changes."""
    if isinstance(entry, dict):
        if isinstance(entry.get("path"), str):
            return entry["path"]
        if isinstance(entry.get("id"), str):
            return f"{entry.get('kind')}\x00{entry['id']}"
        if isinstance(entry.get("file"), str):  # rewrites (location), redactions (kind)
            return f"{entry['file']}\x00{entry.get('location', entry.get('kind', ''))}"
        if "source" in entry and "target" in entry:
            return f"{entry['source']}\x00{entry['target']}\x00{entry.get('key', '')}"
    return dumps(entry)


def _ends_chunk(key: str, entry: Any, every: int) -> bool:
    mark = hashlib.blake2b(_cut_key(key, entry).encode("utf-8", "surrogatepass"), digest_size=4)
    return int.from_bytes(mark.digest(), "big") % every == 0


@dataclass
class ListRef:
    """What a root records of one list (``write`` adds the files' and assets' totals)."""

    node: str
    count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "count": self.count}


class TreeWriter:
    """Writes one snapshot's pieces; ``write`` returns the root's plain bytes."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        check: Callable[[str, Any], None] | None = None,
        check_text: Callable[[str], None] | None = None,
    ) -> None:
        self.objects = objects
        self.check = check
        self.check_text = check_text

    def _put(self, text: str) -> str:
        return self.objects.put_meta(text.encode("utf-8"))[0]

    def write_list(self, key: str, items: Iterable[Any]) -> ListRef:
        """Cut ``items`` into chunks, store them and the list's node. A chunk whose bytes
        are already stored is not checked again: the writer that stored those very bytes
        checked them (an unchanged re-backup checks and writes nothing but its root)."""
        every = CUT_EVERY.get(key, DEFAULT_CUT_EVERY)
        chunks: list[list[Any]] = []
        pending: list[tuple[Any, str]] = []
        length = 0
        count = 0
        head = '{"entries":['
        tail = f'],"format":{dumps(CHUNK_FORMAT)},"list":{dumps(key)}}}'

        def flush() -> None:
            nonlocal pending, length
            if not pending:
                return
            plain = (head + ",".join(t for _, t in pending) + tail).encode("utf-8")
            name = self.objects.codec.meta_name(plain)  # hashed once: checked, then stored
            if not self.objects.has(format_digest(name)):
                for item, item_text in pending:
                    if self.check is not None and key in LISTS:
                        self.check(key, item)
                    if self.check_text is not None:
                        self.check_text(item_text)
            chunks.append([self.objects.put_meta(plain, name=name)[0], len(pending)])
            pending, length = [], 0

        for item in items:
            text = dumps(item)
            pending.append((item, text))
            length += len(text) + 1
            count += 1
            if length >= MAX_CHUNK_TEXT or _ends_chunk(key, item, every):
                flush()
        flush()
        return ListRef(self._node(key, chunks, "chunks", count), count)

    def _node(self, key: str, refs: list[list[Any]], kind: str, count: int) -> str:
        """The node over ``refs`` (chunks, or nodes): when there are more than FANOUT of
        them, they are grouped into sub-nodes first, cut where a reference's digest says
        (content-defined again: one changed chunk changes one sub-node and the top)."""
        if len(refs) > FANOUT:
            groups: list[list[list[Any]]] = [[]]
            for ref in refs:
                groups[-1].append(ref)
                if _ends_chunk(key, {"id": ref[0]}, FANOUT // 2):
                    groups.append([])
            groups = [g for g in groups if g]
            if 1 < len(groups) < len(refs):  # a level that groups nothing would loop
                subs = [[self._flat(key, g, kind), sum(n for _, n in g)] for g in groups]
                return self._node(key, subs, "nodes", count)
        return self._flat(key, refs, kind)

    def _flat(self, key: str, refs: list[list[Any]], kind: str) -> str:
        """One node over ``refs`` as they are (a group is cut by the rule that made it, so
        cutting it again would find nothing to cut)."""
        count = sum(n for _, n in refs)
        node = {kind: refs, "count": count, "format": NODE_FORMAT, "list": key}
        return self._put(dumps(node))

    def write(self, manifest: Manifest, *, extra: dict[str, Any] | None = None) -> bytes:
        """Store every piece of ``manifest`` and return its root (not stored: the caller
        names and writes it last)."""
        header = manifest.header()
        header.pop("snapshot_id", None)
        lineage = header.pop("lineage")
        warnings = header.pop("warnings")
        for key, value in header.items():
            self._see(key, value)
        self._see("lineage", lineage)
        self._see("warnings", warnings)
        lists: dict[str, Any] = {}
        for key in LISTS:
            lists[key] = self._list(key, manifest.items(key)).to_dict()
        lists["warnings"] = self._list("warnings", warnings).to_dict()
        small = {k: v for k, v in lineage.items() if k not in LINEAGE_LISTS}
        for name in LINEAGE_LISTS:
            items = lineage.get(name)
            if isinstance(items, list):
                lists[f"lineage.{name}"] = self._list(f"lineage.{name}", items).to_dict()
        lists["files"].update(size=sum(f.size for f in manifest.files))
        kinds: dict[str, int] = {}
        for asset in manifest.assets:
            kinds[asset.kind] = kinds.get(asset.kind, 0) + 1
        lists["assets"].update(kinds=dict(sorted(kinds.items())))
        if self.check_text is not None:
            self.check_text(dumps(header))
            self.check_text(dumps(small))
        pieces: dict[str, str] = {}
        for key in sorted(header):  # a long header value is a piece of its own (selection)
            text = dumps(header[key])
            if key not in INLINE and len(text) > MAX_INLINE_VALUE:
                value = {"format": VALUE_FORMAT, "key": key, "value": header.pop(key)}
                pieces[key] = self._put(dumps(value))
        root: dict[str, Any] = {
            "format": ROOT_FORMAT,
            "manifest": header,
            "lineage": small,
            "lists": lists,
        }
        if pieces:
            root["pieces"] = pieces
        root.update(extra or {})
        return dumps(root).encode("utf-8")

    def _list(self, key: str, items: Iterable[Any]) -> ListRef:
        return self.write_list(key, items)

    def _see(self, key: str, value: Any) -> None:
        if self.check is not None:
            self.check(key, value)


class TreeReader:
    """Reads format-2 pieces; ``seen`` (shared between reads) skips pieces already read."""

    def __init__(self, objects: ObjectStore, *, seen: set[str] | None = None) -> None:
        self.objects = objects
        self.seen = seen
        self.pieces: set[str] = set()  # every piece this reader walked

    def piece(self, digest: str, fmt: str, where: str) -> dict[str, Any]:
        plain = self.objects.get_meta(digest, where=where)
        self.pieces.add(digest)
        return parse_piece(plain, fmt, where)

    def node(self, ref: Any, key: str, where: str) -> list[tuple[str, int]]:
        """The chunks of one list in order: [(digest, count)] (sub-nodes expanded)."""
        return list(self._chunks(node_digest(ref, key, where), ref.get("count"), key, where, 0,
                                 skip_seen=False))  # fmt: skip

    def _chunks(
        self, digest: str, count: Any, key: str, where: str, depth: int, *, skip_seen: bool
    ) -> Iterator[tuple[str, int]]:
        if depth > MAX_DEPTH:
            raise _bad(where, f"list {key!r} is nested deeper than {MAX_DEPTH} nodes")
        node = self.piece(digest, NODE_FORMAT, f"{where}, list {key}")
        refs = node.get("chunks", node.get("nodes"))
        if (
            node.get("list") != key
            or not isinstance(refs, list)
            or ("chunks" in node) == ("nodes" in node)
        ):
            raise _bad(where, f"list node {digest} is not a node of {key!r}")
        pairs = []
        for item in refs:
            if not (isinstance(item, list) and len(item) == 2 and is_count(item[1])):
                raise _bad(where, f"list node {digest} holds a malformed reference")
            pairs.append((_digest(item[0], where), item[1]))
        total = sum(n for _, n in pairs)
        if total != node.get("count") or total != count:
            raise _bad(where, f"list {key!r} counts disagree ({total} entries below {digest})")
        for child, n in pairs:
            if skip_seen and self.seen is not None:
                if child in self.seen:
                    continue
                self.seen.add(child)
            if "nodes" in node:
                yield from self._chunks(child, n, key, where, depth + 1, skip_seen=skip_seen)
            else:
                yield child, n

    def entries(self, ref: Any, key: str, where: str, *, skip_seen: bool = False) -> Iterator[Any]:
        """Every entry of one list in order; with ``skip_seen``, only the entries below
        nodes and chunks no reader sharing ``seen`` read before (prune walks what differs)."""
        digest = node_digest(ref, key, where)
        for chunk_digest, count in self._chunks(
            digest, ref.get("count"), key, where, 0, skip_seen=skip_seen
        ):
            chunk = self.piece(chunk_digest, CHUNK_FORMAT, f"{where}, list {key}")
            items = chunk.get("entries")
            if chunk.get("list") != key or not isinstance(items, list) or len(items) != count:
                raise _bad(
                    where, f"chunk {chunk_digest} of list {key!r} does not hold {count} entries"
                )
            yield from items


def is_count(value: Any) -> bool:
    """A count in a piece: an int (not a bool), not negative."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_piece(plain: bytes, fmt: str, where: str) -> dict[str, Any]:
    try:
        value = load_json(plain.decode("utf-8"), where)
    except (UnicodeDecodeError, ParseError) as exc:
        raise _bad(where, f"a {fmt} piece is not valid JSON ({_reason(exc)})") from None
    if not isinstance(value, dict) or value.get("format") != fmt:
        found = value.get("format") if isinstance(value, dict) else type(value).__name__
        raise IntegrityError(
            f"{where}: expected a {fmt} piece, found {found!r}",
            hint="upgrade amlport if the repository was written by a newer one; " + _HINT,
        )
    return value


def read_root(plain: bytes, where: str) -> dict[str, Any]:
    root = parse_piece(plain, ROOT_FORMAT, where)
    if not isinstance(root.get("manifest"), dict) or not isinstance(root.get("lists"), dict):
        raise _bad(where, "the root lacks its manifest header or lists")
    return root


def load_manifest(
    root: dict[str, Any], reader: TreeReader, entries: EntryReader, *, lineage: bool
) -> Manifest:
    """The manifest of a root, through ``entries`` (which checks, shares and keeps)."""
    where = entries.where
    header = dict(root["manifest"])
    header.update(header_pieces(root, reader, where))
    lists = root["lists"]
    for key in LISTS:
        if key in lists:
            entries.start(key)
            for item in reader.entries(lists[key], key, where):
                entries.take(key, item)
    header["warnings"] = (
        list(reader.entries(lists["warnings"], "warnings", where)) if "warnings" in lists else []
    )
    small = root.get("lineage")
    full: dict[str, Any] = dict(small) if isinstance(small, dict) else {}
    for name in LINEAGE_LISTS:
        key = f"lineage.{name}"
        if key in lists:
            items = reader.entries(lists[key], key, where)
            if lineage:
                full[name] = [entries.share.tree(item) for item in items]
            else:
                for _ in items:  # read and checked all the same
                    pass
    header["lineage"] = full if lineage else {}
    return entries.finish(header)


def piece_refs(root: dict[str, Any], where: str) -> dict[str, str]:
    """The header fields a root keeps as pieces of their own: {field: digest}."""
    refs = root.get("pieces", {})
    if not isinstance(refs, dict):
        raise _bad(where, "the root's pieces are malformed")
    return {str(k): _digest(v, where) for k, v in refs.items()}


def header_pieces(root: dict[str, Any], reader: TreeReader, where: str) -> dict[str, Any]:
    """The values of the header fields kept as pieces, each checked."""
    out: dict[str, Any] = {}
    for key, digest in piece_refs(root, where).items():
        if key in INLINE or key in root["manifest"]:
            raise _bad(where, f"header field {key!r} is both inline and a piece")
        piece = reader.piece(digest, VALUE_FORMAT, f"{where}, field {key}")
        if piece.get("key") != key or "value" not in piece:
            raise _bad(where, f"piece {digest} is not the value of {key!r}")
        out[key] = piece["value"]
    return out


def node_digest(ref: Any, key: str, where: str) -> str:
    """The digest of a list's node as its root records it."""
    if not isinstance(ref, dict):
        raise _bad(where, f"list {key!r} has no node")
    return _digest(ref.get("node"), where)


def _digest(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _bad(where, f"{value!r} is not a digest")
    try:
        hex_of(value)
    except Exception:
        raise _bad(where, f"{value!r} is not a digest") from None
    return value


def _bad(where: str, what: str) -> IntegrityError:
    return IntegrityError(f"{where}: {what}", hint=_HINT)


def _reason(exc: Exception) -> str:
    return exc.reason if isinstance(exc, ParseError) else str(exc)


__all__ = [
    "ALL_LISTS",
    "ROOT_FORMAT",
    "ListRef",
    "TreeReader",
    "TreeWriter",
    "load_manifest",
    "read_root",
]
