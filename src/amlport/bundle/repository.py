"""``Repository``: a local directory holding objects, snapshots, locks and indexes.

Layout (see docs/bundle-format.md)::

    config.json                      format, version, repository id
    objects/sha256/ab/ab12…          immutable objects named by their SHA-256
    snapshots/<sha256>.json          one manifest per snapshot, written last
    locks/<random>.json              one file per lock holder
    index/<source-key>.json          incremental index per source (a cache)

Contract for writers (exporters, backup): hold ``lock(exclusive=False)`` for the whole run,
put every byte through ``put_bytes``/``put_stream``, then ``write_snapshot`` once. A crash
before the snapshot leaves only objects, which the next run reuses and ``prune`` removes if
no run ever references them. Nothing here prints; warnings go to ``on_warning``.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

from amlport.bundle import archive, files, verification
from amlport.bundle.config import RepositoryConfig
from amlport.bundle.garbage import PruneReport, collect_garbage
from amlport.bundle.index import SourceIndex
from amlport.bundle.lock import DEFAULT_STALE_AFTER, HeldLock, LockInfo, acquire, list_locks
from amlport.bundle.objects import ByteProgress, ObjectStore, StageProgress
from amlport.bundle.retention import ForgetPlan, RetentionPolicy, plan_forget
from amlport.bundle.snapshots import SnapshotInfo, SnapshotStore
from amlport.errors import AmlportError, IntegrityError, SourceNotFound, UsageError
from amlport.model.manifest import FileEntry, Manifest, check_bundle_path, format_time
from amlport.secrets import find_secrets, redact

Warn = Callable[[str], None]
CONFIG = "config.json"
_LAYOUT_DIRS = ("objects", "snapshots", "locks", "index")


def _ignore(_: str) -> None:
    return None


class Repository:
    """Open with ``Repository.open``/``init``/``open_or_init``, not the constructor."""

    def __init__(self, path: Path, config: RepositoryConfig, *, on_warning: Warn | None = None):
        self.path = path
        self.config = config
        self.objects = ObjectStore(path / "objects")
        self.snapshots = SnapshotStore(path / "snapshots")
        self._warn: Warn = on_warning or _ignore
        self._held: HeldLock | None = None

    @property
    def id(self) -> str:
        return self.config.id

    # --- opening ---------------------------------------------------------------------------

    @classmethod
    def init(cls, path: str | Path, *, on_warning: Warn | None = None) -> Repository:
        """Create a repository in a missing or empty directory."""
        root = Path(path)
        if (root / CONFIG).exists():
            raise UsageError(f"{root} is already an amlport repository", hint="open it instead")
        if root.exists() and not _is_blank(root):
            raise UsageError(
                f"{root} exists and is not an empty directory",
                hint="choose a new or empty directory for the repository",
            )
        root.mkdir(parents=True, exist_ok=True)
        for sub in ("objects/sha256", *_LAYOUT_DIRS[1:]):
            (root / sub).mkdir(parents=True, exist_ok=True)
        # Created exclusively and last: two racing inits agree on one config.
        files.create_exclusive(root / CONFIG, RepositoryConfig.new().to_bytes())
        return cls.open(root, on_warning=on_warning)

    @classmethod
    def open(cls, path: str | Path, *, on_warning: Warn | None = None) -> Repository:
        root = Path(path)
        if not root.exists():
            raise SourceNotFound(
                f"no repository at {root}", hint="create one with `amlport export --to`"
            )
        try:
            raw = (root / CONFIG).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            raise UsageError(
                f"{root} is not an amlport repository (no {CONFIG})",
                hint="give the directory an export or backup created",
            ) from None
        config = RepositoryConfig.from_bytes(raw, where=f"repository {root}")
        return cls(root, config, on_warning=on_warning)

    @classmethod
    def open_or_init(cls, path: str | Path, *, on_warning: Warn | None = None) -> Repository:
        root = Path(path)
        if (root / CONFIG).exists():
            return cls.open(root, on_warning=on_warning)
        try:
            return cls.init(root, on_warning=on_warning)
        except UsageError:
            if (root / CONFIG).exists():  # another process initialised it meanwhile
                return cls.open(root, on_warning=on_warning)
            raise

    # --- objects ---------------------------------------------------------------------------

    def has_object(self, digest: str) -> bool:
        return self.objects.has(digest)

    def put_bytes(self, data: bytes) -> str:
        return self.objects.put_bytes(data)

    def put_stream(
        self,
        stream: BinaryIO,
        *,
        expected_md5: str | None = None,
        expected_digest: str | None = None,
        progress: ByteProgress | None = None,
    ) -> tuple[str, int]:
        return self.objects.put_stream(
            stream, expected_md5=expected_md5, expected_digest=expected_digest, progress=progress
        )

    def get_bytes(self, digest: str) -> bytes:
        return self.objects.get_bytes(digest)

    def open_object(self, digest: str) -> BinaryIO:
        return self.objects.open(digest)

    def object_path(self, digest: str) -> Path:
        return self.objects.path(digest)

    # --- snapshots -------------------------------------------------------------------------

    def write_snapshot(self, manifest: Manifest) -> str:
        """Check the manifest and store it; sets ``created`` (if empty) and ``snapshot_id``.

        IntegrityError when it references an object that is not stored or is inconsistent;
        AmlportError when it contains anything that looks like a secret.
        """
        if self._held is not None:
            self._held.check()
        if not manifest.created:
            manifest.created = format_time(datetime.now(timezone.utc))
        _check_manifest(manifest)
        missing = [f for f in manifest.files if not self.objects.has(f.digest)]
        if missing:
            raise IntegrityError(
                f"snapshot not written: {len(missing)} file(s) reference objects that are not "
                f"stored, first {missing[0].path} ({missing[0].digest})",
                hint="store every file with put_bytes/put_stream before writing the snapshot",
            )
        return self.snapshots.write(manifest)

    def list_snapshots(self) -> list[SnapshotInfo]:
        return self.snapshots.infos()

    def load_snapshot(self, id_or_prefix: str) -> Manifest:
        return self.snapshots.load(id_or_prefix)

    def latest_snapshot(self, source_key: str) -> Manifest | None:
        """The newest snapshot of a source (``Manifest.source_key``), None if it has none."""
        mine = [s for s in self.list_snapshots() if s.source_key == source_key]
        return self.snapshots.load_exact(mine[-1].id) if mine else None

    def iter_files(self, manifest: Manifest) -> Iterator[tuple[FileEntry, Path]]:
        """Each file of a snapshot with the path of its object (read it with open_object)."""
        for entry in sorted(manifest.files, key=lambda f: f.path):
            yield entry, self.objects.path(entry.digest)

    def read_file(self, manifest: Manifest, bundle_path: str) -> bytes:
        entry = manifest.file(bundle_path)
        if entry is None:
            raise UsageError(f"snapshot has no file {bundle_path!r}")
        return self.objects.get_bytes(entry.digest)

    def extract_files(self, manifest: Manifest, dest: Path, *, under: str = "") -> list[Path]:
        """Write the snapshot's files below bundle path ``under`` into ``dest`` (verified)."""
        prefix = under.rstrip("/") + "/" if under else ""
        written = []
        for entry, _ in self.iter_files(manifest):
            if not entry.path.startswith(prefix):
                continue
            rel = check_bundle_path(entry.path[len(prefix) :], where=entry.path)
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            files.write_atomic(target, self.objects.get_bytes(entry.digest))
            written.append(target)
        return written

    # --- integrity and retention -----------------------------------------------------------

    def verify(
        self, snapshot_id: str | None = None, *, progress: StageProgress | None = None
    ) -> verification.VerifyReport:
        with self.lock(exclusive=False):  # a concurrent prune would look like damage
            return verification.verify(self.objects, self.snapshots, snapshot_id, progress)

    def forget(
        self,
        *,
        keep_last: int = 0,
        keep_daily: int = 0,
        keep_weekly: int = 0,
        keep_monthly: int = 0,
        keep_tags: tuple[str, ...] | list[str] = (),
        dry_run: bool = False,
    ) -> ForgetPlan:
        """Remove the snapshots no rule keeps (per source); objects stay until ``prune``."""
        policy = RetentionPolicy(keep_last, keep_daily, keep_weekly, keep_monthly, tuple(keep_tags))
        guard = contextlib.nullcontext() if dry_run else self.lock(exclusive=True)
        with guard:
            plan = plan_forget(self.list_snapshots(), policy)
            plan.dry_run = dry_run
            if not dry_run:
                for snap in plan.remove:
                    self.snapshots.delete(snap.id)
                plan.removed = True
        return plan

    def prune(self, *, dry_run: bool = False, progress: StageProgress | None = None) -> PruneReport:
        """Delete the objects no snapshot references (all snapshots must be readable)."""
        guard = contextlib.nullcontext() if dry_run else self.lock(exclusive=True)
        with guard:
            return collect_garbage(self.objects, self.snapshots, dry_run=dry_run, progress=progress)

    # --- locks, index, packs ---------------------------------------------------------------

    @contextlib.contextmanager
    def lock(
        self, exclusive: bool = True, *, stale_after: timedelta = DEFAULT_STALE_AFTER
    ) -> Iterator[HeldLock]:
        """Hold a lock for the block; re-entrant on the same Repository object."""
        if self._held is not None:
            if exclusive and not self._held.exclusive:
                raise UsageError("cannot take an exclusive lock while holding a shared one")
            yield self._held
            return
        held = acquire(
            self.path / "locks", exclusive=exclusive, stale_after=stale_after, warn=self._warn
        )
        self._held = held
        try:
            yield held
        finally:
            self._held = None
            held.release()

    def locks(self) -> list[LockInfo]:
        return list_locks(self.path / "locks")

    def source_index(self, source_key: str) -> SourceIndex:
        path = self.path / "index" / f"{source_key}.json"
        return SourceIndex(path, source_key, self.objects.has, self._warn)

    def pack(
        self, snapshot_id: str, out_path: str | Path, *, progress: StageProgress | None = None
    ) -> archive.PackReport:
        with self.lock(exclusive=False):
            return archive.pack(
                self.objects, self.snapshots, self.config, snapshot_id, Path(out_path), progress
            )

    @classmethod
    def unpack(
        cls,
        archive_path: str | Path,
        repo_path: str | Path,
        *,
        progress: StageProgress | None = None,
        on_warning: Warn | None = None,
    ) -> archive.UnpackReport:
        """Import a pack (made by ``pack``) into a repository, creating it if missing."""
        members = archive.scan(Path(archive_path))  # reject a hostile archive before writing
        repo = cls.open_or_init(repo_path, on_warning=on_warning)
        with repo.lock(exclusive=False):
            return archive.unpack_into(
                Path(archive_path), members, repo.objects, repo.snapshots, progress
            )


def _is_blank(root: Path) -> bool:
    """Empty, or holding only what an interrupted or concurrent ``init`` creates."""
    if not root.is_dir():
        return False
    return all((p.name in _LAYOUT_DIRS and p.is_dir()) or files.is_temp(p) for p in root.iterdir())


def _check_manifest(manifest: Manifest) -> None:
    """Round-trip through the reader (types, paths, digests) and refuse secret-like text."""
    raw = manifest.to_json_bytes()
    Manifest.from_json_bytes(raw, where="new snapshot")
    counts = Counter(f.path for f in manifest.files)
    dups = sorted(p for p, n in counts.items() if n > 1)
    if dups:
        raise IntegrityError(f"new snapshot lists file {dups[0]!r} more than once")
    known = set(counts)
    for asset in manifest.assets:
        refs = [*asset.files, *([asset.v2_yaml] if asset.v2_yaml else [])]
        absent = [p for p in refs if p not in known]
        if absent:
            raise IntegrityError(f"asset {asset.id} refers to {absent[0]!r}, not in files")
    text = raw.decode("utf-8")
    # Redacting is idempotent on clean text (``sig=REDACTED`` stays as it is), so a change
    # means a live value is still there.
    if redact(text) != text:
        raise AmlportError(
            "snapshot not written: its manifest holds secret-like value(s) "
            f"({', '.join(sorted(find_secrets(text)))})",
            hint="redact rewrites, warnings and attributes before recording them",
        )
