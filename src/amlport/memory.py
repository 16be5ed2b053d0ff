"""Give the heap's free pages back to the system between the phases of a long command.

CPython frees small objects into its own arenas and larger blocks into the C allocator,
which keeps most freed pages mapped: after a 100k-file phase lets go of its objects, the
process still counts them in its resident set, and the next phase grows on top of it
(docs/design/0007, "Peak memory of restore and diff at 100k (C, session 8)"). glibc's
``malloc_trim(0)`` returns every wholly free page of the heap (``madvise``), at the price of
a walk over the heap's free lists (milliseconds). Elsewhere (musl, macOS) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


def trim_heap() -> bool:
    """Return the heap's free pages to the system (glibc ``malloc_trim(0)``); True when some
    were returned. Call it once a phase has dropped its objects (after ``gc.collect()``
    where they were in reference cycles), not in a loop."""
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False
