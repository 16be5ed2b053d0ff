"""Durable local file writes: temp file in the target folder, fsync, rename, fsync the folder.

A reader therefore sees either no file or the whole file, never a partial one, even when the
writer crashes or the machine loses power between the write and the rename. Temp files start
with ``.tmp-`` so listings skip them and ``prune`` can sweep the ones a crash left behind.

It lives in storage/ (docs/design/0000-map.md) because the write guard's ``GuardedFolder``
writes with it, below bundle/; ``bundle/files.py`` re-exports these names for the repository.
``open_no_follow`` is the one way a regular file is opened for reading when what stands at
its path may have been swapped: by the repository (``bundle/files.open_regular``) and by a
local source (``storage/local.py``: a file replaced by a FIFO or a link during a backup).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"
__all__ = [
    "TEMP_PREFIX",
    "NotRegular",
    "create_exclusive",
    "finish",
    "fsync_dir",
    "is_temp",
    "open_no_follow",
    "publish",
    "temp_file",
    "temp_path",
    "write_atomic",
]


def temp_path(directory: Path) -> Path:
    return directory / f"{TEMP_PREFIX}{uuid.uuid4().hex}"


def is_temp(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX)


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems (and Windows) refuse fsync on a directory
    finally:
        os.close(fd)


@contextlib.contextmanager
def temp_file(directory: Path) -> Iterator[tuple[Path, BinaryIO]]:
    """An open temp file in ``directory`` (created when missing), removed on error unless
    the caller renamed it."""
    path = temp_path(directory)
    try:  # (a signal between the open and the cleanup's reach would leave the file)
        try:
            fh = open(path, "xb")  # noqa: SIM115 - closed below; one syscall when it exists
        except FileNotFoundError:
            directory.mkdir(parents=True, exist_ok=True)
            fh = open(path, "xb")  # noqa: SIM115
        with fh:
            yield path, fh
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def finish(fh: BinaryIO) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def write_atomic(path: Path, data: bytes | Iterable[bytes], *, sync_dir: bool = True) -> None:
    """Replace ``path`` with ``data`` (bytes, or chunks of them) atomically and durably.
    ``sync_dir=False``: the caller makes the rename durable later (``fsync_dir``)."""
    with temp_file(path.parent) as (tmp, fh):
        if isinstance(data, bytes):
            fh.write(data)
        else:
            fh.writelines(data)
        finish(fh)
    publish(tmp, path, sync_dir=sync_dir)


def publish(tmp: Path, path: Path, *, sync_dir: bool = True) -> None:
    """Rename a finished temp file into place (replacing) and make the rename durable
    (unless ``sync_dir`` is False: the caller fsyncs the folder later)."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def create_exclusive(path: Path, data: bytes) -> bool:
    """Create ``path`` with ``data`` unless it exists; True when this call created it.

    Uses a hard link from a finished temp file, so the file appears complete or not at all and
    two racing creators cannot both win. Falls back to rename where links are unsupported.
    """
    with temp_file(path.parent) as (tmp, fh):
        fh.write(data)
        finish(fh)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    except OSError:
        if path.exists():
            return False
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return True
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


# A symlink is never followed, a FIFO never waited on (``open_no_follow``).
_READ_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)


class NotRegular(OSError):
    """What stands at a path is not a regular file (``kind``: "a FIFO", "a symbolic link"…)."""

    def __init__(self, path: Path | str, kind: str) -> None:
        super().__init__(f"{path} is {kind}, not a regular file")
        self.kind = kind


def open_no_follow(path: Path | str) -> tuple[BinaryIO, os.stat_result]:
    """``path`` opened for reading and its ``fstat``, refusing what is not a regular file: a
    symlink (to ``/dev/zero``…) is not followed, a FIFO is not waited on, a device, socket or
    directory is not read (NotRegular). FileNotFoundError when nothing is there."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except NotADirectoryError:
        raise FileNotFoundError(str(path)) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(path, "a symbolic link") from None
        if exc.errno == errno.ENXIO:  # a socket, or a device with nothing behind it
            raise NotRegular(path, "a socket or device") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(path, _kind(st.st_mode))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "a special file")
