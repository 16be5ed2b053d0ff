"""Whether a process runs: one answer for the lock files (bundle/lock.py), the temp files of
a killed writer (storage/target.py) and the export workers' watch on their parent
(export/workers.py). A leaf utility on the lowest floor (docs/design/0000-map.md)."""

from __future__ import annotations

import os

_PROC = os.path.isdir("/proc/self")


def pid_alive(pid: int) -> bool:
    """Does process ``pid`` run on this machine (not ended, nor a zombie waiting to be
    reaped)? Where that cannot be asked safely (Windows: ``os.kill(pid, 0)`` would end it),
    True: a caller then waits for an age limit instead."""
    if pid <= 0:
        return False
    if os.name == "nt":
        return True
    if _PROC:
        try:
            with open(f"/proc/{pid}/stat", "rb") as fh:
                return fh.read().rsplit(b")", 1)[1].split()[0] != b"Z"
        except (OSError, IndexError):
            return False
    try:  # no /proc (macOS): ask the kernel
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # OverflowError: a hostile lock file's pid
        return False
    except PermissionError:
        return True  # it exists, owned by someone else
    return True
