"""Snapshots: one manifest per file, ``snapshots/<sha256 of the file's bytes>.json``.

A snapshot is written last, after every object it references, and appears atomically, so a
reader never sees a snapshot whose objects are not all there. Its name is the hash of its
bytes: a hand-edited or truncated manifest no longer matches its name and is refused.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from amlport.bundle.store import RepoStore
from amlport.errors import IntegrityError, UsageError
from amlport.model.manifest import KEEPABLE, Manifest

SHORT_ID_LENGTH = 16
MAX_MANIFEST_BYTES = 256 << 20  # read whole (pack, unpack): a larger snapshot is refused
FOLDER = "snapshots/"
_ID_RE = re.compile(r"^[0-9a-f]{64}$")
_PREFIX_RE = re.compile(r"^[0-9a-f]{1,64}$")


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
    """The ``snapshots/`` folder of a store."""

    def __init__(self, store: RepoStore) -> None:
        self.store = store

    @staticmethod
    def key(snapshot_id: str) -> str:
        return f"{FOLDER}{snapshot_id}.json"

    def path(self, snapshot_id: str) -> Path:
        """The file of a snapshot in a local repository (UsageError for a remote one)."""
        return self.store.local_path(self.key(snapshot_id))

    def ids(self) -> list[str]:
        names = (n[: -len(".json")] for n in self.store.list(FOLDER) if n.endswith(".json"))
        return sorted(n for n in names if _ID_RE.match(n))

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
        *,
        keep: Iterable[str] = KEEPABLE,
        strings: dict[str, str] | None = None,
        digests: dict[str, str] | None = None,
    ) -> Manifest:
        """Read a snapshot as a stream (its entries are typed as they arrive: a 100k-file
        manifest never sits in memory as text), checked against its id at the end.
        ``keep``: the lists (and lineage) to keep; the others are checked, then dropped.
        ``strings``, ``digests``: strings already in memory to share (``Manifest.read``)."""
        return self._read(snapshot_id, keep=keep, strings=strings, digests=digests)

    def info(self, snapshot_id: str) -> SnapshotInfo:
        """What ``snapshots`` lists of one snapshot: read and checked whole, but its lists
        are counted, not kept (memory stays flat however many files it holds)."""
        tally = Tally()
        return SnapshotInfo.of(self._read(snapshot_id, keep=(), on_entry=tally), tally)

    def digests(self, snapshot_id: str) -> set[str]:
        """The objects one snapshot references, read without keeping its lists (prune)."""
        found: set[str] = set()

        def take(key: str, entry: Any) -> None:
            if key == "files":
                found.add(entry.digest)

        self._read(snapshot_id, keep=(), on_entry=take)
        return found

    def _read(self, snapshot_id: str, **options: Any) -> Manifest:
        where = f"snapshot {snapshot_id[:SHORT_ID_LENGTH]}"
        digest = hashlib.sha256()
        try:
            fh = self.store.open(self.key(snapshot_id))
        except FileNotFoundError:
            raise UsageError(f"no {where} in {self.store.display}") from None
        with fh:
            try:
                manifest = Manifest.read(fh, where=where, on_bytes=digest.update, **options)
            except IntegrityError:
                check_snapshot_hash(snapshot_id, digest.hexdigest())  # damaged, not invalid
                raise
        check_snapshot_hash(snapshot_id, digest.hexdigest())
        manifest.snapshot_id = snapshot_id
        return manifest

    def infos(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first (IntegrityError when one cannot be read)."""
        infos = [self.info(snapshot_id) for snapshot_id in self.ids()]
        return sorted(infos, key=lambda i: (i.created, i.id))

    def delete(self, snapshot_id: str) -> None:
        self.store.delete(self.key(snapshot_id))


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
