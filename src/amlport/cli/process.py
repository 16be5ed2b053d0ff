"""Settings of the amlport process itself (the CLI only: a library caller's process is its
own business)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from types import FrameType

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter numbers
M_ARENA_MAX = -8
ARENAS = 2
MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept from growing


class Terminated(KeyboardInterrupt):
    """SIGTERM — how cron, systemd and container runtimes stop a job — raised where Ctrl-C
    would be, so it takes the same way out: files in flight abandoned, staging removed, no
    snapshot, locks released; only the exit code differs (143)."""


def stop_on_sigterm() -> None:
    """Turn the first SIGTERM into ``Terminated`` (call from the main thread). Later ones
    are ignored while that stop runs: a service manager that will not wait sends SIGKILL."""

    def stop(_signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    signal.signal(signal.SIGTERM, stop)


def tune_malloc() -> dict[str, bool]:
    """Two glibc malloc settings that lower peak RSS; which ones were set.

    - ``M_ARENA_MAX`` = 2. glibc gives threads that allocate their own arenas, up to eight
      per core, and each keeps the memory freed into it: with eight transfer threads that
      was 8 MB of peak RSS held for nothing in a 100k-blob backup. Python threads allocate
      under the GIL, so fewer arenas cost no contention.
    - ``M_MMAP_THRESHOLD`` = 128 KiB, glibc's default, made fixed. Left dynamic, glibc raises
      the threshold to the size of the first large buffer freed, after which the 1 MiB read
      blocks and 4 MiB chunks of the transfer come from the heap and the heap keeps them:
      5 MB of peak RSS in a 100k-blob backup (docs/design/0003-scale.md).

    The environment wins (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``); other C libraries
    (musl, macOS, Windows) are left alone. Call it before any thread starts.
    """
    return {
        "arena_max": _mallopt(M_ARENA_MAX, ARENAS, "MALLOC_ARENA_MAX"),
        "mmap_threshold": _mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD, "MALLOC_MMAP_THRESHOLD_"),
    }


def _mallopt(param: int, value: int, env: str) -> bool:
    if not sys.platform.startswith("linux") or env in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(param, value))
    except (OSError, AttributeError):
        return False
