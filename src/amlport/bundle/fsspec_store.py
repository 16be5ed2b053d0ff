"""A repository on an fsspec filesystem: ``fsspec+<fsspec URL>`` (``FsspecStore``).

    fsspec+memory://<path>          in this process's memory (tests, notebooks, a dry run)
    fsspec+file:///<path>           a local folder, through fsspec
    fsspec+<protocol>://<path>      any other fsspec filesystem (S3, GCS, SFTP, HTTP, a zip
                                    archive with ``zip://::file:///…/repo.zip``, …): read-only

A repository's safety rests on three write primitives (docs/design/0005, "fsspec"): a value
published whole (a reader sees all of it or none), a create-only write that two racing
writers cannot both win (``config.json``, snapshots, locks) and write-once objects. fsspec's
interface does not promise them: ``open(mode="xb")`` is honoured by some filesystems only, and
``mv`` on an object store is a copy and a delete. So this store writes only where amlport
knows how each primitive is kept (``WRITABLE``):

- ``memory``: ``MemoryFileSystem`` publishes a file whole when it is closed (one dict
  assignment), and create-only checks and creates under one lock; the filesystem lives in
  this process, so that lock is every writer's.
- ``file``/``local``: the plain folder's durable writes (``storage/durable.py``): a temp file
  in the same folder, fsync, rename, fsync the folder; create-only is a hard link from the
  finished, fsynced temp file (``files.create_exclusive``), which the kernel refuses if the
  name exists.

On every other filesystem the repository is **read-only**: every write raises
``AccessDenied``, so ``snapshots``, ``ls``, ``dump``, ``verify`` and ``restore`` of a copy
there work (a shared lock that cannot be written is taken without a file, after checking that
no writer holds the repository, as for a read-only SAS) and a ``backup`` or ``forget`` says
why it cannot. The filesystem's own package (``s3fs``, ``gcsfs``, ``sshfs``…) must be installed;
its credentials are fsspec's (environment, config files): amlport takes none for it.

Nothing stored is trusted (docs/design/0004): only regular files are read (a symbolic link or
anything else is refused), never more than the caller's ``limit``; temp files are never listed.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO, cast

from amlport.bundle import files
from amlport.bundle.store import LAYOUT_DIRS, FileStaging, RepoStore, Staging, Stored
from amlport.errors import AccessDenied, IntegrityError, UsageError
from amlport.storage.repo_location import SCHEME_PREFIX, is_fsspec  # noqa: F401 - re-exported

WRITABLE = frozenset({"memory", "file", "local"})
COPY_PIECE = 1 << 20
_CREATE_LOCK = threading.Lock()  # memory: create-only and replace-if-present, check and write


def open_fsspec_store(location: str) -> FsspecStore:
    """The store of ``fsspec+<fsspec URL>``; UsageError for an unknown protocol or URL."""
    try:
        import fsspec.core
    except ImportError as exc:  # pragma: no cover - fsspec is a runtime dependency
        raise UsageError(f"a fsspec repository needs fsspec ({exc.name} missing)") from None
    url = location[len(SCHEME_PREFIX) :]
    try:
        fs, root = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as exc:  # unknown protocol, or its package is missing
        protocol = url.split("://", 1)[0]
        raise UsageError(
            f"cannot open repository {_shown(location)}: {type(exc).__name__} for fsspec "
            f"protocol {protocol!r}",
            hint="install the filesystem's package (s3fs, gcsfs, sshfs, …) or check the URL",
        ) from None
    return FsspecStore(fs, str(root).rstrip("/"), _shown(location))


def _shown(location: str) -> str:
    """The location without a query string or a ``user:password@``."""
    base = location.split("?", 1)[0]
    scheme, sep, rest = base.partition("://")
    authority, slash, path = rest.partition("/")
    return f"{scheme}{sep}{authority.rpartition('@')[2]}{slash}{path}"


class FsspecStore(RepoStore):
    """A repository in a folder of an fsspec filesystem (see the module docstring)."""

    def __init__(self, fs: Any, root: str, display: str) -> None:
        self.fs = fs
        self.root = root
        self._display = display
        protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
        self.protocol = str(protocols[0])
        self.writable = bool(WRITABLE.intersection(protocols))
        self.local = bool({"file", "local"}.intersection(protocols))

    @property
    def display(self) -> str:
        return self._display

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}" if self.root else key

    def _writing(self, key: str) -> str:
        if not self.writable:
            raise AccessDenied(
                f"repository {self.display} is read-only: amlport cannot write create-only "
                f"and whole values on fsspec protocol {self.protocol!r}",
                hint="restore, verify, snapshots, ls and dump read it; back up to a local "
                "folder or an az:// repository (docs/backup.md, 'Where a repository lives')",
            )
        return self._path(key)

    # -- the repository as a whole --

    def root_exists(self) -> bool:
        return bool(self.fs.exists(self.root))

    def prepare_init(self) -> None:
        self._writing("")
        if self.root_exists():
            blank = {*LAYOUT_DIRS, "keys"}
            names = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(self.root, detail=False)]
            if any(n not in blank and not n.startswith(files.TEMP_PREFIX) for n in names):
                raise UsageError(
                    f"{self.display} exists and is not an empty folder",
                    hint="choose a new or empty folder for the repository",
                )
        self.fs.makedirs(self.root, exist_ok=True)

    # -- small values --

    def _info(self, path: str) -> dict[str, Any] | None:
        """A regular file's info, None when missing; IntegrityError for a link or other."""
        try:
            info: dict[str, Any] = self.fs.info(path)
        except FileNotFoundError:
            return None
        if info.get("type") == "directory":
            return None
        if info.get("islink") or info.get("type") != "file":
            raise IntegrityError(
                f"{self.display}: {path} is not a regular file",
                hint="a repository holds only files amlport wrote: remove it, then run "
                "`amlport verify`",
            )
        return info

    def read(self, key: str, *, limit: int) -> bytes:
        return self.read_stored(key, limit=limit).data

    def read_stored(self, key: str, *, limit: int) -> Stored:
        path = self._path(key)
        info = self._info(path)
        if info is None:
            raise FileNotFoundError(path)
        if int(info.get("size") or 0) > limit:
            raise files.TooLarge(path, int(info["size"]), limit)
        with self.fs.open(path, "rb") as fh:
            data = fh.read(limit + 1)
        if len(data) > limit:
            raise files.TooLarge(path, len(data), limit)
        return Stored(data, self._modified(path))

    def _modified(self, path: str) -> datetime:
        try:
            when = self.fs.modified(path)
        except (NotImplementedError, FileNotFoundError, OSError):
            return datetime.now(timezone.utc)
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)

    def write(self, key: str, data: bytes) -> None:
        self._publish(self._writing(key), [data])

    def write_chunks(self, key: str, chunks: Iterable[bytes]) -> None:
        self._publish(self._writing(key), chunks)

    def _publish(self, path: str, chunks: Iterable[bytes]) -> None:
        """``path`` replaced whole by ``chunks``: a reader sees the old value or the new."""
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if not self.local:  # memory: the file is published whole when closed
            with self.fs.open(path, "wb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
            return
        # file: fsspec's interface has no fsync (``open``/``mv`` neither sync the file nor the
        # folder), so the write goes the plain folder's way: temp file, fsync, rename, fsync
        # the folder (``storage/durable.py``), durable once this returns.
        files.write_atomic(Path(path), chunks)

    def create(self, key: str, data: bytes) -> bool:
        path = self._writing(key)
        if self.local:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            return files.create_exclusive(Path(path), data)
        with _CREATE_LOCK:
            if self.fs.exists(path):
                return False
            self._publish(path, [data])
            return True

    def put_once(self, key: str, data: bytes) -> bool:
        path = self._writing(key)
        info = self._info(path)
        if info is not None and int(info.get("size") or 0) == len(data):
            return False  # write once: a whole object stays as is
        self._publish(path, [data])
        return True

    def replace_existing(self, key: str, data: bytes) -> bool:
        path = self._writing(key)
        with _CREATE_LOCK:
            if not self.fs.exists(path):
                return False
            self._publish(path, [data])
            return True

    def delete(self, key: str, *, version: str | None = None) -> bool:
        path = self._writing(key)
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)
        return True

    def size(self, key: str) -> int | None:
        info = self._info(self._path(key))
        return None if info is None else int(info.get("size") or 0)

    def list(self, prefix: str) -> Iterator[str]:
        for name, _ in self.list_sizes(prefix):
            yield name

    def list_sizes(self, prefix: str) -> Iterator[tuple[str, int]]:
        base = self._path(prefix).rstrip("/")
        if not self.fs.isdir(base):
            return
        found = self.fs.find(base, withdirs=False, detail=True)
        start = len(base.rstrip("/")) + 1
        names = []
        for path, info in found.items():
            if info.get("type") != "file" or info.get("islink"):
                continue  # a link or a FIFO is not a value (LocalStore alike)
            if path.rsplit("/", 1)[-1].startswith(files.TEMP_PREFIX):
                continue  # a write in progress
            names.append((path[start:], int(info.get("size") or 0)))
        yield from sorted(names)

    # -- objects --

    def open(self, key: str, *, limit: int | None = None) -> BinaryIO:
        path = self._path(key)
        info = self._info(path)
        if info is None:
            raise FileNotFoundError(path)
        if limit is not None and int(info.get("size") or 0) > limit:
            raise files.TooLarge(path, int(info["size"]), limit)
        return cast(BinaryIO, self.fs.open(path, "rb"))

    def read_range(self, key: str, offset: int, length: int) -> bytes:
        path = self._path(key)
        if self._info(path) is None:
            raise FileNotFoundError(path)
        if length == 0:
            return b""
        return bytes(self.fs.cat_file(path, start=offset, end=offset + length))

    @contextlib.contextmanager
    def staging(self, folder: str, hint: str | None = None) -> Iterator[Staging]:
        self._writing(folder)
        with tempfile.TemporaryFile(prefix="amlport-fsspec-") as spool:
            stage = FileStaging(spool)
            yield stage
            if stage.key is None:
                return
            path = self._path(stage.key)
            info = self._info(path)
            if info is not None and int(info.get("size") or 0) == stage.size:
                return  # already stored (put_once)
            spool.seek(0)
            self._publish(path, iter(lambda: spool.read(COPY_PIECE), b""))
