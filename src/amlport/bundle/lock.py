"""Repository locks (restic's model): one small JSON file per holder under ``locks/``.

Shared locks (export, backup, verify, pack) coexist; an exclusive lock (forget, prune)
conflicts with every other live lock. A lock is taken by writing our file first and then
looking at the others, so two racing takers both see each other and at worst both back off.

A holder refreshes its file while it runs. A lock is stale when its holder is on this host
and its process is gone, or when it has not been refreshed for ``stale_after``; a stale lock
is removed (with a warning) instead of blocking the repository forever.

In a remote store (an Azure container) the holders may run on other machines: there a lock
is stale by its age, or when it records this machine (``machine``: the host name, this boot's
id and this process's pid namespace, so a pid means the same process here as where it was
written) and its pid is gone — a ``kill -9`` of a backup on this machine does not block the
repository for 30 minutes. Removing it is conditional on its etag (a holder that refreshed it
meanwhile keeps it), and a refresh is conditional on the blob still existing
(``If-Match: *``), so a holder whose lock was taken over notices instead of writing it back.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from amlport.bundle.store import RepositoryWriteRefused, RepoStore
from amlport.errors import AccessDenied, AmlportError, ExitCode, ParseError
from amlport.model.manifest import format_time, parse_time
from amlport.processes import pid_alive
from amlport.safeload import load_json

DEFAULT_STALE_AFTER = timedelta(minutes=30)
MAX_LOCK_BYTES = 64 * 1024  # a lock file is ~150 bytes; a larger one is not read
FOLDER = "locks/"
Warn = Callable[[str], None]


class RepositoryLocked(AmlportError):
    """Another process holds a conflicting lock on the repository."""

    exit_code = ExitCode.ERROR


@dataclass(frozen=True)
class LockInfo:
    where: str  # the lock file or blob, for messages
    exclusive: bool
    pid: int
    hostname: str
    created: datetime
    refreshed: datetime
    key: str = ""
    version: str | None = None  # what identifies the version read (an etag on Azure)
    machine: str = ""  # where ``pid`` means something (machine_id()); "" when not recorded

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (
            f"{kind} lock by pid {self.pid} on {self.hostname} since {format_time(self.created)}"
            f" (last refreshed {format_time(self.refreshed)}; file {self.where})"
        )

    def is_stale(self, now: datetime, stale_after: timedelta, check_pid: bool = True) -> bool:
        if now - self.refreshed > stale_after:
            return True
        if self.machine:  # written by a holder that said where its pid means something
            return self.machine == machine_id() and not pid_alive(self.pid)
        if not check_pid:  # a remote repository: the holder's pid means nothing here
            return False
        return self.hostname == socket.gethostname() and not pid_alive(self.pid)


_machine: tuple[int, str] | None = None  # (the pid that worked it out, machine_id())


def machine_id() -> str:
    """Where a pid names one process: host name, boot id and pid namespace (Linux). Two
    containers sharing a host name, a kernel or a mounted repository differ in one of them;
    "" where this cannot be told (then only a local repository's lock is judged by its pid,
    by host name, as before). Worked out once per process (a lock check asks it each time):
    a forked child, perhaps in a pid namespace of its own, works it out again."""
    global _machine
    cached = _machine
    if cached is not None and cached[0] == os.getpid():
        return cached[1]
    found = _read_machine_id()
    _machine = (os.getpid(), found)
    return found


def _read_machine_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            boot = f.read(64).strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return ""
    if not boot or not namespace:
        return ""
    return f"{socket.gethostname()}/{boot}/{namespace}"


def _where(store: RepoStore, key: str) -> str:
    return f"{store.display.rstrip('/')}/{key}"


def read_lock(store: RepoStore, key: str) -> LockInfo:
    """Parse a lock file; an unreadable one counts as exclusive, dated by its mtime."""
    # FileNotFoundError when released meanwhile; IntegrityError when not a small file
    stored = store.read_stored(key, limit=MAX_LOCK_BYTES)
    where = _where(store, key)
    try:
        data = load_json(stored.data.decode("utf-8"), where)  # bounded nesting
        return LockInfo(
            where=where,
            exclusive=bool(data["exclusive"]),
            pid=int(data["pid"]),
            hostname=str(data["hostname"]),
            created=parse_time(str(data["created"])),
            refreshed=parse_time(str(data["refreshed"])),
            key=key,
            version=stored.version,
            machine=str(data.get("machine", ""))[:256],
        )
    except (ParseError, ValueError, KeyError, TypeError, AttributeError):
        mtime = stored.modified
        return LockInfo(where, True, 0, "unknown", mtime, mtime, key, stored.version)


class HeldLock:
    """A lock this process holds; refreshed in the background until released."""

    def __init__(
        self, store: RepoStore, key: str, exclusive: bool, stale_after: timedelta, warn: Warn
    ) -> None:
        self.store = store
        self.key = key
        self.exclusive = exclusive
        self.created = datetime.now(timezone.utc)
        self.lost = False
        self._warn = warn
        self._stop = threading.Event()
        self._interval = max(stale_after.total_seconds() / 3, 0.05)
        self._thread: threading.Thread | None = None

    @property
    def path(self) -> Path:
        """The lock file of a local repository (UsageError for a remote one)."""
        return self.store.local_path(self.key)

    @property
    def where(self) -> str:
        return _where(self.store, self.key)

    def _payload(self) -> bytes:
        data = {
            "exclusive": self.exclusive,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "created": format_time(self.created),
            "refreshed": format_time(datetime.now(timezone.utc)),
        }
        if machine := machine_id():
            data["machine"] = machine
        return json.dumps(data, sort_keys=True).encode()

    def write(self) -> None:
        self.store.write(self.key, self._payload())

    def refresh(self) -> None:
        """Re-date the lock file; notices (and reports) when someone removed it as stale."""
        if self.lost:
            return
        if not self.store.replace_existing(self.key, self._payload()):
            self.lost = True
            self._warn(f"lock {self.where} was removed by another process (taken as stale)")

    def start_refreshing(self) -> None:
        self._thread = threading.Thread(target=self._run, name="amlport-lock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except OSError as exc:
                self._warn(f"could not refresh lock {self.where}: {exc.strerror or exc}")
            except AmlportError as exc:  # a remote store: throttled, unreachable…
                self._warn(f"could not refresh lock {self.where}: {exc.message}")

    def check(self) -> None:
        if self.lost:
            raise RepositoryLocked(
                f"lost the repository lock {self.key.rsplit('/', 1)[-1]}: another process "
                "took it as stale",
                hint="stop the other process or raise stale_after, then run the command again",
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.store.delete(self.key)


class ReadOnlyLock(HeldLock):
    """No lock file: the repository is read-only to this run (a read-only credential or
    mount: the off-site copy a disaster-recovery restore reads). Shared holders only."""

    def write(self) -> None:
        return None

    def start_refreshing(self) -> None:
        return None

    def release(self) -> None:
        return None


def _read_only(exc: BaseException) -> bool:
    """Was a lock write refused because the repository is read-only to us?"""
    if isinstance(exc, AccessDenied):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS)


def acquire(
    store: RepoStore,
    *,
    exclusive: bool,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    warn: Warn,
) -> HeldLock:
    """Take a lock or raise RepositoryLocked naming the holder; stale locks are removed.

    A shared lock on a repository this run may only read (the write is refused: a
    read-only credential, or a ``ReadingStore``, the repository of a dry run) is taken
    without a file, as restic's ``--no-lock``, after checking that no writer holds it: a
    reader writes nothing, and a prune that ran anyway would make this run fail its digest
    checks, never restore wrong bytes (``Repository.lock`` says so in the error). An
    exclusive lock still needs write access."""
    held = HeldLock(store, f"{FOLDER}{uuid.uuid4().hex}.json", exclusive, stale_after, warn)
    try:
        held.write()
    except RepositoryWriteRefused:  # a run that only reads (a dry run): no lock file
        if exclusive:
            raise
        return _without_a_file(store, stale_after, warn, announce=False)
    except (AccessDenied, OSError) as exc:
        if exclusive or not _read_only(exc):
            raise
        return _without_a_file(store, stale_after, warn)
    try:
        _check_others(store, held, stale_after, warn)
    except BaseException:
        held.release()
        raise
    held.start_refreshing()
    return held


def _without_a_file(
    store: RepoStore, stale_after: timedelta, warn: Warn, *, announce: bool = True
) -> HeldLock:
    held = ReadOnlyLock(store, f"{FOLDER}(none)", False, stale_after, warn)
    now = datetime.now(timezone.utc)
    for key in _lock_keys(store):
        try:
            other = read_lock(store, key)
        except FileNotFoundError:
            continue  # released while we looked
        if other.exclusive and not other.is_stale(now, stale_after, check_pid=store.same_host_pids):
            raise _locked(store, other)
    if announce and store.display not in _WARNED_READ_ONLY:  # once per repository and run
        _WARNED_READ_ONLY.add(store.display)
        warn(
            "the repository is read-only to this credential: reading it without a lock file "
            "(nothing is written to it; every object read is checked against its digest)"
        )
    return held


_WARNED_READ_ONLY: set[str] = set()


def _lock_keys(store: RepoStore) -> list[str]:
    return [f"{FOLDER}{n}" for n in store.list(FOLDER) if n.endswith(".json") and "/" not in n]


def _check_others(store: RepoStore, held: HeldLock, stale_after: timedelta, warn: Warn) -> None:
    now = datetime.now(timezone.utc)
    for key in _lock_keys(store):
        if key == held.key:
            continue
        try:
            other = read_lock(store, key)
        except FileNotFoundError:
            continue  # released while we looked
        stale = other.is_stale(now, stale_after, check_pid=store.same_host_pids)
        # Removed only if unchanged since read: a holder that refreshed it meanwhile is alive.
        if stale and store.delete(key, version=other.version):
            warn(f"removing stale {other.describe()}")
        elif held.exclusive or other.exclusive:
            raise _locked(store, other)


def _locked(store: RepoStore, other: LockInfo) -> RepositoryLocked:
    return RepositoryLocked(
        f"repository {store.display} is locked: {other.describe()}",
        hint=(
            "wait for that command to finish and retry; if that process no longer exists, "
            f"delete {other.where} (or wait until it is older than the stale limit)"
        ),
    )


def list_locks(store: RepoStore) -> list[LockInfo]:
    out = []
    for key in _lock_keys(store):
        try:
            out.append(read_lock(store, key))
        except FileNotFoundError:
            continue
    return out
