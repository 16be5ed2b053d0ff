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

- **overlays** (format 2.1): a list may instead be stored as a *base* (a full list of an
  earlier snapshot, named by its node) plus one small piece of *edits* (``Overlay``): at
  which base positions entries were removed and which entries were put there. The writer
  makes one when the snapshot's parent holds the list and the overlay is smaller than the
  chunks and nodes a full list would add (and at most MAX_OVERLAY_TEXT); otherwise it
  writes a full list. Compaction is partial: the densest regions of the overlay are folded
  into a new base (a full list: the old base's chunks and theirs) while that costs at most
  the overlay that remains, which bounds what a night of a long series adds. A base is
  always a full list (read as a list node), so reading a list costs at most one base and
  one overlay.

An unchanged re-backup therefore adds one root of about a kilobyte; a 1% change adds the
overlays of the lists it touched (or the chunks it touched and the list nodes above them).
Reading walks root → nodes → chunks (→ overlay); a caller that walks several snapshots
(prune, diff) passes the names it has seen and skips what it already read. Every piece is
named by its hash and checked when read.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, TypeGuard

from amlport.bundle.objects import ObjectStore, format_digest, hex_of
from amlport.errors import IntegrityError, ParseError
from amlport.model.manifest import LISTS, Manifest
from amlport.model.manifest_codec import EntryReader
from amlport.safeload import load_json
from amlport.secrets import may_hold_secret

ROOT_FORMAT = "amlport.snapshot/2"
#: a root with at least one overlay list: a reader that knows only ROOT_FORMAT refuses it
#: (it names the format and says to upgrade amlport) instead of misreading the list
ROOT_FORMAT_OVERLAYS = "amlport.snapshot/2.1"
ROOT_FORMATS = (ROOT_FORMAT, ROOT_FORMAT_OVERLAYS)
OVERLAY_FORMAT = "amlport.overlay/2"
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
#: the writer compacts (writes a full list) rather than store an overlay longer than this
MAX_OVERLAY_TEXT = 256 << 10
#: the writer folds regions of an overlay into a new base while what it stores for them stays
#: within this times the overlay text that remains (``TreeWriter._overlay``)
FOLD_BALANCE = 1.0
#: a reader refuses a longer overlay (it holds one overlay per list in memory while reading)
MAX_OVERLAY_BYTES = 4 << 20
#: the writer holds at most this much text of changed chunks while it decides; beyond, the
#: list is written whole (an overlay of that many changes would be compacted anyway)
MAX_HELD_TEXT = 8 << 20
_REF_TEXT = 80  # text of one reference in a list node (a digest and a count), for estimates
_HINT = "the snapshot is damaged; run `amlport verify`, then forget it or restore its pieces"


# One encoder for every piece: ``json.dumps`` with arguments builds a new one per call (a
# third of its cost for a file's entry).
_ENCODER = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def dumps(value: Any) -> str:
    """Canonical compact JSON: sorted keys, UTF-8, no spaces (the bytes that are named)."""
    return _ENCODER.encode(value)


_string = json.encoder.encode_basestring  # what ``_ENCODER`` writes a string with (C)
_FILE_KEYS = frozenset(("path", "digest", "size", "original", "rewritten", "original_digest"))
_ORIGIN_KEYS = frozenset(("datastore", "container", "path"))


def entry_text(entry: Any) -> str:
    """``dumps`` of an entry, the same text; a file's common entry (``FileEntry.to_dict``
    of exact types, its origin the datastore, container and path) written field by field:
    the encoder's general walk of each dict (sorting its keys, building an encoder per call)
    was ~3 % of a first backup's main process at 100k files (docs/design/0007, A, session 9)."""
    if type(entry) is dict and entry.keys() == _FILE_KEYS:
        digest, size, path = entry["digest"], entry["size"], entry["path"]
        original, rewritten, before = (
            entry["original"],
            entry["rewritten"],
            entry["original_digest"],
        )
        if (
            type(digest) is str
            and type(size) is int
            and type(path) is str
            and type(rewritten) is bool
            and (before is None or type(before) is str)
            and type(original) is dict
            and original.keys() == _ORIGIN_KEYS
        ):
            container, datastore, name = (
                original["container"],
                original["datastore"],
                original["path"],
            )
            if type(container) is str and type(datastore) is str and type(name) is str:
                return (
                    f'{{"digest":{_string(digest)},"original":{{"container":{_string(container)}'
                    f',"datastore":{_string(datastore)},"path":{_string(name)}}}'
                    f',"original_digest":{"null" if before is None else _string(before)}'
                    f',"path":{_string(path)},"rewritten":{"true" if rewritten else "false"}'
                    f',"size":{int.__repr__(size)}}}'
                )
    return dumps(entry)


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
    """What a root records of one list (``write`` adds the files' and assets' totals): its
    node, or (an overlay list) its base's node and its overlay."""

    node: str
    count: int = 0
    base: str | None = None
    overlay: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.overlay is not None:
            return {"base": self.base, "count": self.count, "overlay": self.overlay}
        return {"node": self.node, "count": self.count}


Edit = tuple[int, int, list[Any]]  # (base position, base entries removed, entries put there)


@dataclass
class Overlay:
    """A checked overlay piece: the list is its base's entries with ``edits`` applied."""

    digest: str
    base: str
    base_count: int
    count: int
    edits: list[Edit]


def apply_edits(base: Iterable[Any], edits: list[Edit]) -> Iterator[Any]:
    """The entries of ``base`` with ``edits`` applied, in order (edits as ``check_edits``
    accepts them: sorted, not overlapping, within the base)."""
    pending = iter(edits)
    edit = next(pending, None)
    skip_until = 0
    pos = 0
    for item in base:
        if edit is not None and edit[0] == pos:
            yield from edit[2]
            skip_until = pos + edit[1]
            edit = next(pending, None)
        if pos >= skip_until:
            yield item
        pos += 1
    if edit is not None and edit[0] == pos:  # entries added after the last one
        yield from edit[2]


def diff_edits(old: list[str], new: list[Any], new_texts: list[str], at: int = 0) -> list[Edit]:
    """The edits that turn entries whose texts are ``old`` into ``new`` (texts
    ``new_texts``), positions counted from ``at``: what differs, entry by entry."""
    edits: list[Edit] = []
    matcher = SequenceMatcher(None, old, new_texts, autojunk=False)
    for tag, a1, a2, b1, b2 in matcher.get_opcodes():
        if tag != "equal":
            edits.append((at + a1, a2 - a1, new[b1:b2]))
    return edits


def check_edits(raw: Any, base_count: int, where: str) -> list[Edit]:
    """The edits of an overlay piece, or IntegrityError: each ``[position, removed,
    [entries]]`` with positions increasing, never inside what the edit before removed, and
    within the base."""
    if not isinstance(raw, list):
        raise _bad(where, "the overlay's edits are not a list")
    edits: list[Edit] = []
    for item in raw:
        if not (
            isinstance(item, list)
            and len(item) == 3
            and is_count(item[0])
            and is_count(item[1])
            and isinstance(item[2], list)
        ):
            raise _bad(where, "the overlay holds a malformed edit")
        at, removed, entries = item
        if edits and (at <= edits[-1][0] or at < edits[-1][0] + edits[-1][1]):
            raise _bad(where, f"the overlay's edits overlap or are out of order (at {at})")
        if at + removed > base_count or (removed == 0 and not entries):
            raise _bad(where, f"the overlay's edit at {at} is outside its base or empty")
        edits.append((at, removed, entries))
    return edits


class TreeWriter:
    """Writes one snapshot's pieces; ``write`` returns the root's plain bytes. ``bases``: the
    lists of the snapshot's parent (its root's ``lists``): a list may then be written as an
    overlay of the parent's full list (``write_list``). ``check(key, value)`` sees each
    value and entry before it is stored, ``check_text(text)`` each text and refuses one that
    holds a secret (it may be spared a text in which ``may_hold_secret`` finds nothing)."""

    def __init__(
        self,
        objects: ObjectStore,
        *,
        check: Callable[[str, Any], None] | None = None,
        check_text: Callable[[str], None] | None = None,
        bases: dict[str, Any] | None = None,
    ) -> None:
        self.objects = objects
        self.check = check
        self.check_text = check_text
        self.bases = bases or {}
        self.overlays = False

    def _check_chunk(self, key: str, pending: list[tuple[Any, str]]) -> None:
        """``check`` and ``check_text`` of each entry of a chunk to store, in order. One
        pre-check of the entries' texts together comes first: ``check_text`` refuses a text
        that holds a secret, a text holding a trigger (``may_hold_secret``) holds it in
        their join as well, so a join holding none spares every ``check_text`` (at 100k
        files, a search of each entry's text was ~6 % of a first backup's main process)."""
        check = self.check if key in LISTS else None
        check_text = self.check_text
        if check_text is not None and not may_hold_secret("\n".join(t for _, t in pending)):
            check_text = None
        for item, item_text in pending:
            if check is not None:
                check(key, item)
            if check_text is not None:
                check_text(item_text)

    def _put(self, text: str) -> str:
        return self.objects.put_meta(text.encode("utf-8"))[0]

    def write_list(self, key: str, items: Iterable[Any], *, base: str | None = None) -> ListRef:
        """Cut ``items`` into chunks, store them and the list's node. A chunk whose bytes
        are already stored is not checked again: the writer that stored those very bytes
        checked them (an unchanged re-backup checks and writes nothing but its root).

        ``base``: the node of a full list (the parent's). The chunks that are not the base's
        are then held, not stored, until the end; if an overlay (perhaps of a new base with
        some regions folded: ``_overlay``) is smaller than what they and the nodes above
        them would add (and at most MAX_OVERLAY_TEXT), only it (and the folds) is stored."""
        every = CUT_EVERY.get(key, DEFAULT_CUT_EVERY)
        chunks: list[list[Any]] = []
        pending: list[tuple[Any, str]] = []
        length = 0
        count = 0
        head = '{"entries":['
        tail = f'],"format":{dumps(CHUNK_FORMAT)},"list":{dumps(key)}}}'
        base_chunks = self._base_chunks(key, base) if base is not None else None
        in_base = {d for d, _ in base_chunks} if base_chunks is not None else set()
        held: dict[str, _Held] = {}  # chunks not in the base, not stored yet
        held_text = 0

        def store_held() -> None:
            nonlocal base_chunks
            for digest, chunk in held.items():
                if not chunk.stored:
                    self.objects.put_meta(chunk.plain, name=hex_of(digest))
            held.clear()
            base_chunks = None  # a full list now

        def flush() -> None:
            nonlocal pending, length, held_text
            if not pending:
                return
            plain = (head + ",".join(t for _, t in pending) + tail).encode("utf-8")
            name = self.objects.codec.meta_name(plain)  # hashed once: checked, then stored
            digest = format_digest(name)
            if digest not in in_base:
                stored = self.objects.has(digest)
                if not stored:
                    self._check_chunk(key, pending)
                if base_chunks is not None and held_text + len(plain) <= MAX_HELD_TEXT:
                    held[digest] = _Held(plain, [i for i, _ in pending],
                                         [t for _, t in pending], stored)  # fmt: skip
                    held_text += len(plain)
                else:
                    store_held()
                    if not stored:
                        self.objects.put_meta(plain, name=name)
            chunks.append([digest, len(pending)])
            pending, length = [], 0

        for item in items:
            text = entry_text(item)
            pending.append((item, text))
            length += len(text) + 1
            count += 1
            if length >= MAX_CHUNK_TEXT or _ends_chunk(key, item, every):
                flush()
        flush()
        if base is not None and base_chunks is not None:
            planned = self._overlay(key, base, base_chunks, chunks, held, count)
            if planned is not None:
                return ListRef("", count, base=planned[0], overlay=planned[1])
        store_held()
        return ListRef(self._node(key, chunks, "chunks", count), count)

    def _base_chunks(self, key: str, base: str) -> list[tuple[str, int]] | None:
        """The chunks of the base list (its nodes read and checked); None when it cannot be
        read (the list is then written whole: it does not depend on a damaged base)."""
        reader = TreeReader(self.objects)
        where = f"base of list {key}"
        try:
            top = reader.piece(base, NODE_FORMAT, where)
            return reader.node({"node": base, "count": top.get("count")}, key, where)
        except IntegrityError:
            return None

    def _overlay(
        self,
        key: str,
        base: str,
        base_chunks: list[tuple[str, int]],
        chunks: list[list[Any]],
        held: dict[str, _Held],
        count: int,
    ) -> tuple[str, str] | None:
        """Store the overlay that gives ``chunks`` if it is worth it, and return (its base,
        it); None: write the list whole.

        Compaction, region by region (docs/design/0007, *Overlay compaction*): a region is
        a run of chunks that differ from the base's. The densest regions (most overlay text
        per byte of chunks to store) are *folded*, their new chunks stored, while what the
        folds cost stays within what the overlay still costs: the base is then a new full
        list (the old base's chunks with the folded regions' new ones, a node over them) and
        the overlay holds the other regions only. Carrying a region costs its edits every
        night, folding it costs its chunks once; spending on folds what the overlay costs
        keeps both near the optimum of the two (each night at most about twice the overlay
        that remains). The plan is taken if it costs less than the full list would (the
        held chunks not yet stored and the node references); the overlay is at most
        MAX_OVERLAY_TEXT (regions are folded beyond the balance to stay under it)."""
        new_names = [d for d, _ in chunks]
        old_names = [d for d, _ in base_chunks]
        if new_names == old_names:
            return None  # the base itself
        regions = self._regions(key, base_chunks, chunks, held)
        if regions is None:
            return None
        text = sum(r.text for r in regions)
        fold: set[int] = set()
        spent = 0  # chunks (and node references) the folds store
        order = sorted(range(len(regions)), key=lambda i: regions[i].density, reverse=True)
        for i in order:
            region = regions[i]
            more = region.cost + _REF_TEXT * min(len(chunks), FANOUT * (len(fold) + 2))
            more -= _REF_TEXT * min(len(chunks), FANOUT * (len(fold) + 1)) if fold else 0
            if text <= MAX_OVERLAY_TEXT and spent + more > FOLD_BALANCE * (text - region.text):
                break
            fold.add(i)
            spent += more
            text -= region.text
        unstored = sum(len(c.plain) for c in held.values() if not c.stored)
        full = unstored + _REF_TEXT * min(len(chunks), FANOUT * (len(held) + 1))
        if len(fold) == len(regions) or text > MAX_OVERLAY_TEXT or spent + text >= full:
            return None
        refs: list[list[Any]] = []  # the new base: the old one with the folded regions' chunks
        edits: list[Edit] = []
        at = 0  # position in the new base
        for i, region in enumerate(regions):
            for digest, n in chunks[region.same_from : region.j1]:  # equal to the base's
                refs.append([digest, n])
                at += n
            if i in fold:
                for digest, n in chunks[region.j1 : region.j2]:
                    chunk = held.get(digest)
                    if chunk is not None and not chunk.stored:
                        self.objects.put_meta(chunk.plain, name=hex_of(digest))
                        chunk.stored = True
                    refs.append([digest, n])
                    at += n
            else:
                edits += [(at + p, r, items) for p, r, items in region.edits]
                for digest, n in base_chunks[region.i1 : region.i2]:
                    refs.append([digest, n])
                    at += n
        for digest, n in chunks[regions[-1].j2 :]:
            refs.append([digest, n])
            at += n
        new_base = base if not fold else self._node(key, refs, "chunks", at)
        piece = {
            "base": new_base,
            "base_count": at,
            "count": count,
            "edits": [list(e) for e in edits],
            "format": OVERLAY_FORMAT,
            "list": key,
        }
        return new_base, self._put(dumps(piece))

    def _regions(
        self,
        key: str,
        base_chunks: list[tuple[str, int]],
        chunks: list[list[Any]],
        held: dict[str, _Held],
    ) -> list[_Region] | None:
        """The runs of chunks of the new list that differ from the base's, each with its
        edits (positions from the run's start in the base); None when the base cannot be
        read."""
        reader = TreeReader(self.objects)
        where = f"base of list {key}"
        regions: list[_Region] = []
        same_from = 0
        matcher = SequenceMatcher(None, [d for d, _ in base_chunks], [d for d, _ in chunks],
                                  autojunk=False)  # fmt: skip
        try:
            for tag, i1, i2, j1, j2 in matcher.get_opcodes():
                if tag == "equal":
                    continue
                old: list[str] = []
                for digest, n in base_chunks[i1:i2]:
                    old += [dumps(e) for e in chunk_entries(reader, digest, n, key, where)]
                new: list[Any] = []
                new_texts: list[str] = []
                cost = 0
                for digest, n in chunks[j1:j2]:
                    chunk = held.get(digest)
                    if chunk is None:  # a chunk of the base, elsewhere in it
                        items = chunk_entries(reader, digest, n, key, where)
                        new += items
                        new_texts += [dumps(e) for e in items]
                    else:
                        new += chunk.items
                        new_texts += chunk.texts
                        cost += 0 if chunk.stored else len(chunk.plain)
                edits = diff_edits(old, new, new_texts)
                text = sum(len(dumps(list(e))) + 1 for e in edits)
                regions.append(_Region(same_from, i1, i2, j1, j2, edits, text, cost))
                same_from = j2
        except IntegrityError:
            return None
        return regions

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
        self.overlays = False  # any list written as an overlay: the root says so
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
            "format": ROOT_FORMAT_OVERLAYS if self.overlays else ROOT_FORMAT,
            "manifest": header,
            "lineage": small,
            "lists": lists,
        }
        if pieces:
            root["pieces"] = pieces
        root.update(extra or {})
        return dumps(root).encode("utf-8")

    def _list(self, key: str, items: Iterable[Any]) -> ListRef:
        ref = self.write_list(key, items, base=base_node(self.bases.get(key)))
        self.overlays = self.overlays or ref.overlay is not None
        return ref

    def _see(self, key: str, value: Any) -> None:
        if self.check is not None:
            self.check(key, value)


@dataclass
class _Held:
    """A chunk the writer holds while it decides between an overlay and a full list."""

    plain: bytes
    items: list[Any]
    texts: list[str]
    stored: bool  # its bytes are stored already (another snapshot has it)


@dataclass
class _Region:
    """A run of chunks of the new list (``j1:j2``) in place of base chunks ``i1:i2``, after
    the equal chunks from ``same_from``; its ``edits`` (positions from ``i1``'s first entry),
    their ``text`` in an overlay, and the ``cost`` of storing its chunks (not yet stored)."""

    same_from: int
    i1: int
    i2: int
    j1: int
    j2: int
    edits: list[Edit]
    text: int
    cost: int

    @property
    def density(self) -> float:
        """Overlay text saved per byte stored when the region is folded (a region that only
        removes chunks stores nothing: folding it is free, it comes first)."""
        stored = self.cost + _REF_TEXT * (self.j2 - self.j1)
        return self.text / stored if stored else math.inf


def base_node(ref: Any) -> str | None:
    """The full list an overlay of ``ref`` (a parent's list) would be based on: its node,
    or its own base when it is an overlay (never an overlay of an overlay)."""
    if not isinstance(ref, dict):
        return None
    found = ref.get("base") if is_overlay(ref) else ref.get("node")
    try:
        return _digest(found, "")
    except IntegrityError:
        return None


def is_overlay(ref: Any) -> bool:
    return isinstance(ref, dict) and "overlay" in ref


def list_digest(ref: Any, key: str, where: str) -> str:
    """What names a list in a root: its node, or its overlay (which names its base)."""
    if is_overlay(ref):
        return _digest(ref.get("overlay"), where)
    return node_digest(ref, key, where)


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

    def overlay(self, ref: Any, key: str, where: str) -> Overlay:
        """The checked overlay of an overlay list: it names the base the root names, for the
        same list, and its counts add up (base - removed + put = the root's count)."""
        digest = _digest(ref.get("overlay"), where)
        base = _digest(ref.get("base"), where)
        plain = self.objects.get_meta(digest, where=f"{where}, list {key}")
        if len(plain) > MAX_OVERLAY_BYTES:
            raise _bad(where, f"the overlay of list {key!r} has {len(plain)} bytes, more than "
                              f"{MAX_OVERLAY_BYTES} an overlay may hold")  # fmt: skip
        self.pieces.add(digest)
        piece = parse_piece(plain, OVERLAY_FORMAT, f"{where}, list {key}")
        base_count, count = piece.get("base_count"), piece.get("count")
        if piece.get("list") != key or piece.get("base") != base:
            raise _bad(where, f"overlay {digest} is not an overlay of list {key!r} on {base}")
        if not is_count(base_count) or not is_count(count) or count != ref.get("count"):
            raise _bad(where, f"list {key!r} counts disagree (overlay {digest})")
        edits = check_edits(piece.get("edits"), base_count, f"{where}, list {key}")
        removed = sum(n for _, n, _ in edits)
        added = sum(len(items) for _, _, items in edits)
        if base_count - removed + added != count:
            raise _bad(where, f"list {key!r} counts disagree (overlay {digest}: {base_count} - "
                              f"{removed} + {added} is not {count})")  # fmt: skip
        return Overlay(digest, base, base_count, count, edits)

    def entries(self, ref: Any, key: str, where: str, *, skip_seen: bool = False) -> Iterator[Any]:
        """Every entry of one list in order; with ``skip_seen``, only the entries below
        nodes and chunks no reader sharing ``seen`` read before (prune walks what differs);
        of an overlay list, then, the unseen entries of its base and those its overlay puts
        (a superset of the list's: what reachability needs)."""
        if not is_overlay(ref):
            yield from self._entries(node_digest(ref, key, where), ref.get("count"), key, where,
                                     skip_seen=skip_seen)  # fmt: skip
            return
        overlay = self.overlay(ref, key, where)
        if not skip_seen:
            base = self._entries(overlay.base, overlay.base_count, key, where, skip_seen=False)
            yield from apply_edits(base, overlay.edits)
            return
        if self.seen is None or overlay.base not in self.seen:
            yield from self._entries(overlay.base, overlay.base_count, key, where,
                                     skip_seen=True)  # fmt: skip
            self.pieces.add(overlay.base)
            if self.seen is not None:
                self.seen.add(overlay.base)
        for _, _, items in overlay.edits:
            yield from items

    def _entries(
        self, digest: str, count: Any, key: str, where: str, *, skip_seen: bool
    ) -> Iterator[Any]:
        """The entries of a full list (its node ``digest``, ``count`` entries)."""
        for chunk_digest, n in self._chunks(digest, count, key, where, 0, skip_seen=skip_seen):
            yield from chunk_entries(self, chunk_digest, n, key, where)


def chunk_entries(reader: TreeReader, digest: str, count: int, key: str, where: str) -> list[Any]:
    """The entries of one chunk of list ``key``, which its node says holds ``count``."""
    chunk = reader.piece(digest, CHUNK_FORMAT, f"{where}, list {key}")
    items = chunk.get("entries")
    if chunk.get("list") != key or not isinstance(items, list) or len(items) != count:
        raise _bad(where, f"chunk {digest} of list {key!r} does not hold {count} entries")
    return items


def is_count(value: Any) -> TypeGuard[int]:
    """A count in a piece: an int (not a bool), not negative."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_piece(plain: bytes, fmt: str | tuple[str, ...], where: str) -> dict[str, Any]:
    formats = (fmt,) if isinstance(fmt, str) else fmt
    fmt = " or ".join(formats)
    try:
        value = load_json(plain.decode("utf-8"), where)
    except (UnicodeDecodeError, ParseError) as exc:
        raise _bad(where, f"a {fmt} piece is not valid JSON ({_reason(exc)})") from None
    if not isinstance(value, dict) or value.get("format") not in formats:
        found = value.get("format") if isinstance(value, dict) else type(value).__name__
        raise IntegrityError(
            f"{where}: expected a {fmt} piece, found {found!r}",
            hint="upgrade amlport if the repository was written by a newer one; " + _HINT,
        )
    return value


def read_root(plain: bytes, where: str) -> dict[str, Any]:
    """A checked root: a root of ROOT_FORMAT holds no overlay list (an older reader would
    take it for a full list), one of ROOT_FORMAT_OVERLAYS may."""
    root = parse_piece(plain, ROOT_FORMATS, where)
    if not isinstance(root.get("manifest"), dict) or not isinstance(root.get("lists"), dict):
        raise _bad(where, "the root lacks its manifest header or lists")
    if root["format"] == ROOT_FORMAT and any(map(is_overlay, root["lists"].values())):
        raise _bad(where, f"a root of format {ROOT_FORMAT} holds an overlay list")
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
    "ROOT_FORMAT_OVERLAYS",
    "ListRef",
    "Overlay",
    "TreeReader",
    "TreeWriter",
    "load_manifest",
    "read_root",
]
