"""Where a repository's files live: the small store interface under ``Repository``.

A store holds named byte strings (*keys*: relative ``/``-separated names such as
``config.json``, ``objects/sha256/ab/ab12…``, ``snapshots/<id>.json``, ``locks/<r>.json``,
``index/<key>.json``) and gives every higher layer (objects, snapshots, locks, index) the few
operations it needs, each atomic: a reader sees a whole value or none.

- ``LocalStore``: a directory (temp file + fsync + rename, ``files.py``), the original layout.
- ``AzureStore`` (``azure_store.py``): blobs of one container, under an optional prefix.

Missing keys raise ``FileNotFoundError`` from every store, so callers treat both alike.

Nothing in a repository is trusted to be what its name says (docs/design/0004): a store
reads only regular files (a local store never follows a symlink nor waits on a FIFO), and
never more bytes than the caller says the value may hold (``limit``); IntegrityError names
what is refused.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, cast

from amlport.bundle import files
from amlport.errors import AmlportError, IntegrityError, UsageError
from amlport.streams import write_sliced


@dataclass(frozen=True)
class Stored:
    """A value as read, with what identifies this version of it (an etag; None locally)."""

    data: bytes
    modified: datetime
    version: str | None = None


class Staging(ABC):
    """Bytes of an object whose name is known only at the end (it is their hash)."""

    @abstractmethod
    def write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, key: str, digest: str) -> None:
        """Publish under ``key`` (kept as is when it exists). ``digest``: the SHA-256 the
        caller computed, for stores that re-check what they send."""


class RepoStore(ABC):
    """The operations a repository needs from its storage (see the module docstring)."""

    #: pid checks make sense for locks (every holder of a local folder shares the host's pids)
    same_host_pids: bool = False

    @property
    @abstractmethod
    def display(self) -> str:
        """Where the repository is, for messages (never holds a credential)."""

    @property
    def local_root(self) -> Path | None:
        """The directory of a local store; None for remote ones."""
        return None

    def local_path(self, key: str) -> Path:
        """The file of ``key`` in a local store (UsageError for a remote one)."""
        raise UsageError(
            f"repository {self.display} is not a local folder: its files have no path",
            hint="read objects with open_object/get_bytes instead",
        )

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (remote stores)."""

    # -- the repository as a whole --

    @abstractmethod
    def root_exists(self) -> bool:
        """Whether the place (folder, container) exists at all."""

    @abstractmethod
    def prepare_init(self) -> None:
        """Create the place if missing; UsageError unless it is empty (``init``)."""

    # -- small values --

    @abstractmethod
    def read(self, key: str, *, limit: int) -> bytes:
        """The whole value; IntegrityError when it holds more than ``limit`` bytes."""

    @abstractmethod
    def read_stored(self, key: str, *, limit: int) -> Stored: ...

    @abstractmethod
    def write(self, key: str, data: bytes) -> None:
        """Create or replace ``key`` atomically."""

    def write_chunks(self, key: str, chunks: Iterable[bytes]) -> None:
        """``write`` of the joined chunks; a store that can streams them instead."""
        self.write(key, b"".join(chunks))

    @abstractmethod
    def create(self, key: str, data: bytes) -> bool:
        """Create ``key`` unless it exists (two racing creators: one wins); True if created."""

    @abstractmethod
    def put_once(self, key: str, data: bytes) -> bool:
        """Store write-once content (an object): nothing happens when ``key`` exists. True
        when this call stored it."""

    @contextlib.contextmanager
    def synced_together(self) -> Iterator[None]:
        """Objects written inside (``put_once``, ``staging``) may be made durable together
        when the block ends, however it ends, rather than one by one. Whatever records them
        (an index, a snapshot) must be written after the block."""
        yield

    @abstractmethod
    def replace_existing(self, key: str, data: bytes) -> bool:
        """Replace ``key`` only if it still exists (a lock refresh); False when it is gone."""

    @abstractmethod
    def delete(self, key: str, *, version: str | None = None) -> bool:
        """Remove ``key`` (gone already counts as removed). With ``version``, only that
        version: False when ``key`` was changed since it was read with that version."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """Bytes of ``key``, None when it does not exist."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def list(self, prefix: str) -> Iterator[str]:
        """Keys below the folder ``prefix`` (``"snapshots/"``), relative to it, in name
        order; writes in progress are never listed."""

    def not_regular(self, prefix: str) -> Iterator[str]:
        """Names directly below the folder ``prefix`` that ``list`` leaves out because they
        are not regular files (a FIFO, a symbolic link, a directory…), in name order: only a
        local folder holds such things. A reader for whom every value of a folder counts (the
        pack index) names them as unreadable instead of not seeing them."""
        return iter(())

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        """``list`` with each value's size (a remote store has both in one listing)."""
        for name in self.list(prefix):
            size = self.size(prefix + name)
            if size is not None:  # removed meanwhile
                yield name, size

    # -- objects (any size) --

    @abstractmethod
    def open(self, key: str, *, limit: int | None = None) -> BinaryIO:
        """A stream of ``key``'s bytes, read as the caller goes (bounded memory);
        IntegrityError when the value holds more than ``limit`` bytes."""

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        """At most ``length`` bytes of ``key`` from ``offset`` (fewer: the value ends
        before); FileNotFoundError when it is missing. A pack's object (``packs.py``)."""
        with self.open(key) as fh:
            if fh.seekable():
                fh.seek(offset)
            else:
                skip = offset
                while skip > 0 and (piece := fh.read(min(skip, 1 << 20))):
                    skip -= len(piece)
            return _read_up_to(fh, length)

    @abstractmethod
    def staging(
        self, folder: str, hint: str | None = None
    ) -> contextlib.AbstractContextManager[Staging]:
        """Where ``ObjectStore.put_stream`` writes before it knows the name. ``hint``: the key
        the caller expects (a known digest), so a store may write there directly; it is still
        committed only when the hash matches. Nothing is visible if the block raises."""

    def temp_files(self, prefix: str) -> Iterator[Path]:
        """Writes in progress or left by a crash below ``prefix`` (local stores only)."""
        return iter(())

    def sweep_temp(self, prefix: str, older_than_s: float) -> int:
        """Remove the temp files below ``prefix`` older than ``older_than_s``; how many."""
        return 0


# --- a local directory -----------------------------------------------------------------------


class LocalStore(RepoStore):
    """A repository folder: every write is a temp file, fsync, rename (``files.py``)."""

    same_host_pids = True

    def __init__(self, root: Path) -> None:
        self.root = root
        # Objects written in a ``synced_together`` block, not yet durable: their folders (and,
        # where one ``syncfs`` cannot make them durable, their files); None: each at once.
        self._unsynced: set[Path] | None = None
        self._unsynced_files: set[Path] | None = None
        self._depth = 0  # of nested ``synced_together`` blocks
        self._unsynced_lock = threading.Lock()
        # Folders (keys ending in ``/``) seen to be real directories, not links: each is
        # checked once per store, not once per value read or written.
        self._real_folders: set[str] = set()
        # The layout's folders are checked when the store is opened, not when first used: a
        # reader that finds every object in a pack never opens ``objects/`` (a link there
        # went unnoticed by ``verify``, design 0007 "Packs on by default").
        for folder in _CHECKED_AT_OPEN:
            self._refuse_linked_folders(folder)

    @property
    def display(self) -> str:
        return str(self.root)

    @property
    def local_root(self) -> Path:
        return self.root

    def local_path(self, key: str) -> Path:
        """The file of ``key``; IntegrityError when a folder on the way (below the root) is a
        symbolic link (followed, it would read and write outside the repository) or anything
        else that is not a folder (a file in its place: a write below it was an internal
        error, a read found nothing)."""
        self._refuse_linked_folders(key)
        return self.root / key

    def _refuse_linked_folders(self, key: str) -> None:
        folder = ""
        for part in key.split("/")[:-1]:
            folder = f"{folder}{part}/"
            if folder in self._real_folders:
                continue
            path = self.root / folder
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return  # not there yet: a write makes it a real folder
            if stat.S_ISLNK(st.st_mode):
                raise IntegrityError(
                    f"{path} is a symbolic link, not a folder of the repository",
                    hint="a repository holds only folders and files amlport wrote: replace "
                    "the link by the folder it points to, then run `amlport verify`",
                )
            if not stat.S_ISDIR(st.st_mode):
                what = "a file" if stat.S_ISREG(st.st_mode) else "a special file"
                raise IntegrityError(
                    f"{path} is {what} where a folder of the repository belongs",
                    hint="a repository holds only folders and files amlport wrote: move it "
                    "away, then run `amlport verify`",
                )
            self._real_folders.add(folder)

    def root_exists(self) -> bool:
        return self.root.exists()

    def prepare_init(self) -> None:
        if self.root.exists() and not _is_blank(self.root):
            raise UsageError(
                f"{self.root} exists and is not an empty directory",
                hint="choose a new or empty directory for the repository",
            )
        self.root.mkdir(parents=True, exist_ok=True)
        for sub in LAYOUT_DIRS:
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        (self.root / "objects" / "sha256").mkdir(parents=True, exist_ok=True)

    def read(self, key: str, *, limit: int) -> bytes:
        return files.read_regular(self.local_path(key), limit)

    def read_stored(self, key: str, *, limit: int) -> Stored:
        path = self.local_path(key)
        with files.open_regular(path, limit) as fh:
            mtime = os.fstat(fh.fileno()).st_mtime
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise files.TooLarge(str(path), len(data), limit)
        return Stored(data, datetime.fromtimestamp(mtime, timezone.utc))

    def write(self, key: str, data: bytes) -> None:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, data)

    def write_chunks(self, key: str, chunks: Iterable[bytes]) -> None:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        files.write_atomic(path, chunks)

    def create(self, key: str, data: bytes) -> bool:
        path = self.local_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        return files.create_exclusive(path, data)

    def put_once(self, key: str, data: bytes) -> bool:
        path = self.local_path(key)
        if files.regular_size(path) == len(data):  # write once: a whole object stays as is
            return False
        # Nothing, or something that is not this object (cut short, a FIFO, a link): the
        # object takes its place.
        now = self._sync_now(path.parent)
        with files.temp_file(path.parent) as (tmp, fh):
            fh.write(data)
            self._finish(fh, now, path)
        with _object_slot(path):
            files.publish(tmp, path, sync_dir=now)
        return True

    def _finish(self, fh: BinaryIO, now: bool, path: Path) -> None:
        """The end of an object's temp file: fsynced now, or with the block's others."""
        if now:
            files.finish(fh)
            return
        fh.flush()
        with self._unsynced_lock:
            if self._unsynced_files is not None:
                self._unsynced_files.add(path)

    @contextlib.contextmanager
    def synced_together(self) -> Iterator[None]:
        """The objects written inside are made durable together when the block ends (however
        it ends), not one by one: their bytes and their renames, with one ``syncfs`` of the
        repository's filesystem where the system has it (Linux), else one fsync per object
        and one per object folder. An export of many small files writes thousands of objects
        into a few hundred folders; an fsync each was a third of its system time
        (docs/design/0007, *First backup and memory*). Whatever names these objects (an
        index, a snapshot root) is written after the block, so it never names an object that
        a power loss could take back. Blocks nest: the end of each makes every object written
        so far durable (a snapshot's pieces, written in a block of their own, come before
        its root whatever block encloses the write)."""
        with self._unsynced_lock:
            if self._depth == 0:
                self._unsynced = set()
                self._unsynced_files = None if _SYNCFS is not None else set()
            self._depth += 1
        try:
            yield
        finally:
            with self._unsynced_lock:
                self._depth -= 1
                folders, written = self._unsynced or set(), self._unsynced_files
                still = self._depth > 0
                self._unsynced = set() if still else None
                self._unsynced_files = None if written is None or not still else set()
            self._make_durable(folders, written)

    def _make_durable(self, folders: set[Path], written: set[Path] | None) -> None:
        """``written`` None: no file list was kept, one ``syncfs`` was expected to do.
        ``folders``: where objects were renamed (none: nothing was written)."""
        if not folders:
            return
        if written is None and sync_filesystem(self.root):
            return
        for path in sorted(written if written is not None else folders_files(folders)):
            _fsync_file(path)
        for folder in sorted(folders):
            files.fsync_dir(folder)

    def _sync_now(self, folder: Path) -> bool:
        """Whether a rename into ``folder`` is fsynced now (else: at the end of the block)."""
        with self._unsynced_lock:
            if self._unsynced is None:
                return True
            self._unsynced.add(folder)
            return False

    def replace_existing(self, key: str, data: bytes) -> bool:
        path = self.local_path(key)
        if not path.exists():
            return False
        files.write_atomic(path, data)
        return True

    def delete(self, key: str, *, version: str | None = None) -> bool:
        path = self.local_path(key)
        with _object_slot(path):  # a directory in a pack's place: prune names it
            path.unlink(missing_ok=True)
        files.fsync_dir(path.parent)
        return True

    def size(self, key: str) -> int | None:
        return files.regular_size(self.local_path(key))  # a link or a FIFO is not a value

    def list(self, prefix: str) -> Iterator[str]:
        base = self.local_path(prefix)
        if not base.is_dir():
            return
        found = (
            p.relative_to(base).as_posix()
            for p in base.rglob("*")
            if not files.is_temp(p) and files.regular_size(p) is not None
        )
        yield from sorted(found)

    def not_regular(self, prefix: str) -> Iterator[str]:
        try:
            entries = list(os.scandir(self.local_path(prefix)))
        except (FileNotFoundError, NotADirectoryError):
            return
        odd = (e.name for e in entries if not e.is_file(follow_symlinks=False))
        yield from sorted(n for n in odd if not n.startswith(files.TEMP_PREFIX))

    def open(self, key: str, *, limit: int | None = None) -> BinaryIO:
        return files.open_regular(self.local_path(key), limit)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        with files.open_regular(self.local_path(key), None) as fh:
            return os.pread(fh.fileno(), length, offset) if length else b""

    @contextlib.contextmanager
    def staging(self, folder: str, hint: str | None = None) -> Iterator[Staging]:
        with files.temp_file(self.local_path(folder)) as (tmp, fh):
            stage = FileStaging(fh)
            yield stage
            fh.flush()
        # Whatever ends this (a Ctrl-C or SIGTERM during the fsync of a large object), the
        # temp file goes: after the publish its name no longer exists.
        try:
            if stage.key is None:  # the caller decided not to keep it
                return
            target = self.local_path(stage.key)
            if files.regular_size(target) == stage.size:  # already stored (see put_once)
                return
            target.parent.mkdir(parents=True, exist_ok=True)
            now = self._sync_now(target.parent)
            if now:
                _fsync_file(tmp)
            else:
                with self._unsynced_lock:
                    if self._unsynced_files is not None:
                        self._unsynced_files.add(target)
            with _object_slot(target):
                files.publish(tmp, target, sync_dir=now)
        finally:
            tmp.unlink(missing_ok=True)

    def temp_files(self, prefix: str) -> Iterator[Path]:
        base = self.local_path(prefix)
        if base.is_dir():
            yield from (p for p in base.rglob(f"{files.TEMP_PREFIX}*") if p.is_file())

    def sweep_temp(self, prefix: str, older_than_s: float) -> int:
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.temp_files(prefix):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class FileStaging(Staging):
    """An object's bytes written to an open file (a temp file beside its folder, or a spool)
    until the caller names them: ``key`` is None until ``commit``; the store publishes."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.key: str | None = None
        self.size = 0

    def write(self, data: bytes) -> None:
        write_sliced(self._fh, data)  # 256 KiB write(2) calls (streams.WRITE_SLICE)
        self.size += len(data)

    def commit(self, key: str, digest: str) -> None:
        self.key = key  # published by the store once the file is finished


LAYOUT_DIRS = ("objects", "snapshots", "locks", "index")
# Every folder of the layout (and the folders above them), checked when a store is opened
_CHECKED_AT_OPEN = ("objects/sha256/", "packs/index/", "snapshots/", "locks/", "index/", "keys/")


def _read_up_to(fh: BinaryIO, length: int) -> bytes:
    """Up to ``length`` bytes of a stream (fewer only at its end)."""
    parts, left = [], length
    while left > 0 and (piece := fh.read(left)):
        parts.append(piece)
        left -= len(piece)
    return b"".join(parts)


def _load_syncfs() -> Callable[[int], int] | None:
    """``syncfs(2)`` from the C library (Linux); None where the system has none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        func = libc.syncfs
    except (OSError, AttributeError):
        return None
    func.argtypes, func.restype = [ctypes.c_int], ctypes.c_int
    return cast("Callable[[int], int]", func)


_SYNCFS = _load_syncfs()


def sync_filesystem(folder: Path) -> bool:
    """Make every write to the filesystem holding ``folder`` durable with one ``syncfs``
    (file bytes, renames and folders alike); False when that could not be done."""
    if _SYNCFS is None:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return False
    try:
        return _SYNCFS(fd) == 0
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    """fsync a written file by its name (gone meanwhile, a prune's doing: nothing to do)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def folders_files(folders: set[Path]) -> list[Path]:
    """No file list was kept (``syncfs`` was expected to work): every file of ``folders``."""
    return [p for folder in folders for p in folder.iterdir() if p.is_file()]


@contextlib.contextmanager
def _object_slot(path: Path) -> Iterator[None]:
    """Publishing (or deleting) a value at ``path``: a directory in its place is an
    IntegrityError."""
    try:
        yield
    except IsADirectoryError:
        raise IntegrityError(
            f"{path} is a directory where a repository file belongs",
            hint="a repository holds only regular files amlport wrote: remove it, "
            "then run `amlport verify`",
        ) from None


def _is_blank(root: Path) -> bool:
    """Empty, or holding only what an interrupted or concurrent ``init`` creates."""
    if not root.is_dir():
        return False
    dirs = (*LAYOUT_DIRS, "keys")  # keys/: written before config.json by an encrypted init
    return all((p.name in dirs and p.is_dir()) or files.is_temp(p) for p in root.iterdir())


# --- a store a run may only read --------------------------------------------------------------


class RepositoryWriteRefused(AmlportError):
    """A write to a repository opened for reading only (a dry run): a bug of the command
    that tried it (nothing is written, the run stops, exit 2)."""


class ReadingStore(RepoStore):
    """``inner`` for a run that only reads (``Repository.open(..., reading=...)``: a dry run
    of import, restore and ``repo upgrade``): every read is ``inner``'s, every write raises
    ``RepositoryWriteRefused``, so such a run cannot write the repository by construction, not
    even a lock file (``lock.acquire`` takes its shared lock without one, F session 8;
    docs/design/0004, "Lock files")."""

    def __init__(self, inner: RepoStore, reason: str) -> None:
        self.inner = inner
        self.reason = reason  # "a dry run": what the refusals and the lock say
        self.same_host_pids = inner.same_host_pids

    def _refused(self, key: str) -> RepositoryWriteRefused:
        return RepositoryWriteRefused(
            f"{self.reason} tried to write {self.display.rstrip('/')}/{key}: nothing was written"
        )

    @property
    def display(self) -> str:
        return self.inner.display

    @property
    def local_root(self) -> Path | None:
        return self.inner.local_root

    def local_path(self, key: str) -> Path:
        return self.inner.local_path(key)

    def close(self) -> None:
        self.inner.close()

    def root_exists(self) -> bool:
        return self.inner.root_exists()

    def prepare_init(self) -> None:
        raise self._refused("config.json")

    def read(self, key: str, *, limit: int) -> bytes:
        return self.inner.read(key, limit=limit)

    def read_stored(self, key: str, *, limit: int) -> Stored:
        return self.inner.read_stored(key, limit=limit)

    def write(self, key: str, data: bytes) -> None:
        raise self._refused(key)

    def write_chunks(self, key: str, chunks: Iterable[bytes]) -> None:
        raise self._refused(key)

    def create(self, key: str, data: bytes) -> bool:
        raise self._refused(key)

    def put_once(self, key: str, data: bytes) -> bool:
        raise self._refused(key)

    def replace_existing(self, key: str, data: bytes) -> bool:
        raise self._refused(key)

    def delete(self, key: str, *, version: str | None = None) -> bool:
        raise self._refused(key)

    def size(self, key: str) -> int | None:
        return self.inner.size(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def not_regular(self, prefix: str) -> Iterator[str]:
        return self.inner.not_regular(prefix)

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        return self.inner.list_sizes(prefix)

    def open(self, key: str, *, limit: int | None = None) -> BinaryIO:
        return self.inner.open(key, limit=limit)

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        return self.inner.read_range(key, offset, length)

    def staging(
        self, folder: str, hint: str | None = None
    ) -> contextlib.AbstractContextManager[Staging]:
        raise self._refused(hint or folder)

    def temp_files(self, prefix: str) -> Iterator[Path]:
        return self.inner.temp_files(prefix)

    def sweep_temp(self, prefix: str, older_than_s: float) -> int:
        return 0  # another run's temp files are its own: a reader removes nothing


DRY_RUN = "a dry run"  # the ``reading`` of every dry run (``Repository.open``)
