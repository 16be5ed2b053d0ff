"""Snapshots, in either repository format.

- Format 1: one manifest per file, ``snapshots/<sha256 of the file's bytes>.json``.
- Format 2: ``snapshots/<id>``, a small root naming compressed, content-addressed pieces in
  ``objects/`` (``trees.py``); the id is the name of the root's plain bytes.

A repository of format 2 reads both (a format-1 snapshot stays readable until ``repo
upgrade`` converts it) and writes format 2; one of format 1 writes format 1. A snapshot is
written last, after every object it references, and appears atomically, so a reader never
sees a snapshot whose objects are not all there. Its name is the hash of its bytes: a
hand-edited or truncated snapshot no longer matches its name and is refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from amlport.bundle import trees
from amlport.bundle.objects import ObjectStore
from amlport.bundle.store import RepoStore
from amlport.errors import IntegrityError, UsageError
from amlport.model.loadplan import SUMMARY, WHOLE, LoadPlan
from amlport.model.manifest import LISTS, Manifest
from amlport.model.manifest_codec import EntryReader

SHORT_ID_LENGTH = 16
MAX_MANIFEST_BYTES = 256 << 20  # read whole (pack, unpack): a larger snapshot is refused
FOLDER = "snapshots/"
_ID_RE = re.compile(r"^[0-9a-f]{64}\Z")
_PREFIX_RE = re.compile(r"^[0-9a-f]{1,64}\Z")


@dataclass(frozen=True)
class SnapshotInfo:
    """What ``snapshots`` lists and ``forget`` decides on, without the file lists."""

    id: str
    created: datetime
    source_key: str
    account: str | None = None
    workspace: str | None = None
    tags: tuple[str, ...] = ()
    parent: str | None = None
    assets: int = 0
    files: int = 0
    size: int = 0  # sum of the file sizes (before deduplication)
    counts: dict[str, int] = field(default_factory=dict)  # assets per kind
    upgraded_from: str | None = None  # format-2 root written by ``repo upgrade``: the old id
    complete: bool = True  # the run that wrote it finished (``stats.complete``; absent: yes)

    @property
    def short_id(self) -> str:
        return self.id[:SHORT_ID_LENGTH]

    @classmethod
    def of(cls, manifest: Manifest, tally: Tally) -> SnapshotInfo:
        """From a manifest's header and a ``Tally`` of its lists (read without keeping
        them: ``SnapshotStore.info``)."""
        return cls(
            id=manifest.snapshot_id or "",
            created=manifest.created_at,
            source_key=manifest.source_key,
            account=manifest.source.get("account"),
            workspace=manifest.source.get("workspace"),
            tags=tuple(manifest.tags),
            parent=manifest.parent,
            assets=sum(tally.kinds.values()),
            files=tally.files,
            size=tally.size,
            counts=dict(sorted(tally.kinds.items())),
            complete=manifest.stats.get("complete", True) is not False,
        )


@dataclass
class Tally:
    """Counts of a manifest's assets (per kind) and files (and their sizes)."""

    kinds: dict[str, int] = field(default_factory=dict)
    files: int = 0
    size: int = 0

    def __call__(self, key: str, entry: Any) -> None:
        if key == "assets":
            self.kinds[entry.kind] = self.kinds.get(entry.kind, 0) + 1
        elif key == "files":
            self.files += 1
            self.size += entry.size


class SnapshotStore:
    """The ``snapshots/`` folder of a store; ``version``: the format new snapshots take."""

    def __init__(self, store: RepoStore, objects: ObjectStore, *, version: int = 1) -> None:
        self.store = store
        self.objects = objects
        self.version = version
        self._formats: dict[str, int] = {}  # id -> format, as last listed
        self._bases: dict[str, _Base] = {}  # base node -> its chunks (``_overlay_files``)

    @staticmethod
    def key(snapshot_id: str) -> str:
        """The key of a format-1 snapshot."""
        return f"{FOLDER}{snapshot_id}.json"

    @staticmethod
    def root_key(snapshot_id: str) -> str:
        """The key of a format-2 snapshot's root."""
        return f"{FOLDER}{snapshot_id}"

    def format_of(self, snapshot_id: str) -> int:
        """1 or 2 (a snapshot held in both forms, by an interrupted upgrade, reads as 2)."""
        known = self._formats.get(snapshot_id)
        if known is None:
            known = 2 if self.store.exists(self.root_key(snapshot_id)) else 1
        return known

    def path(self, snapshot_id: str) -> Path:
        """The file of a snapshot in a local repository (UsageError for a remote one)."""
        key = self.key if self.format_of(snapshot_id) == 1 else self.root_key
        return self.store.local_path(key(snapshot_id))

    def format1_ids(self) -> list[str]:
        """The snapshots held as format-1 files (``repo upgrade`` converts them)."""
        names = (n[: -len(".json")] for n in self.store.list(FOLDER) if n.endswith(".json"))
        return sorted(n for n in names if _ID_RE.match(n))

    def info_of_format1(self, snapshot_id: str) -> SnapshotInfo:
        tally = Tally()
        manifest = self._read_format1(snapshot_id, SUMMARY, on_entry=tally)
        return SnapshotInfo.of(manifest, tally)

    def delete_format1(self, snapshot_id: str) -> None:
        self.store.delete(self.key(snapshot_id))

    def ids(self) -> list[str]:
        formats: dict[str, int] = {}
        for name in self.store.list(FOLDER):
            stem, dot, ext = name.partition(".")
            if not _ID_RE.match(stem) or (dot and ext != "json"):
                continue
            formats[stem] = max(formats.get(stem, 0), 1 if dot else 2)
        self._formats = formats
        return sorted(formats)

    def write(
        self,
        manifest: Manifest,
        *,
        check: Callable[[str, Any], None] | None = None,
        check_text: Callable[[str], None] | None = None,
    ) -> str:
        """Store a manifest (with ``created`` set); sets ``snapshot_id``, returns it.

        Streamed: the canonical JSON is hashed and staged chunk by chunk (``iter_json``), so
        memory does not grow with the manifest's text. ``check``/``check_text`` see every
        value and chunk first; when one raises, nothing is stored.
        """
        if self.version >= 2:
            return self.write_tree(manifest, check=check, check_text=check_text)
        sha = hashlib.sha256()  # the id names the bytes, which leave snapshot_id out
        with self.store.staging(FOLDER) as stage:
            for chunk in manifest.iter_json(check):
                if check_text is not None:
                    check_text(chunk)
                data = chunk.encode("utf-8")
                sha.update(data)
                stage.write(data)
            snapshot_id = sha.hexdigest()
            # Identical bytes give an identical name; an existing file is already this one.
            stage.commit(self.key(snapshot_id), f"sha256:{snapshot_id}")
        manifest.snapshot_id = snapshot_id
        return snapshot_id

    def write_tree(
        self,
        manifest: Manifest,
        *,
        check: Callable[[str, Any], None] | None = None,
        check_text: Callable[[str], None] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """Store a manifest in format 2: its pieces first, its root last (``trees.py``)."""
        writer = trees.TreeWriter(
            self.objects, check=check, check_text=check_text, bases=self._lists_of(manifest.parent)
        )
        with self.objects.batch():  # the pieces (or their packs and index) durable, then the root
            plain = writer.write(manifest, extra=extra)
        codec = self.objects.codec
        snapshot_id = codec.meta_name(plain)
        # Identical roots give an identical name; an existing root is already this one.
        self.store.create(self.root_key(snapshot_id), codec.pack_meta(plain, snapshot_id))
        self._formats[snapshot_id] = 2
        manifest.snapshot_id = snapshot_id
        return snapshot_id

    def write_root_again(
        self,
        snapshot_id: str,
        header: dict[str, Any],
        *,
        check_text: Callable[[str], None] | None = None,
    ) -> str:
        """A new format-2 root naming the pieces of ``snapshot_id``'s root, with the header
        fields ``header`` replaced (a backup decided from its listing: docs/design/0007).
        Each list node and header piece it names must be stored (IntegrityError)."""
        root = self.read_root(snapshot_id)
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        named = list(trees.piece_refs(root, where).values())
        named += [trees.list_digest(ref, key, where) for key, ref in root["lists"].items()]
        bases = (trees.base_node(r) for r in root["lists"].values() if trees.is_overlay(r))
        named += [b for b in bases if b is not None]  # an overlay's base: needed as much
        missing = [d for d in named if not self.objects.has(d)]
        if missing:
            raise IntegrityError(
                f"{where} names piece {missing[0]}, which is not stored",
                hint="run `amlport verify`, then back up with --force",
            )
        root.pop("upgraded_from", None)  # written by ``repo upgrade``: not this root
        root["manifest"].update(header)
        if check_text is not None:
            check_text(trees.dumps(root["manifest"]))
        plain = trees.dumps(root).encode("utf-8")
        codec = self.objects.codec
        new_id = codec.meta_name(plain)
        self.store.create(self.root_key(new_id), codec.pack_meta(plain, new_id))
        self._formats[new_id] = 2
        return new_id

    def _lists_of(self, parent: str | None) -> dict[str, Any] | None:
        """The lists of a format-2 parent, which the new snapshot's lists may overlay (none
        when it is gone, of format 1 or unreadable: the lists are then written whole)."""
        if parent is None or not _ID_RE.match(parent) or self.format_of(parent) != 2:
            return None
        try:
            return self.read_root(parent)["lists"]
        except (IntegrityError, UsageError):
            return None

    def read_root(self, snapshot_id: str) -> dict[str, Any]:
        """The checked root of a format-2 snapshot."""
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        try:
            stored = self.store.read(self.root_key(snapshot_id), limit=trees.MAX_ROOT_BYTES)
        except FileNotFoundError:
            raise UsageError(f"no {where} in {self.store.display}") from None
        codec = self.objects.codec
        plain = codec.unpack_meta(stored, snapshot_id, where=where, limit=trees.MAX_ROOT_BYTES)
        check_snapshot_hash(snapshot_id, codec.meta_name(plain))
        return trees.read_root(plain, where)

    def pieces(self, snapshot_id: str, seen: set[str] | None = None) -> tuple[set[str], set[str]]:
        """(data objects, metadata objects) a snapshot references. Format 2: pieces whose
        name is in ``seen`` (shared across calls) are not read again, nor are the data
        objects their chunks name (the caller has them from the first read)."""
        if self.format_of(snapshot_id) == 1:
            return self.digests(snapshot_id), set()
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        root = self.read_root(snapshot_id)
        reader = trees.TreeReader(self.objects, seen=seen)
        data: set[str] = set()
        lists = root["lists"]
        for digest in trees.piece_refs(root, where).values():
            if seen is None or digest not in seen:
                self.objects.get_meta(digest, where=where)  # present and whole
                reader.pieces.add(digest)
                if seen is not None:
                    seen.add(digest)
        for key in trees.ALL_LISTS:
            if key not in lists:
                continue
            node = trees.list_digest(lists[key], key, where)
            if seen is not None and node in seen:
                continue
            if key == "files" and trees.is_overlay(lists[key]):
                data |= self._overlay_files(lists[key], where, reader)
            else:
                for entry in reader.entries(lists[key], key, where, skip_seen=True):
                    if key == "files":
                        data.update(_file_digests((entry,)))
            if seen is not None:
                seen.add(node)
        return data, reader.pieces

    def _overlay_files(self, ref: Any, where: str, reader: trees.TreeReader) -> set[str]:
        """The data objects of an overlay files list, exactly: its base's, but for those
        only the entries its overlay removed named, and those its overlay puts. (A file
        changed since the base no longer keeps its old object alive once the base's own
        snapshot is forgotten.)

        Each chunk of the base is read once per walk (``reader.seen``, shared): a chunk in
        ``seen`` was read whole by a list before, so its objects are live already and it is
        not read again; a chunk read here is added to ``seen`` unless the overlay removed
        one of its entries (a full list naming it must still read it). The base's nodes
        (its chunks in order) are kept for the next overlay of the same base (``_bases``)."""
        overlay = reader.overlay(ref, "files", where)
        known = self._bases.get(overlay.base)
        if known is None:
            walk = trees.TreeReader(self.objects)
            full = {"node": overlay.base, "count": overlay.base_count}
            known = _Base(walk.node(full, "files", where), frozenset(walk.pieces))
            while len(self._bases) >= _BASES_KEPT:
                del self._bases[next(iter(self._bases))]
            self._bases[overlay.base] = known
        reader.pieces |= known.nodes
        seen = reader.seen if reader.seen is not None else set()
        removed = {i for at, n, _ in overlay.edits for i in range(at, at + n)}
        found = _file_digests(e for _, _, items in overlay.edits for e in items)
        start = 0
        for digest, n in known.chunks:
            if digest not in seen:  # else read whole before: its objects are live
                items = trees.chunk_entries(reader, digest, n, "files", where)
                kept = [e for k, e in enumerate(items, start) if k not in removed]
                if len(kept) == n:
                    seen.add(digest)
                found |= _file_digests(kept)
            start += n
        return found

    def import_raw(self, snapshot_id: str, raw: bytes) -> bool:
        """Store a snapshot file copied from elsewhere, byte for byte; False if present."""
        check_snapshot_bytes(snapshot_id, raw)
        return self.store.create(self.key(snapshot_id), raw)

    def resolve(self, id_or_prefix: str) -> str:
        """The full id for an id or a unique prefix; UsageError when none or several match."""
        prefix = id_or_prefix.strip().lower()
        if not _PREFIX_RE.match(prefix):
            raise UsageError(
                f"{id_or_prefix!r} is not a snapshot id",
                hint="give the id or a prefix of it in hex, as `amlport snapshots` lists",
            )
        matches = [i for i in self.ids() if i.startswith(prefix)]
        if not matches:
            raise UsageError(
                f"no snapshot {prefix!r} in {self.store.display}",
                hint="list the snapshots with `amlport snapshots`",
            )
        if len(matches) > 1:
            shown = ", ".join(m[:SHORT_ID_LENGTH] for m in matches[:5])
            raise UsageError(
                f"snapshot prefix {prefix!r} is ambiguous: {len(matches)} match ({shown})",
                hint="give more characters of the id",
            )
        return matches[0]

    def load(self, id_or_prefix: str) -> Manifest:
        return self.load_exact(self.resolve(id_or_prefix))

    def read_raw(self, snapshot_id: str) -> bytes:
        """The snapshot file's bytes, checked against the id."""
        try:
            raw = self.store.read(self.key(snapshot_id), limit=MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
            raise UsageError(f"no {where} in {self.store.display}") from None
        check_snapshot_bytes(snapshot_id, raw)
        return raw

    def load_exact(
        self,
        snapshot_id: str,
        plan: LoadPlan = WHOLE,
        *,
        pieces: set[str] | None = None,
        on_entry: Callable[[str, Any], None] | None = None,
    ) -> Manifest:
        """Read a snapshot as a stream (its entries are typed as they arrive: a 100k-file
        manifest never sits in memory as text), checked against its id at the end.
        ``plan``: the lists (and lineage) to keep, the strings to share (``LoadPlan``); the
        lists not kept are checked, then dropped.
        ``pieces``: gets the names of the format-2 pieces read (``verify`` counts them).
        ``on_entry``: shown each entry of the long lists as it is read, kept or not."""
        return self._read(snapshot_id, plan, pieces=pieces, on_entry=on_entry)

    def info(self, snapshot_id: str) -> SnapshotInfo:
        """What ``snapshots`` lists of one snapshot: read and checked whole, but its lists
        are counted, not kept (memory stays flat however many files it holds)."""
        if self.format_of(snapshot_id) == 2:
            return self._info_of_root(snapshot_id)
        return self.info_of_format1(snapshot_id)

    def _info_of_root(self, snapshot_id: str) -> SnapshotInfo:
        """Format 2: the root holds the header and the lists' totals; nothing else is read."""
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        root = self.read_root(snapshot_id)
        entries = EntryReader(where, SUMMARY)
        for key in LISTS:
            entries.start(key)
        header = dict(root["manifest"])
        header.update(lineage={}, warnings=[])
        manifest = entries.finish(header)
        manifest.snapshot_id = snapshot_id
        lists = root["lists"]
        files, assets = lists.get("files"), lists.get("assets")
        kinds = assets.get("kinds") if isinstance(assets, dict) else None
        counts = [files.get("count"), files.get("size")] if isinstance(files, dict) else []
        if (
            not isinstance(kinds, dict)
            or not all(trees.is_count(v) for v in [*counts, *kinds.values()])
            or len(counts) != 2
        ):
            raise IntegrityError(
                f"{where}: the root's list totals are malformed",
                hint="run `amlport verify`, then forget this snapshot",
            )
        files_count, files_size = (c if isinstance(c, int) else 0 for c in counts)  # checked
        tally = Tally(
            kinds={str(k): v for k, v in kinds.items()}, files=files_count, size=files_size
        )
        origin = root.get("upgraded_from")
        info = SnapshotInfo.of(manifest, tally)
        if isinstance(origin, str):
            info = dataclasses.replace(info, upgraded_from=origin)
        return info

    def digests(self, snapshot_id: str) -> set[str]:
        """The objects one snapshot references, read without keeping its lists (prune)."""
        found: set[str] = set()

        def take(key: str, entry: Any) -> None:
            if key == "files":
                found.add(entry.digest)

        self._read(snapshot_id, SUMMARY, on_entry=take)
        return found

    def _read(
        self,
        snapshot_id: str,
        plan: LoadPlan = WHOLE,
        *,
        on_entry: Callable[[str, Any], None] | None = None,
        pieces: set[str] | None = None,
    ) -> Manifest:
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        if self.format_of(snapshot_id) == 2:
            root = self.read_root(snapshot_id)
            reader = trees.TreeReader(self.objects)
            entries = EntryReader(where, plan, on_entry=on_entry)
            lineage = plan.keeps("lineage")
            try:
                manifest = trees.load_manifest(root, reader, entries, lineage=lineage)
            finally:
                if pieces is not None:
                    pieces |= reader.pieces
            manifest.snapshot_id = snapshot_id
            return manifest
        return self._read_format1(snapshot_id, plan, on_entry=on_entry)

    def _read_format1(
        self,
        snapshot_id: str,
        plan: LoadPlan = WHOLE,
        *,
        on_entry: Callable[[str, Any], None] | None = None,
    ) -> Manifest:
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        digest = hashlib.sha256()
        try:
            fh = self.store.open(self.key(snapshot_id))
        except FileNotFoundError:
            raise UsageError(f"no {where} in {self.store.display}") from None
        with fh:
            try:
                manifest = Manifest.read(
                    fh, where=where, on_bytes=digest.update, plan=plan, on_entry=on_entry
                )
            except IntegrityError:
                check_snapshot_hash(snapshot_id, digest.hexdigest())  # damaged, not invalid
                raise
        check_snapshot_hash(snapshot_id, digest.hexdigest())
        manifest.snapshot_id = snapshot_id
        return manifest

    def infos(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first (IntegrityError when one cannot be read). A
        format-1 snapshot that an interrupted ``repo upgrade`` already wrote in format 2 is
        listed once, as its format-2 root."""
        infos = [self.info(snapshot_id) for snapshot_id in self.ids()]
        converted = {i.upgraded_from for i in infos if i.upgraded_from}
        infos = [i for i in infos if i.id not in converted]
        return sorted(infos, key=lambda i: (i.created, i.id))

    def delete(self, snapshot_id: str) -> None:
        if self.format_of(snapshot_id) == 2:
            self.store.delete(self.root_key(snapshot_id))
        self.delete_format1(snapshot_id)  # the format-1 file, if any


_BASES_KEPT = 16  # bases of overlay files lists whose chunks ``_overlay_files`` keeps


@dataclass
class _Base:
    """The chunks of the base of an overlay files list, in order ((digest, entries)), and
    its nodes."""

    chunks: list[tuple[str, int]]
    nodes: frozenset[str]


def _file_digest(entry: Any) -> str | None:
    found = entry.get("digest") if isinstance(entry, dict) else None
    return found if isinstance(found, str) else None


def _file_digests(entries: Iterable[Any]) -> set[str]:
    return {d for d in map(_file_digest, entries) if d is not None}


def check_snapshot_bytes(snapshot_id: str, raw: bytes) -> None:
    """IntegrityError unless ``raw`` hashes to ``snapshot_id`` (truncation, hand edits)."""
    check_snapshot_hash(snapshot_id, hashlib.sha256(raw).hexdigest())


def check_snapshot_hash(snapshot_id: str, actual: str) -> None:
    if actual != snapshot_id:
        raise IntegrityError(
            f"snapshot {snapshot_id[:SHORT_ID_LENGTH]} is damaged: its file hashes to "
            f"{actual[:SHORT_ID_LENGTH]} (truncated or edited)",
            hint="restore snapshots/<id>.json from a copy, or forget this snapshot",
        )
