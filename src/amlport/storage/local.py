"""A workspace storage copy on the local disk: one folder per container.

Layout::

    <root>/workspace.yaml                      # optional descriptor (see model/workspace.py)
    <root>/azureml-blobstore-<guid>/…          # the default datastore's container
    <root>/azureml/…                           # the artifact container

Without ``workspace.yaml`` the containers are recognised by name and the account is taken
from the folder name.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from amlport.errors import SourceError, SourceNotFound, UsageError
from amlport.model.mapping import descriptor_from_yaml
from amlport.model.workspace import ARTIFACT_CONTAINER, WorkspaceDescriptor, guess_containers
from amlport.storage.base import BlobInfo, Source
from amlport.storage.durable import NotRegular, open_no_follow

DESCRIPTOR_FILE = "workspace.yaml"
_FOLDERS_KEPT = 2048  # folders known to be real (not links), at most: ~0.3 MB


def load_descriptor_file(path: Path) -> WorkspaceDescriptor:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(
            f"cannot read workspace descriptor {path}: {exc.__class__.__name__}",
            hint="fix the file or remove it to let amlport guess the containers",
        ) from None
    # Bounded YAML and the schema: a syntax error names the line, a bad key its path. A map
    # file is a workspace file too: its ``target:`` is the workspace it describes.
    return descriptor_from_yaml(text, where=str(path))


class UnreadableFile(SourceError):
    """One file of a local copy could not be read (the copy as a whole is fine)."""


class LocalSource(Source):
    # A local disk has no latency for threads to hide: reads and copies on the calling
    # thread cost a third of the CPU of a pool's hand-overs (docs/design/0007).
    read_parallelism = 1
    rereads_cheaply = True  # the walk's reads are not kept for the transfer (storage/reuse.py)

    def __init__(self, root: Path, descriptor: WorkspaceDescriptor | None = None) -> None:
        if not root.is_dir():
            raise SourceNotFound(
                f"source folder {root} does not exist",
                hint="give a folder holding one sub-folder per container, or an account URL",
            )
        self.root = root
        self.descriptor = descriptor or self._discover()
        self._real_folders: set[str] = set()  # seen to be folders, not links

    def _discover(self) -> WorkspaceDescriptor:
        desc_path = self.root / DESCRIPTOR_FILE
        if desc_path.is_file():
            return load_descriptor_file(desc_path)
        names = sorted(p.name for p in self.root.iterdir() if p.is_dir())
        blob, art = guess_containers(names)
        if blob is None and art is None:
            raise SourceNotFound(
                f"{self.root} holds no azureml-blobstore-* or azureml container folder",
                hint="point at the folder that contains the container folders, "
                "or add a workspace.yaml naming them",
            )
        return WorkspaceDescriptor(
            account=self.root.name,
            blobstore_container=blob or "azureml-blobstore-unknown",
            artifact_container=art or ARTIFACT_CONTAINER,
        )

    def describe(self) -> str:
        return str(self.root)

    def _path(self, container: str, name: str) -> Path:
        fast = self._plain_path(container, name)
        if fast is not None:
            return fast
        path = (self.root / container / name).resolve()
        base = (self.root / container).resolve()
        if base not in path.parents:
            raise UsageError(f"blob name {name!r} escapes container {container!r}")
        return path

    def _plain_path(self, container: str, name: str) -> Path | None:
        """``_path`` for the usual name (no ``..``, no link on the way): one ``lstat`` of the
        file, and one per folder the first time, where ``resolve`` took one per part of the
        whole path per read (most of a first backup's system time). None: ask ``resolve``."""
        parts = name.split("/")
        if "" in parts or "." in parts or ".." in parts or "\\" in name or "\0" in name:
            return None
        top = os.path.join(self.root, container)
        try:
            folder = top
            for depth in range(len(parts)):  # the container, then each folder below it
                if depth:
                    folder = os.path.join(folder, parts[depth - 1])
                if folder not in self._real_folders:
                    if not stat.S_ISDIR(os.lstat(folder).st_mode):
                        return None
                    if len(self._real_folders) >= _FOLDERS_KEPT:  # reads go folder by folder
                        self._real_folders.clear()
                    self._real_folders.add(folder)
            path = os.path.join(folder, parts[-1])
            return Path(path) if stat.S_ISREG(os.lstat(path).st_mode) else None
        except OSError:
            return None

    def list_blobs(self) -> Iterator[BlobInfo]:
        for container in self.descriptor.containers:
            base = self.root / container
            if not base.is_dir():
                continue
            yield from self._walk_container(container, base)

    @staticmethod
    def _walk_container(container: str, base: Path) -> Iterator[BlobInfo]:
        """Regular files in ``os.walk`` order (each folder's files sorted, then its
        sub-folders, sorted; links not followed), one ``lstat`` per file: the folder
        entries tell links, folders and files apart (an unchanged re-backup is its
        listing: three calls per file were a third of it)."""
        folders = [("", os.fspath(base))]
        while folders:
            rel, folder = folders.pop()
            try:
                with os.scandir(folder) as it:
                    entries = list(it)
            except OSError:
                continue  # as os.walk: an unreadable folder is skipped
            files, subs = [], []
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        subs.append(entry.name)
                    elif entry.is_file(follow_symlinks=False):
                        files.append(entry)  # blob storage has no links, sockets or FIFOs
                except OSError:
                    continue
            for entry in sorted(files, key=lambda e: e.name):
                try:
                    st = entry.stat(follow_symlinks=False)
                except OSError:
                    continue  # gone since the folder was read
                yield BlobInfo(
                    container=container,
                    name=f"{rel}{entry.name}",
                    size=st.st_size,
                    etag=f"{st.st_mtime_ns:x}-{st.st_size:x}",
                    content_md5=None,
                )
            folders += [(f"{rel}{d}/", os.path.join(folder, d)) for d in sorted(subs, reverse=True)]

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        try:
            fh, st = open_no_follow(self._path(container, name))
            with fh:
                if max_bytes is None:
                    return fh.read()
                # Ask for no more than the file holds: a read(n) buffer of n bytes, shrunk
                # afterwards, keeps whole pages per small file (8 MiB limit, 400-byte files).
                return fh.read(min(max_bytes, st.st_size + 1))
        except FileNotFoundError:
            raise SourceNotFound(f"{container}/{name} not found in {self.root}") from None
        except NotRegular as exc:  # replaced since the listing: never followed or waited on
            raise _not_a_file(container, name, exc) from None
        except OSError as exc:  # unreadable: one failed file, not a crash of the whole run
            raise UnreadableFile(f"cannot read {container}/{name}: {exc.strerror}") from None

    def open_stream(self, container: str, name: str) -> BinaryIO:
        try:
            return open_no_follow(self._path(container, name))[0]
        except FileNotFoundError:
            raise SourceNotFound(f"{container}/{name} not found in {self.root}") from None
        except NotRegular as exc:
            raise _not_a_file(container, name, exc) from None
        except OSError as exc:
            raise UnreadableFile(f"cannot read {container}/{name}: {exc.strerror}") from None


def _not_a_file(container: str, name: str, exc: NotRegular) -> UnreadableFile:
    """A name whose file is now a FIFO, a device, a folder…: listings yield regular files
    only, so it was replaced since (or was named by a pointer): one failed file, nothing
    read. (A link inside the container is read through, as before; one out of it escapes.)"""
    return UnreadableFile(
        f"cannot read {container}/{name}: it is {exc.kind}, not a regular file "
        "(replaced since it was listed?)"
    )
