"""A native prefilter for the byte scan of ``amlport.secrets`` (docs/design/0005, "Native
secret prefilter").

The scan of binary bytes searches, with the Python regular expressions, every run of
printable text (one byte a character, or UTF-16) that holds a trigger: a substring without
which no secret pattern can match. Finding those runs in CPython costs ~2 ms per MiB of model
weights, most of a large backup's CPU beyond the data path. Here Vectorscan (the
BSD-licensed fork of Hyperscan, through the ``hyperscan`` package's statically linked wheels)
finds, in one native pass, the *places* where such a run can stand: a superset, by the
expressions below. ``secrets._search_places`` then searches exactly the runs around those
places, with the same Python code, so the result is the pure scan's by construction.

Without the ``hyperscan`` package (a platform it has no wheel for), or with
``AMLPORT_SECRET_PREFILTER=0`` in the environment, the pure scan runs alone: same results,
more CPU. The expressions are compiled once per process, and only after ``WARM_UP`` bytes of
binary data were scanned without them (compiling costs about as much as scanning that much:
a command that scans a few binary files never pays it).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterable
from typing import Any

ONE_BYTE = 1  # a trigger inside a run of printable bytes
WIDE = 2  # a trigger inside a run of printable and NUL bytes (UTF-16 text)

# More places than this in one buffer (text, not weights): the pure scan of that buffer is
# cheaper than a Python call per place, and runs instead.
MAX_HITS = 256
WARM_UP = 32 << 20
WIDE_PREFIX = 4  # characters of a trigger the UTF-16 expressions spell out

_PRINTABLE = r"[\x09\x0a\x0d\x20-\x7e]"


def _char(c: str) -> str:
    """One character of a trigger, ASCII case-insensitive (``bytes.lower`` folds only ASCII)."""
    if c.isascii() and c.isalpha():
        return f"[{c.lower()}{c.upper()}]"
    return f"\\x{ord(c):02x}"


def expressions(triggers: Iterable[str], min_run: int) -> list[tuple[int, str]]:
    """``(kind, expression)``: together, a superset of every place where a trigger stands in
    a run the Python scan searches.

    - ``ONE_BYTE``: a run of at least ``min_run`` printable bytes that holds a trigger of
      ``n`` characters has ``min_run - n`` printable bytes around it, before, after, or split
      (one alternative per split).
    - ``WIDE``: the text of a UTF-16 run is the run without its NUL bytes, so a trigger in
      that text stands in the run with any number of NUL bytes between its characters. Its
      first ``WIDE_PREFIX`` characters, NUL bytes allowed between them, are the expression.
    """
    out: list[tuple[int, str]] = []
    wide: dict[str, None] = {}
    for trigger in triggers:
        chars = [_char(c) for c in trigger]
        rest = max(0, min_run - len(chars))
        core = "".join(chars)

        def repeat(n: int) -> str:
            return f"{_PRINTABLE}{{{n}}}" if n else ""  # (Vectorscan refuses a repeat of 0)

        out.append(
            (ONE_BYTE, "|".join(f"{repeat(a)}{core}{repeat(rest - a)}" for a in range(rest + 1)))
        )
        wide["\\x00*".join(chars[:WIDE_PREFIX])] = None
    out += [(WIDE, e) for e in wide]
    return out


class Prefilter:
    """The compiled expressions and a scratch space per thread (Vectorscan's scratch may not
    serve two scans at once; backups scan in several threads)."""

    def __init__(self, hyperscan: Any, triggers: Iterable[str], min_run: int) -> None:
        self._hs = hyperscan
        found = expressions(triggers, min_run)
        self._db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
        self._db.compile(
            expressions=[e.encode("ascii") for _, e in found],
            ids=[kind for kind, _ in found],
            elements=len(found),
            flags=0,
        )
        self._local = threading.local()

    def places(self, data: bytes) -> list[tuple[int, int]] | None:
        """``(kind, end)`` of every place found (``end``: the offset just after it), or None
        when there are more than ``MAX_HITS``."""
        hits: list[tuple[int, int]] = []
        add = hits.append

        def on_match(kind: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
            add((kind, end))
            return len(hits) > MAX_HITS  # True halts the scan

        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._db)
        with contextlib.suppress(self._hs.ScanTerminated):
            self._db.scan(data, match_event_handler=on_match, scratch=scratch)
        return None if len(hits) > MAX_HITS else hits


_lock = threading.Lock()
_mode = "auto"  # "auto": after the warm-up; "pure": never; "native": from now on
_prefilter: Prefilter | None = None
_loaded = False
_pure_bytes = 0  # binary bytes scanned before the prefilter was loaded (not locked: a race
# only moves the switch by a buffer)


def for_buffer(size: int) -> Prefilter | None:
    """The prefilter to scan a binary buffer of ``size`` bytes with, or None: the pure scan."""
    global _pure_bytes
    if _loaded:
        return _prefilter
    if _mode == "pure":
        return None
    _pure_bytes += size
    if _mode == "auto" and _pure_bytes < WARM_UP:
        return None
    return _load()


def _load() -> Prefilter | None:
    global _prefilter, _loaded
    with _lock:
        if not _loaded:
            off = os.environ.get("AMLPORT_SECRET_PREFILTER") == "0"
            _prefilter = None if off else _compiled()
            _loaded = True
    return _prefilter


_built: list[Prefilter | None] = []  # compiled once per process (under ``_lock``)
_patterns: tuple[tuple[str, ...], int] | None = None  # what ``secrets`` says to look for


def configure(triggers: Iterable[str], min_run: int) -> None:
    """Called once by ``amlport.secrets`` as it loads: the triggers and the shortest run
    (this module sits below ``secrets`` and never imports it: docs/design/0000 floors)."""
    global _patterns
    _patterns = (tuple(triggers), min_run)


def _compiled() -> Prefilter | None:
    if not _built:
        try:
            import hyperscan
        except ImportError:  # no wheel for this platform: the pure scan
            return None
        if _patterns is None:  # amlport.secrets not imported: nothing to look for
            return None
        _built.append(Prefilter(hyperscan, *_patterns))
    return _built[0]


def available() -> bool:
    """Is the native prefilter usable here (loading it if need be)?"""
    return (_prefilter if _loaded else _load()) is not None


def force(mode: str) -> None:
    """``"pure"``: the pure scan from now on; ``"native"``: the prefilter from the next
    buffer on, whatever its size (when available); ``"auto"``: the default. For tests and
    measurements."""
    global _mode, _prefilter, _loaded, _pure_bytes
    if mode not in ("auto", "pure", "native"):
        raise ValueError(mode)
    with _lock:
        _mode, _prefilter, _loaded, _pure_bytes = mode, None, False, 0
