"""Repository locks (restic's model): one small JSON file per holder under ``locks/``.

Shared locks (export, backup, verify, pack) coexist; an exclusive lock (forget, prune)
conflicts with every other live lock. A lock is taken by writing our file first and then
looking at the others, so two racing takers both see each other and at worst both back off.

A holder refreshes its file while it runs. A lock is stale when its holder is on this host
and its process is gone, or when it has not been refreshed for ``stale_after``; a stale lock
is removed (with a warning) instead of blocking the repository forever.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from amlport.bundle import files
from amlport.errors import AmlportError, ExitCode
from amlport.model.manifest import format_time, parse_time

DEFAULT_STALE_AFTER = timedelta(minutes=30)
Warn = Callable[[str], None]


class RepositoryLocked(AmlportError):
    """Another process holds a conflicting lock on the repository."""

    exit_code = ExitCode.ERROR


@dataclass(frozen=True)
class LockInfo:
    path: Path
    exclusive: bool
    pid: int
    hostname: str
    created: datetime
    refreshed: datetime

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return (
            f"{kind} lock by pid {self.pid} on {self.hostname} since {format_time(self.created)}"
            f" (last refreshed {format_time(self.refreshed)}; file {self.path})"
        )

    def is_stale(self, now: datetime, stale_after: timedelta) -> bool:
        if now - self.refreshed > stale_after:
            return True
        return self.hostname == socket.gethostname() and not pid_alive(self.pid)


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True


def read_lock(path: Path) -> LockInfo:
    """Parse a lock file; an unreadable one counts as exclusive, dated by its mtime."""
    try:
        data = json.loads(path.read_text("utf-8"))
        return LockInfo(
            path=path,
            exclusive=bool(data["exclusive"]),
            pid=int(data["pid"]),
            hostname=str(data["hostname"]),
            created=parse_time(str(data["created"])),
            refreshed=parse_time(str(data["refreshed"])),
        )
    except (OSError, ValueError, KeyError, TypeError):
        mtime = datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)
        return LockInfo(path, True, 0, "unknown", mtime, mtime)


class HeldLock:
    """A lock this process holds; refreshed in the background until released."""

    def __init__(self, path: Path, exclusive: bool, stale_after: timedelta, warn: Warn) -> None:
        self.path = path
        self.exclusive = exclusive
        self.created = datetime.now(timezone.utc)
        self.lost = False
        self._warn = warn
        self._stop = threading.Event()
        self._interval = max(stale_after.total_seconds() / 3, 0.05)
        self._thread: threading.Thread | None = None

    def _payload(self) -> bytes:
        data = {
            "exclusive": self.exclusive,
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "created": format_time(self.created),
            "refreshed": format_time(datetime.now(timezone.utc)),
        }
        return json.dumps(data, sort_keys=True).encode()

    def write(self) -> None:
        files.write_atomic(self.path, self._payload())

    def refresh(self) -> None:
        """Re-date the lock file; notices (and reports) when someone removed it as stale."""
        if self.lost:
            return
        if not self.path.exists():
            self.lost = True
            self._warn(f"lock {self.path} was removed by another process (taken as stale)")
            return
        self.write()

    def start_refreshing(self) -> None:
        self._thread = threading.Thread(target=self._run, name="amlport-lock", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.refresh()
            except OSError as exc:
                self._warn(f"could not refresh lock {self.path}: {exc.strerror or exc}")

    def check(self) -> None:
        if self.lost:
            raise RepositoryLocked(
                f"lost the repository lock {self.path.name}: another process took it as stale",
                hint="stop the other process or raise stale_after, then run the command again",
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)


def acquire(
    locks_dir: Path,
    *,
    exclusive: bool,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
    warn: Warn,
) -> HeldLock:
    """Take a lock or raise RepositoryLocked naming the holder; stale locks are removed."""
    locks_dir.mkdir(parents=True, exist_ok=True)
    held = HeldLock(locks_dir / f"{uuid.uuid4().hex}.json", exclusive, stale_after, warn)
    held.write()
    try:
        _check_others(locks_dir, held, stale_after, warn)
    except BaseException:
        held.release()
        raise
    held.start_refreshing()
    return held


def _check_others(locks_dir: Path, held: HeldLock, stale_after: timedelta, warn: Warn) -> None:
    now = datetime.now(timezone.utc)
    for path in sorted(locks_dir.glob("*.json")):
        if path == held.path or files.is_temp(path):
            continue
        try:
            other = read_lock(path)
        except FileNotFoundError:
            continue  # released while we looked
        if other.is_stale(now, stale_after):
            warn(f"removing stale {other.describe()}")
            path.unlink(missing_ok=True)
        elif held.exclusive or other.exclusive:
            raise _locked(locks_dir.parent, other)


def _locked(repo: Path, other: LockInfo) -> RepositoryLocked:
    return RepositoryLocked(
        f"repository {repo} is locked: {other.describe()}",
        hint=(
            "wait for that command to finish and retry; if that process no longer exists, "
            f"delete {other.path} (or wait until it is older than the stale limit)"
        ),
    )


def list_locks(locks_dir: Path) -> list[LockInfo]:
    if not locks_dir.is_dir():
        return []
    out = []
    for path in sorted(locks_dir.glob("*.json")):
        try:
            out.append(read_lock(path))
        except FileNotFoundError:
            continue
    return out
