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

A command with a cache folder (``backup`` and ``export``: the read cache's, ``keep_compiled_in``)
keeps the compiled database there (``secret-prefilter-<key>.hsdb``, the key a digest of the
expressions, the package version and the machine) and loads it in a few milliseconds instead
of compiling it (0.14 s); a kept database is used from the first binary buffer (no
warm-up) once it finds every trigger in a self-check. A kept file that is missing, damaged,
from another platform or that fails the check is compiled anew and replaced (docs/design/0005,
"CPU per MiB and scan (F, session 6)").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import platform
import re
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

ONE_BYTE = 1  # a trigger inside a run of printable bytes
WIDE = 2  # a trigger inside a run of printable and NUL bytes (UTF-16 text)

# More places than this in one buffer (text, not weights): the pure scan of that buffer is
# cheaper than a Python call per place, and runs instead.
MAX_HITS = 256
WARM_UP = 32 << 20
WIDE_PREFIX = 4  # characters of a trigger the UTF-16 expressions spell out
MAX_KEPT_BYTES = 16 << 20  # a kept database larger than this is not read (it holds ~0.2 MB)
KEPT_FORMAT = 1  # part of the kept file's key: a new layout never reads an old file

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


def compile_database(hyperscan: Any, found: list[tuple[int, str]], flags: int = 0) -> Any:
    """A block-mode Vectorscan database of ``(id, expression)`` pairs (``expressions``'
    output), ``flags`` for each."""
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(
        expressions=[e.encode("ascii") for _, e in found],
        ids=[kind for kind, _ in found],
        elements=len(found),
        flags=flags,
    )
    return db


class _Compiled:
    """A compiled database and a scratch space per thread (Vectorscan's scratch may not
    serve two scans at once; backups scan in several threads)."""

    def __init__(self, hyperscan: Any, database: Any) -> None:
        self._hs = hyperscan
        self._db = database
        self._local = threading.local()

    def _scratch(self) -> Any:
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = self._local.scratch = self._hs.Scratch(self._db)
        return scratch


class Prefilter(_Compiled):
    """The byte scan's expressions (``expressions``)."""

    def __init__(
        self, hyperscan: Any, triggers: Iterable[str], min_run: int, *, database: Any = None
    ) -> None:
        if database is None:
            database = compile_database(hyperscan, expressions(triggers, min_run))
        super().__init__(hyperscan, database)

    def finds_every_trigger(self, triggers: Iterable[str], min_run: int) -> bool:
        """Does the database find each trigger (lower and upper case) in the shortest run of
        each kind, at either end of the run (a one-byte run, and UTF-16 text with one NUL
        byte beside each character)? The check of a kept database before it is trusted: a
        stale, damaged or foreign one fails it (or fails to scan) and is compiled anew."""
        pieces: list[tuple[int, bytes]] = []
        for trigger in triggers:
            for text in (trigger.lower(), trigger.upper()):
                pad = "." * max(0, min_run - len(text))
                for run in (pad + text, text + pad):
                    pieces.append((ONE_BYTE, run.encode("ascii")))
                    wide = (pad + run + pad).encode("ascii")
                    pieces.append((WIDE, b"".join(bytes((c, 0)) for c in wide)))
        data = bytearray()
        spans: list[tuple[int, int, int]] = []  # (kind, start, end) of each piece in ``data``
        for kind, piece in pieces:
            data += b"\x01"  # neither printable nor NUL: ends a run of either kind
            spans.append((kind, len(data), len(data) + len(piece)))
            data += piece
        data += b"\x01"
        hits: set[tuple[int, int]] = set()

        def on_match(kind: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
            hits.add((kind, end))
            return False

        try:
            scratch = self._hs.Scratch(self._db)
            self._db.scan(bytes(data), match_event_handler=on_match, scratch=scratch)
        except self._hs.error:
            return False
        ends: dict[int, list[int]] = {ONE_BYTE: [], WIDE: []}
        for kind, end in hits:
            if kind in ends:
                ends[kind].append(end)
        return all(any(lo < e <= hi for e in ends[k]) for k, lo, hi in spans)

    def places(self, data: bytes) -> list[tuple[int, int]] | None:
        """``(kind, end)`` of every place found (``end``: the offset just after it), or None
        when there are more than ``MAX_HITS``."""
        hits: list[tuple[int, int]] = []
        add = hits.append

        def on_match(kind: int, _start: int, end: int, _flags: int, _ctx: object) -> bool:
            add((kind, end))
            return len(hits) > MAX_HITS  # True halts the scan

        with contextlib.suppress(self._hs.ScanTerminated):
            self._db.scan(data, match_event_handler=on_match, scratch=self._scratch())
        return None if len(hits) > MAX_HITS else hits


_lock = threading.Lock()
_mode = "auto"  # "auto": after the warm-up; "pure": never; "native": from now on
_prefilter: Prefilter | None = None
_loaded = False
_pure_bytes = 0  # binary bytes scanned before the prefilter was loaded (not locked: a race
# only moves the switch by a buffer)
_keep_in: Path | None = None  # where the compiled database is kept (``keep_compiled_in``)
_keep_new = True  # write a database compiled here to ``_keep_in`` (False: a dry run's)
_kept: bool | None = None  # is a database kept there? (None: not looked yet)


def for_buffer(size: int) -> Prefilter | None:
    """The prefilter to scan a binary buffer of ``size`` bytes with, or None: the pure scan."""
    global _pure_bytes
    if _loaded:
        return _prefilter
    if _mode == "pure":
        return None
    _pure_bytes += size
    if _mode == "auto" and _pure_bytes < WARM_UP and not _is_kept():
        return None
    return _load()


def keep_compiled_in(folder: str | os.PathLike[str] | None, *, write: bool = True) -> None:
    """Keep the compiled database in ``folder`` (a command's cache folder, created private
    to the user when the database is first written), and use one kept there from the first
    binary buffer on; None: keep nothing (``--no-cache``). ``write=False`` (a dry run: it
    writes nothing anywhere): use one kept there, never write one. A folder that cannot be
    read or written only means compiling, as without one."""
    global _keep_in, _kept, _keep_new
    with _lock:
        _keep_in = None if folder is None else Path(folder)
        _keep_new = write
        _kept = None


def _is_kept() -> bool:
    """Is a database kept for this process's expressions (looked up once per folder)?"""
    global _kept
    if _kept is None:
        with _lock:
            if _kept is None:
                path = _kept_path()
                _kept = path is not None and path.is_file()
    return _kept


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
        _built.append(_kept_or_compiled(hyperscan, *_patterns))
    return _built[0]


def _kept_path() -> Path | None:
    """Where this process's database is kept: its name is a digest of everything that makes
    it (the expressions, the package's version, the machine, ``KEPT_FORMAT``)."""
    if _keep_in is None or _patterns is None:
        return None
    try:
        import hyperscan
    except ImportError:  # no wheel for this platform: the pure scan, nothing is kept
        return None
    package = getattr(hyperscan, "__version__", None)
    if not isinstance(package, str):
        return None  # a build that does not say what it is: compile, keep nothing
    made_of = (KEPT_FORMAT, package, platform.machine(), expressions(*_patterns))
    key = hashlib.sha256(repr(made_of).encode("utf-8")).hexdigest()[:32]
    return _keep_in / f"secret-prefilter-{key}.hsdb"


def _kept_or_compiled(hyperscan: Any, triggers: tuple[str, ...], min_run: int) -> Prefilter:
    """The kept database when there is one that passes the self-check, else a compiled one
    (then kept, when a folder is given)."""
    path = _kept_path()
    if path is not None:
        try:
            if path.stat().st_size <= MAX_KEPT_BYTES:
                loaded = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)
                kept = Prefilter(hyperscan, triggers, min_run, database=loaded)
                if kept.finds_every_trigger(triggers, min_run):
                    return kept
        except (OSError, hyperscan.error):
            pass  # missing, unreadable, damaged or foreign: compiled anew below
    database = compile_database(hyperscan, expressions(triggers, min_run))
    if path is not None and _keep_new:
        _keep(path, hyperscan.dumpb(database))
    return Prefilter(hyperscan, triggers, min_run, database=database)


def _keep(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` whole (a temp file renamed over it), private to the user;
    a failure leaves nothing behind and is not an error (the next run compiles again)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".secret-prefilter-", dir=path.parent)
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(temp)


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
        _text.clear()  # the text search is looked up again (the environment may say off)


# --- text: does any trigger occur? -------------------------------------------------------------


class TextFilter(_Compiled):
    """Vectorscan's answer to "does any of ``words`` occur in this text, ASCII letters in
    either case" (``secrets.may_hold_secret`` of a long text: the Python search of every
    position costs ~50 ns a character, this a few GB/s). ``words`` are ASCII; the caller
    hands the text's UTF-8 bytes, where an ASCII word can only stand as those same bytes."""

    def __init__(self, hyperscan: Any, words: Iterable[str]) -> None:
        found = [(i, re.escape(w)) for i, w in enumerate(words)]
        single = hyperscan.HS_FLAG_CASELESS | hyperscan.HS_FLAG_SINGLEMATCH
        super().__init__(hyperscan, compile_database(hyperscan, found, single))

    def any_in(self, data: bytes) -> bool:
        try:
            self._db.scan(data, match_event_handler=_stop, scratch=self._scratch())
        except self._hs.ScanTerminated:
            return True
        return False


def _stop(*_args: object) -> bool:
    return True  # the first match answers the question: halt the scan


_text: list[TextFilter | None] = []  # compiled once per process (under ``_lock``; 10-20 ms)


def text_filter(words: tuple[str, ...]) -> TextFilter | None:
    """The native search for ``words`` (always the same ones: ``secrets``' triggers), or None
    where the prefilter is off (``AMLPORT_SECRET_PREFILTER=0``, ``force("pure")``) or has no
    wheel: the caller's pure search then, with the same answer."""
    if _text:
        return _text[0] if _mode != "pure" else None
    if _mode == "pure":
        return None
    with _lock:
        if not _text:
            _text.append(_text_compiled(words))
    return _text[0]


def _text_compiled(words: tuple[str, ...]) -> TextFilter | None:
    if os.environ.get("AMLPORT_SECRET_PREFILTER") == "0":
        return None
    try:
        import hyperscan
    except ImportError:  # no wheel for this platform: the pure search
        return None
    try:
        return TextFilter(hyperscan, words)
    except hyperscan.error:
        return None
