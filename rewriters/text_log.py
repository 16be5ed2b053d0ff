"""Text logs (``*.txt``, ``*.log``, ``rslex.log.*``, JSON logs): every URI span that
``find_uris`` recognises is rewritten where it is workspace-bound, and every secret is
redacted (``amlport.secrets``). Locations are ``line N``.

A log is history: an ``Unmappable`` URI becomes a warning and stays as it was (its SAS, if
any, is still redacted). Mount paths are provenance and stay (see ``mount``); so do plain
words that name the account or a container (``Mounting <container> container from
<account> account at /mnt/batch/…``): they are not locations, and they say what happened.

Non-UTF-8 logs are decoded as Latin-1 (every byte round-trips), rewritten, and re-encoded
the same way, so bytes outside the rewritten spans are unchanged.

Large files go through ``LogStream`` instead (same per-line rewriting, bounded memory): the
bytes are read in chunks and decoded as UTF-8 with invalid bytes escaped (``surrogateescape``),
so every byte outside a rewritten span is written back unchanged. A line longer than a chunk
(a 100 MB single-line log) comes in pieces, cut where no URI and no secret straddles the cut
(``_cut``). ``scan_secrets`` counts the secrets of a stream the same way, for the walker.
Output is byte for byte what ``rewrite_log`` gives for UTF-8 input, with one bound: a single
secret-looking value longer than ``HOLD`` characters (``sig=`` glued to 16 KiB of letters; no
real credential is that long) is redacted from its start to the cut, not to its end.
"""

from __future__ import annotations

import codecs
import hashlib
import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, cast

from amlport.rewriters.recorder import Decoded, Recorder
from amlport.rewriters.rules import RewriteResult, RewriteRules
from amlport.secrets import (
    UNFINISHED_MAX,
    crosses_line,
    find_secrets,
    may_hold_secret,
    secret_spans,
    unfinished_secret,
)
from amlport.streams import ChunkStream, Tee

STREAM_CHUNK = 1 << 20  # bytes read at a time: memory is a few times this
URI_MAX = 8192  # no URI is longer (model/uris.py); a run of non-stops longer than this holds none
HOLD = 2 * URI_MAX  # chars kept back after a cut inside a long line
MARGIN = 64  # chars kept before a secret: room for its look-behind prefix (AccountKey=)
STOPS = " \t\r\n\f\v\"'<>`\\;|"  # a URI never spans these (model/uris.py)
# Every URI find_uris recognises contains one of these (lower case); tests/reliability checks
# them against its start pattern. Text without any of them holds no URI.
URI_HINTS = (":/", "azureml:", "mlflow-artifacts:", "/mnt/", "/scratch/")


def rewrite_log(name: str, data: bytes, rules: RewriteRules) -> RewriteResult:
    decoded = Decoded.of(data)
    rec = Recorder(name, rules, lenient=True)
    if untouched(decoded.text):  # most logs: no line could change, none is looked at
        return rec.result(data)
    text = rewrite_text(decoded.text, rec)
    if text == decoded.text:
        return rec.result(data)
    return rec.result(decoded.encode(text, rec))


def rewrite_text(text: str, rec: Recorder) -> str:
    """Rewrite URIs and redact secrets line by line; a secret wrapped onto the next line (a
    SAS signature cut by a line break, a PEM key) is redacted whole first. A line is searched
    for URIs only when the text holds a URI hint, and scrubbed only when the text holds a
    secret trigger or the line was rewritten (no line holds what the whole text lacks)."""
    secrets = may_hold_secret(text)
    if secrets and crosses_line(text):
        text = rec.scrub(text)  # (redaction adds no trigger and no URI hint)
    uris = may_hold_uri(text)
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        new, pairs = rec.spans(line, f"line {number}") if uris else (line, [])
        lines[number - 1] = rec.scrub(new) if secrets or pairs else new
    return "\n".join(lines)


# --- streams ---------------------------------------------------------------------------------


class BinaryContent(Exception):
    """A NUL byte in a stream rewritten with ``binary_check``: copy the file unchanged."""


@dataclass(frozen=True)
class Piece:
    """Text that can be rewritten on its own."""

    text: str
    line: int  # the number of its first line
    whole_lines: bool  # True: whole lines (the last may lack its newline); False: part of one
    uri_free: bool = False  # cut inside a run of non-stops too long to hold a URI


def may_hold_uri(text: str) -> bool:
    lower = text.lower()
    return any(h in lower for h in URI_HINTS)


def untouched(text: str) -> bool:
    """True when ``rewrite_text`` certainly returns ``text`` as it is, with no change,
    redaction or warning: it holds no URI hint and no secret trigger (a line holds neither
    when the whole text does not). Two substring passes instead of a URI search and a
    secret pre-check per line: most logs of a workspace hold neither."""
    return not may_hold_uri(text) and not may_hold_secret(text)


def pieces(src: BinaryIO, *, chunk: int = STREAM_CHUNK) -> Iterator[Piece]:
    """Cut a byte stream into pieces: runs of whole lines, and parts of lines longer than
    ``chunk`` characters. At most about two chunks of text are held at a time (and a secret
    that may go on past a piece's end, up to ``UNFINISHED_MAX``, waits for its rest).
    """
    decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    pending, line = "", 1
    while True:
        data = src.read(chunk)
        text = pending + decoder.decode(data, final=not data)
        if not data:  # the end: what is left is one piece (a held secret with its rest)
            if text:
                yield Piece(text, line, True)
            return
        end = last = text.rfind("\n") + 1
        if end:  # more follows: a secret that may go on past here waits for it
            end = _before_unfinished_secret(text, end, chunk)
        if end:
            yield Piece(text[:end], line, True)
            line += text.count("\n", 0, end)
            text = text[end:]
        while end == last and len(text) > chunk + HOLD:  # (a held secret is whole lines)
            cut, uri_free = _cut(text, len(text) - HOLD)
            yield Piece(text[:cut], line, False, uri_free)
            text = text[cut:]
        pending = text


def _before_unfinished_secret(text: str, end: int, chunk: int) -> int:
    """``end`` (after the last newline of ``text``), or the start of the line where a secret
    begins that may go on past ``end`` (a PEM key whose END line is still to come, a wrapped
    SAS signature): those lines go with the next piece, so the secret is redacted whole, as
    ``rewrite_text`` redacts it in the whole file. Not when the text from there is longer than
    ``UNFINISHED_MAX`` and a chunk (no real PEM key is that long; a line that never ends
    after a wrapped signature is cut as any long line): memory stays bounded."""
    if not may_hold_secret(text):
        return end
    start = unfinished_secret(text[:end])
    if start is None or len(text) - start > UNFINISHED_MAX + chunk:
        return end
    return text.rfind("\n", 0, start) + 1


def _cut(text: str, limit: int) -> tuple[int, bool]:
    """Where to cut ``text`` (near ``limit``) so that both sides rewrite as the whole would.

    Right after a stop character (no URI spans one), else inside a run of non-stops too long
    to hold a URI (``uri_free``); never inside a secret or just after its prefix (``MARGIN``).
    """
    guarded = sorted((max(0, s - MARGIN), e) for s, e in secret_spans(text))

    def blocker(cut: int) -> tuple[int, int] | None:
        return next(((s, e) for s, e in guarded if s < cut < e), None)

    hi = limit
    while (stop := _rfind_stop(text, 0, hi)) >= 0:  # the last stop before the limit
        if (hit := blocker(stop + 1)) is None:
            return stop + 1, False
        hi = min(stop, hit[0])
    if _find_stop(text, limit, limit + URI_MAX + 1) < 0 and blocker(limit) is None:
        return limit, True
    lo = limit
    while (stop := _find_stop(text, lo, len(text) - 1)) >= 0:  # else the first one after it
        if (hit := blocker(stop + 1)) is None:
            return stop + 1, False
        lo = max(stop + 1, hit[1])
    return limit, False  # a secret longer than the window: cut through it


def _rfind_stop(text: str, lo: int, hi: int) -> int:
    return max(text.rfind(c, lo, hi) for c in STOPS)


def _find_stop(text: str, lo: int, hi: int) -> int:
    found = [i for c in STOPS if (i := text.find(c, lo, hi)) >= 0]
    return min(found) if found else -1


def scan_secrets(src: BinaryIO, *, chunk: int = STREAM_CHUNK) -> Counter[str]:
    """Count the secrets in a stream of any size (the walker's check of large files)."""
    counts: Counter[str] = Counter()
    for piece in pieces(src, chunk=chunk):
        if may_hold_secret(piece.text):
            counts.update(find_secrets(piece.text))
    return counts


class LogStream:
    """``rewrite_log`` for a stream: iterate ``run(src)`` for the output bytes (or read
    ``reader(src)``), then read ``changed`` and ``result()`` (changes, redaction counts,
    warnings; no data), and ``read``/``md5``/``sha256`` of the input.

    ``uris=False`` only redacts secrets (files that are not logs); ``binary_check`` raises
    ``BinaryContent`` at the first NUL byte (a binary file is never altered).
    """

    def __init__(
        self,
        name: str,
        rules: RewriteRules,
        *,
        uris: bool = True,
        binary_check: bool = False,
        chunk: int = STREAM_CHUNK,
    ) -> None:
        self.rec = Recorder(name, rules, lenient=True)
        self.uris = uris
        self.binary_check = binary_check
        self.chunk = chunk
        self.changed = False
        self.read = 0
        self.md5 = hashlib.md5(usedforsecurity=False)
        self.sha256 = hashlib.sha256()

    def reader(self, src: BinaryIO) -> BinaryIO:
        """The rewritten bytes as a readable stream."""
        return cast(BinaryIO, io.BufferedReader(ChunkStream(self.run(src)), STREAM_CHUNK))

    def _taken(self, data: bytes) -> None:
        """What the input gave: counted and hashed as it passes."""
        self.md5.update(data)
        self.sha256.update(data)
        self.read += len(data)

    def run(self, src: BinaryIO) -> Iterator[bytes]:
        for piece in pieces(cast(BinaryIO, Tee(src, self._taken)), chunk=self.chunk):
            if self.binary_check and "\x00" in piece.text:
                raise BinaryContent("a NUL byte: binary content")
            new = self._rewrite(piece)
            if new != piece.text:
                self.changed = True
            yield new.encode("utf-8", "surrogateescape")

    def result(self) -> RewriteResult:
        return self.rec.result(b"")

    def _rewrite(self, piece: Piece) -> str:
        uris = self.uris and not piece.uri_free and may_hold_uri(piece.text)
        if not uris and not may_hold_secret(piece.text):
            return piece.text
        text = piece.text
        if crosses_line(text):  # as rewrite_text: a wrapped secret goes whole first
            text = self.rec.scrub(text)
        if not piece.whole_lines:
            return self._line(text, piece.line, uris)
        lines = text.split("\n")
        return "\n".join(self._line(t, piece.line + i, uris) for i, t in enumerate(lines))

    def _line(self, text: str, number: int, uris: bool) -> str:
        if uris:
            text, _ = self.rec.spans(text, f"line {number}")
        return self.rec.scrub(text) if may_hold_secret(text) else text
