"""The write side: where an import or restore puts files. Never the source of the same run.

Contract (every implementation; tests in tests/contract/test_targets.py):
- ``stat`` says whether a blob exists and, when known, the SHA-256 of its content (from the
  ``amlport_sha256`` metadata amlport writes, or computed for local files) so an import can
  skip what is already there;
- ``write_stream`` writes a whole blob atomically (temp + rename locally; a single Put Blob or
  a committed block list on Azure) with its metadata; with ``overwrite=False`` an existing
  blob is left alone and ``TargetConflict`` is raised;
- ``copy_from_url`` (optional) asks the service to copy a blob server-side; ``supports_copy``
  says whether it can;
- ``ensure_containers`` creates the workspace containers when missing;
- ``list_names(container, prefix)`` treats the prefix as a path: ``p`` matches ``p`` and
  ``p/…``, not ``p2/…``;
- while a server-side copy is unfinished (pending, failed, aborted), ``stat`` vouches for
  nothing: no digest, no metadata.
"""

from __future__ import annotations

import abc
import contextlib
import errno
import hashlib
import os
import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from amlport.errors import AmlportError, DiskFull, UsageError
from amlport.model.workspace import WorkspaceDescriptor
from amlport.processes import pid_alive
from amlport.streams import read_into

DIGEST_METADATA = "amlport_sha256"
TEMP_MARK = ".amlport-tmp-"


class TargetConflict(AmlportError):
    """A blob exists at the target with other content and overwriting was not allowed."""


class UnwritableName(AmlportError):
    """A blob name the target cannot hold (a local folder: a segment over NAME_MAX bytes, a
    backslash, a file where another name needs a folder). The import records the item as
    failed and writes the rest (exit 3)."""


NAME_MAX = 255  # bytes of one path segment on the local file systems amlport writes to
# errno values of a name the local file system refuses (not of the disk or permissions)
_NAME_ERRNOS = frozenset(
    {errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR, errno.EEXIST, errno.EILSEQ, errno.EINVAL}
)


def local_name_problem(name: str) -> str | None:
    """Why a local folder cannot hold blob ``name`` as a file, or None. Azure holds any of
    these; a folder cannot (and ``a//b`` or ``a/./b`` would land on another name's file)."""
    if "\\" in name:
        return "a backslash is a path separator on Windows and cannot be restored portably"
    if "\x00" in name:
        return "a NUL character cannot be part of a local file name"
    parts = name.split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "an empty, '.' or '..' path segment would land on another file"
    size = max(len(os.fsencode(p)) for p in parts)
    if size > NAME_MAX:
        return f"a path segment of {size} bytes is over the {NAME_MAX} a local file name may have"
    return None


@dataclass(frozen=True)
class TargetBlob:
    container: str
    name: str
    size: int
    sha256: str | None = None  # "sha256:<hex>" when known
    metadata: dict[str, str] = field(default_factory=dict)


class Target(abc.ABC):
    descriptor: WorkspaceDescriptor
    supports_copy = False

    @abc.abstractmethod
    def describe(self) -> str: ...

    @abc.abstractmethod
    def ensure_containers(self) -> None: ...

    @abc.abstractmethod
    def stat(self, container: str, name: str) -> TargetBlob | None: ...

    @abc.abstractmethod
    def write_stream(
        self,
        container: str,
        name: str,
        stream: BinaryIO,
        *,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> None: ...

    @abc.abstractmethod
    def read_bytes(self, container: str, name: str) -> bytes: ...

    @abc.abstractmethod
    def list_names(self, container: str, prefix: str) -> Iterator[str]: ...

    def write_bytes(
        self, container: str, name: str, data: bytes, *, metadata: dict[str, str], overwrite: bool
    ) -> None:
        import io

        self.write_stream(container, name, io.BytesIO(data), metadata=metadata, overwrite=overwrite)

    def copy_from_url(
        self, container: str, name: str, url: str, *, metadata: dict[str, str], overwrite: bool
    ) -> None:
        raise UsageError(f"{self.describe()} cannot copy server-side")

    def unholdable(self, container: str, names: Collection[str]) -> dict[str, str]:
        """The names of one container this target cannot hold side by side, each with why
        (asked before writing, so the answer does not depend on the order of writes). Azure
        holds any blob name: none."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release clients."""

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _temp_name(name: str) -> str:
    """The temp file beside ``name``; a short one when ``name`` is near NAME_MAX (it must fit
    too, or a legal 250-byte name would fail on its temp file)."""
    tmp = f".{name}{TEMP_MARK}{os.getpid()}"
    if len(os.fsencode(tmp)) <= NAME_MAX:
        return tmp
    return f".{hashlib.sha256(os.fsencode(name)).hexdigest()[:16]}{TEMP_MARK}{os.getpid()}"


COPY_BUFFER = 1 << 20  # bytes of the one copy buffer of a thread
_copying = threading.local()


def copy_stream(stream: BinaryIO, out: BinaryIO) -> int:
    """Copy ``stream`` to ``out`` through one buffer per thread, reused for every file
    (``readinto``): ``stream.read(4 MiB)`` made a new 4 MiB bytes object per file
    (a 4 MiB allocation, and its page faults, per small file of a 100k-file restore; F,
    session 8). A stream without ``readinto`` is read and copied into it
    (``streams.read_into``). The bytes copied."""
    view = _thread_buffer()
    copied = 0
    while n := read_into(stream, view):
        out.write(view[:n])
        copied += n
    return copied


def _thread_buffer() -> memoryview:
    """This thread's copy buffer (``COPY_BUFFER`` bytes), made at its first use."""
    view: memoryview | None = getattr(_copying, "view", None)
    if view is None:
        view = _copying.view = memoryview(bytearray(COPY_BUFFER))
    return view


def sha256_of_file(path: Path) -> str:
    """Read through the thread's buffer too (``stat`` of every file already at a target)."""
    h = hashlib.sha256()
    view = _thread_buffer()
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(view):
            h.update(view[:n])
    return "sha256:" + h.hexdigest()


class LocalTarget(Target):
    """A local workspace copy (one folder per container) as an import target."""

    def __init__(self, root: Path, descriptor: WorkspaceDescriptor) -> None:
        self.root = root
        self.descriptor = descriptor

    def describe(self) -> str:
        return str(self.root)

    def ensure_containers(self) -> None:
        """Create the folder, its ``workspace.yaml`` and the container folders: the first
        write of an import, so it happens only once the write guard is open."""
        self.root.mkdir(parents=True, exist_ok=True)
        desc_file = self.root / "workspace.yaml"
        if not desc_file.exists():  # a local target describes itself, so it can be scanned
            import yaml

            text = yaml.safe_dump(self.descriptor.to_dict(), sort_keys=False)
            desc_file.write_text(text, encoding="utf-8")
        for container in self.descriptor.containers:
            (self.root / container).mkdir(parents=True, exist_ok=True)
            self._remove_stale_temp_files(self.root / container)

    @staticmethod
    def _remove_stale_temp_files(base: Path) -> None:
        """Temp files of writers that died (SIGKILL) are never blobs: remove them."""
        for tmp in base.rglob(f"*{TEMP_MARK}*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not pid_alive(int(pid)):
                tmp.unlink(missing_ok=True)

    def _path(self, container: str, name: str) -> Path:
        problem = local_name_problem(name)
        if problem is not None:
            raise UnwritableName(f"cannot write {container}/{name!r} to {self.root}: {problem}")
        base = (self.root / container).resolve()
        path = (base / name).resolve()
        if base not in path.parents:
            raise UsageError(f"blob name {name!r} escapes container {container!r}")
        return path

    def stat(self, container: str, name: str) -> TargetBlob | None:
        path = self._path(container, name)
        if not path.is_file():
            return None
        return TargetBlob(container, name, path.stat().st_size, sha256_of_file(path))

    def write_stream(
        self,
        container: str,
        name: str,
        stream: BinaryIO,
        *,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> None:
        path = self._path(container, name)
        if path.exists() and not overwrite:
            raise TargetConflict(f"{container}/{name} exists at {self.root}")
        tmp = path.with_name(_temp_name(path.name))
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                copy_stream(stream, fh)
                fh.flush()
                os.fsync(fh.fileno())
            tmp.replace(path)
        except OSError as exc:
            full = DiskFull.of(exc, f"{container}/{name!r} to {self.root}")
            if full is not None:
                raise full from None  # a failed item; the files already written stay
            if exc.errno not in _NAME_ERRNOS:
                raise
            raise UnwritableName(
                f"cannot write {container}/{name!r} to {self.root}: {exc.strerror} "
                "(a file where a folder is needed, or a folder where the file goes)",
                hint="restore into an empty folder, or to Azure, which holds every blob name",
            ) from None
        finally:
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):  # never created
                tmp.unlink()

    def unholdable(self, container: str, names: Collection[str]) -> dict[str, str]:
        """Names a folder cannot hold (``local_name_problem``), and a name that is also the
        folder of another (``x/model`` beside ``x/model/weights.bin``: the folder is kept)."""
        found = {n: p for n in names if (p := local_name_problem(n)) is not None}
        folders = {n.rsplit("/", i)[0] for n in names for i in range(1, n.count("/") + 1)}
        for name in names:
            if name in folders and name not in found:
                found[name] = (
                    "it is also the folder of other blobs, and a local folder cannot hold a "
                    "file and a folder under one name (the folder's blobs are restored)"
                )
        return found

    def read_bytes(self, container: str, name: str) -> bytes:
        return self._path(container, name).read_bytes()

    def list_names(self, container: str, prefix: str) -> Iterator[str]:
        base = self.root / container
        start = base / prefix if prefix else base
        if start.is_file():
            yield prefix
            return
        if not start.is_dir():
            return
        for path in sorted(start.rglob("*")):
            if path.is_file() and TEMP_MARK not in path.name:
                yield path.relative_to(base).as_posix()
