"""Settings of the amlport process itself (the CLI only: a library caller's process is its
own business)."""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


def limit_malloc_arenas() -> bool:
    """At most ``ARENAS`` glibc malloc arenas (True when set).

    glibc gives threads that allocate their own arenas, up to eight per core, and each keeps
    the memory freed into it: with eight transfer threads that was 8 MB of peak RSS held for
    nothing in a 100k-blob backup (docs/design/0003-scale.md). Python threads allocate under
    the GIL, so fewer arenas cost no contention. ``MALLOC_ARENA_MAX`` in the environment
    wins; other C libraries (musl, macOS, Windows) are left alone.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, ARENAS))
    except (OSError, AttributeError):
        return False
