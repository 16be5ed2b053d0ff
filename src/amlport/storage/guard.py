"""The write guard: the one gate every write of a run passes (docs/design/0004, write-guard).

A writing command (``import``, ``restore``, ``promote``) builds one ``WriteGuard`` that knows

- the run's **source** (a ``Place``: a resolved folder, or an account and its containers):
  a target that is, holds or lies inside the source is refused when it is wrapped, before
  anything is read from it, however its path or URL is spelled;
- the **dry-run** flag: every write is refused (containers, blobs, ``workspace.yaml``, import
  records, emitted YAML, MLflow registrations), so a dry run cannot write by construction;
- the **conflict policy** (``--on-conflict fail|skip|overwrite``, default ``fail``): ``decide``
  is the one place that turns "a blob is there" into create / skip / update / conflict;
- the **target root**: a container the target workspace does not have, or a blob name that
  climbs out of its container (``..``, an absolute name), is refused.

The guard is created **closed**: the command validates everything it can first (map,
snapshot, repository, flags, the MLflow server) and then calls ``open()``. A write while
closed is a bug (``GuardClosed``, an internal error), which tests catch. Every target a
command writes is a ``GuardedTarget`` (``WriteGuard.wrap``), and the engines wrap whatever
target they are given, so no code path reaches a target's write methods without the gate.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from amlport.errors import AmlportError, UsageError
from amlport.storage.durable import write_atomic
from amlport.storage.repo_location import (
    SCHEME_PREFIX,
    as_location,
    is_fsspec,
    is_remote,
    split_url,
)
from amlport.storage.target import LocalTarget, Target, TargetBlob

if TYPE_CHECKING:
    from amlport.storage.azure_location import AzureLocation
    from amlport.storage.base import Source

POLICIES = ("fail", "skip", "overwrite")
DRY_RUN_HINT = "a dry run writes nothing; drop --dry-run to apply the plan"


class WriteRefused(AmlportError):
    """A write the guard refuses: into the source, outside the target, or on a dry run."""


class GuardClosed(RuntimeError):
    """A write before the command finished validating (a bug: an internal error)."""


def check_policy(value: str) -> str:
    """``--on-conflict`` as given, or a UsageError naming the choices."""
    if value not in POLICIES:
        raise UsageError(f"--on-conflict {value!r}", hint=f"use one of {', '.join(POLICIES)}")
    return value


# --- places ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Place:
    """Where a run reads or writes, spelled one way: a resolved folder (symlinks, ``./`` and
    trailing slashes gone), or an account identity with the containers concerned (none named:
    the whole account)."""

    label: str
    folder: Path | None = None
    account: str | None = None
    containers: frozenset[str] = field(default_factory=frozenset)

    def overlaps(self, other: Place) -> bool:
        if self.folder is not None and other.folder is not None:
            a, b = self.folder, other.folder
            return a == b or a in b.parents or b in a.parents
        if self.account is None or self.account != other.account:
            return False
        return (
            not self.containers or not other.containers or bool(self.containers & other.containers)
        )

    def relation(self, other: Place) -> str:
        """How ``other`` overlaps this place, in words (for the message)."""
        if self.folder is not None and other.folder is not None:
            if self.folder in other.folder.parents:
                return "lies inside the source"
            if other.folder in self.folder.parents:
                return "holds the source"
        return "is the source"


def local_place(path: str | Path) -> Place:
    return Place(str(path), folder=Path(path).expanduser().resolve())


def account_identity(loc: AzureLocation) -> str | None:
    """One spelling per account: ``<account>.<suffix>`` (any case, blob or dfs, privatelink
    or not), or ``<host>/<account>`` for an emulator (``localhost`` is ``127.0.0.1``)."""
    if loc.account is None:
        return None
    if loc.path_style:
        host = (loc.host or "").lower().replace("localhost", "127.0.0.1", 1)
        return f"{host}/{loc.account.lower()}"
    return f"{loc.account.lower()}.{loc.suffix.lower()}"


def azure_place(
    loc: AzureLocation, containers: Iterator[str] | frozenset[str] = frozenset()
) -> Place:
    names = frozenset(c.lower() for c in containers)
    return Place(loc.display, account=account_identity(loc), containers=names)


def place_of_source(source: Source) -> Place | None:
    """The place a source reads (wrappers are looked through); None when unknown."""
    from amlport.storage.base import SourceWrapper
    from amlport.storage.local import LocalSource

    while isinstance(source, SourceWrapper):
        source = source.inner
    if isinstance(source, LocalSource):
        return local_place(source.root)
    location = getattr(source, "location", None)
    if location is not None and hasattr(location, "path_style"):
        return azure_place(location, frozenset(source.descriptor.containers))
    return None


def place_of_target(target: Target) -> Place | None:
    """The place a target writes: its folder, or its account and every container it may
    write (the map's containers and datastores)."""
    if isinstance(target, GuardedTarget):
        target = target.inner
    if isinstance(target, LocalTarget):
        return local_place(target.root)
    location = getattr(target, "location", None)
    if location is not None and hasattr(location, "path_style"):
        desc = target.descriptor
        return azure_place(location, frozenset([*desc.containers, *desc.datastores.values()]))
    return None


def place_of_repository(location: str | Path) -> Place:
    """A repository's place, without contacting anything: its folder, or its container."""
    text = as_location(location)
    if is_fsspec(text):  # fsspec+file:// is a folder; another fsspec filesystem: its URL
        url = text[len(SCHEME_PREFIX) :]
        scheme, _, path = url.partition("://")
        if scheme.lower() in ("file", "local") and "::" not in url:
            return local_place(path)
        return Place(text.split("?", 1)[0], account=f"fsspec:{url.split('?', 1)[0]}")
    if not is_remote(location):
        return local_place(location)
    # Imported here: a local backup does not load the Azure SDK (30 MB, half a second).
    from amlport.storage.azure_location import parse_location

    loc = parse_location(split_url(as_location(location))[0])
    return azure_place(loc, frozenset([loc.container] if loc.container else []))


def refuse_overlap(source: Place | None, dest: Place | None, what: str) -> None:
    """WriteRefused when ``dest`` is, holds or lies inside ``source``."""
    if source is None or dest is None or not source.overlaps(dest):
        return
    raise WriteRefused(
        f"the {what} {dest.label} {source.relation(dest)} {source.label}: amlport never "
        "writes into what it reads; nothing was written",
        hint=f"give {'an' if what[0] in 'aeiou' else 'a'} {what} outside the source",
    )


def refuse_repository_in_source(source: Source, repo: str | Path) -> None:
    """``export``/``backup``: a repository in (or equal to, or holding) the source folder or
    container would be written into the workspace it backs up. Checked before anything."""
    refuse_overlap(place_of_source(source), place_of_repository(repo), "repository")


# --- the guard ------------------------------------------------------------------------------


class WriteGuard:
    """One per run: see the module docstring. Thread-safe (imports apply in parallel)."""

    def __init__(
        self, *, dry_run: bool = False, on_conflict: str = "fail", source: Place | None = None
    ) -> None:
        self.on_conflict = check_policy(on_conflict)
        self.dry_run = dry_run
        self.source = source
        self.writes = 0  # writes let through
        self.refused: list[str] = []  # what was refused (a test asserts it stays empty)
        self._open = False
        self._lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._open and not self.dry_run

    def open(self) -> None:
        """Validation is done: writes may pass (never on a dry run)."""
        self._open = True

    def admit(self, what: str) -> None:
        """Let one write of ``what`` through, or raise."""
        if self.dry_run:
            self._refuse(what)
            raise WriteRefused(f"dry run: refused to write {what}", hint=DRY_RUN_HINT)
        if not self._open:
            self._refuse(what)
            raise GuardClosed(f"write to {what} before the run's validation finished")
        with self._lock:
            self.writes += 1

    def _refuse(self, what: str) -> None:
        with self._lock:
            self.refused.append(what)

    def decide(self, found: bool, same: bool) -> tuple[str, str]:
        """What a planned write becomes, given what is there: the one conflict policy.

        A differing item under ``skip`` is left alone *and reported as a conflict*: it is not
        what the source holds, so it must not read as "already there"."""
        if not found:
            return "create", ""
        if same:
            return "skip", "already there with the same content"
        if self.on_conflict == "overwrite":
            return "update", "exists with other content; --on-conflict overwrite"
        if self.on_conflict == "skip":
            return "conflict", "exists with other content; left alone (--on-conflict skip)"
        return "conflict", "exists with other content (use --on-conflict overwrite|skip)"

    def wrap(self, target: Target) -> GuardedTarget:
        """The target behind this gate; refused at once when it is the source."""
        if isinstance(target, GuardedTarget):
            target = target.inner
        refuse_overlap(self.source, place_of_target(target), "target")
        return GuardedTarget(target, self)

    def folder(self, root: Path, what: str = "output folder") -> GuardedFolder:
        """A local output folder (``--emit-assets``) behind this gate."""
        refuse_overlap(self.source, local_place(root), what)
        return GuardedFolder(Path(root), self)


def check_blob_name(container: str, name: str, allowed: frozenset[str], where: str) -> None:
    """The target root: a known container, and a relative name that stays inside it."""
    if container not in allowed:
        raise WriteRefused(
            f"refused to write {container!r}/{name!r}: {container!r} is not a container of "
            f"the target {where}",
            hint="the map file's target names the containers amlport may write",
        )
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or "\x00" in name or ".." in parts:
        raise WriteRefused(
            f"refused to write {container}/{name!r}: the name leaves the container",
            hint="blob names must be relative and must not contain '..' segments",
        )


class GuardedTarget(Target):
    """A ``Target`` whose every write passes the guard; reads go straight through."""

    def __init__(self, inner: Target, guard: WriteGuard) -> None:
        self.inner = inner
        self.guard = guard
        self.descriptor = inner.descriptor
        self.supports_copy = inner.supports_copy
        self._allowed = frozenset(
            [*inner.descriptor.containers, *inner.descriptor.datastores.values()]
        )

    def describe(self) -> str:
        return self.inner.describe()

    def _admit(self, container: str, name: str) -> None:
        check_blob_name(container, name, self._allowed, self.describe())
        self.guard.admit(f"{container}/{name} at {self.describe()}")

    def ensure_containers(self) -> None:
        self.guard.admit(f"the containers of {self.describe()}")
        self.inner.ensure_containers()

    def stat(self, container: str, name: str) -> TargetBlob | None:
        return self.inner.stat(container, name)

    def write_stream(
        self,
        container: str,
        name: str,
        stream: BinaryIO,
        *,
        metadata: dict[str, str],
        overwrite: bool,
    ) -> None:
        self._admit(container, name)
        self.inner.write_stream(container, name, stream, metadata=metadata, overwrite=overwrite)

    def copy_from_url(
        self, container: str, name: str, url: str, *, metadata: dict[str, str], overwrite: bool
    ) -> None:
        self._admit(container, name)
        self.inner.copy_from_url(container, name, url, metadata=metadata, overwrite=overwrite)

    def read_bytes(self, container: str, name: str) -> bytes:
        return self.inner.read_bytes(container, name)

    def list_names(self, container: str, prefix: str) -> Iterator[str]:
        return self.inner.list_names(container, prefix)

    def unholdable(self, container: str, names: Collection[str]) -> dict[str, str]:
        return self.inner.unholdable(container, names)

    def close(self) -> None:
        self.inner.close()


class GuardedFolder:
    """A local folder of files (``--emit-assets``) whose every write passes the guard."""

    def __init__(self, root: Path, guard: WriteGuard) -> None:
        self.root = root
        self.guard = guard

    def path(self, rel: str) -> Path:
        """Where ``rel`` lands; refused when it leaves the folder."""
        base = self.root.resolve()
        path = (base / rel).resolve()
        if base not in path.parents:
            raise WriteRefused(
                f"refused to write {rel!r}: it leaves {self.root}",
                hint="file names must be relative and must not contain '..' segments",
            )
        return path

    def write(self, rel: str, data: bytes, *, mode: int | None = None) -> None:
        path = self.path(rel)
        self.guard.admit(str(path))
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, data)
        if mode is not None:
            path.chmod(mode)
