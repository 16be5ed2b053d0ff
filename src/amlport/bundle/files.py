"""Durable file writes: temp file in the target directory, fsync, rename, fsync the directory.

A reader therefore sees either no file or the whole file, never a partial one, even when the
writer crashes or the machine loses power between the write and the rename. Temp files start
with ``.tmp-`` so listings skip them and ``prune`` can sweep the ones a crash left behind.
The writes live in ``storage/durable.py`` (the write guard uses them, below bundle/) and are
re-exported here; this module adds the reads of regular files only.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from amlport.errors import IntegrityError, UsageError
from amlport.storage.durable import *  # noqa: F403 - the durable writes, moved to storage/

_SPECIAL_HINT = (
    "a repository holds only regular files amlport wrote: remove it, then run `amlport verify`"
)


def regular_size(path: Path) -> int | None:
    """Bytes of ``path`` when it is a regular file (not a link to one); None otherwise."""
    try:
        st = os.lstat(path)  # one system call per object checked
    except (FileNotFoundError, NotADirectoryError):
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def open_regular(path: Path, limit: int | None = None) -> BinaryIO:
    """``path`` opened for reading, refusing what is not a regular file of at most ``limit``
    bytes: a symlink (to ``/dev/zero``…) is not followed, a FIFO is not waited on, a device,
    socket or directory is not read. IntegrityError names the file; FileNotFoundError when
    it does not exist."""
    try:
        fh, st = open_no_follow(path)  # noqa: F405 - storage/durable.py
    except NotRegular as exc:  # noqa: F405
        raise _not_regular(path, exc.kind) from None
    if limit is not None and st.st_size > limit:
        fh.close()
        raise TooLarge(str(path), st.st_size, limit)
    return fh


def read_regular(path: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (``open_regular``); reads at
    most ``limit + 1`` bytes however the file changes meanwhile."""
    with open_regular(path, limit) as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(str(path), len(data), limit)
    return data


class TooLarge(IntegrityError):
    """A repository value holds more bytes than its reader allows (``size``: how many)."""

    def __init__(self, where: str, size: int, limit: int) -> None:
        super().__init__(
            f"{where} has {size} bytes, more than the {limit} it may hold", hint=_SPECIAL_HINT
        )
        self.size = size


def _not_regular(path: Path, kind: str) -> IntegrityError:
    return IntegrityError(f"{path} is {kind}, not a regular file", hint=_SPECIAL_HINT)


def local_path(root: Path, rel: str) -> Path:
    """``root`` joined with a checked bundle path: ``/`` separates, nothing else does. Where
    the system reads ``\\`` (or ``:``, a drive) in a name as a separator, such a name is
    refused rather than let out of ``root``."""
    odd = sorted({os.sep, os.altsep or "/", ":" if os.name == "nt" else "/"} - {"/"})
    if any(ch in rel for ch in odd):
        raise UsageError(
            f"{rel!r} cannot be written as a file here: this system reads "
            f"{' or '.join(map(repr, odd))} in a file name as a path separator or a drive",
            hint="run the command on Linux or macOS, or restore to an Azure target",
        )
    if any(not seg for seg in rel.split("/")):
        raise UsageError(
            f"{rel!r} cannot be written as a file: it has an empty path segment ('//', or a "
            "trailing '/'), which a blob name may have but a file system path cannot",
            hint="restore to an Azure target to keep this name",
        )
    return root.joinpath(*rel.split("/"))
