"""Read one JSON object member by member, with chosen array members item by item.

A snapshot manifest of a 100k-blob workspace is ~115 MB of JSON. ``json.loads`` of it holds
the text, the whole dict tree and then the typed entries at once: about three times the
file in memory.
``members`` reads the text in blocks and hands out each top-level member as it completes;
for the keys in ``streamed`` whose value is an array it hands out an ``Items`` iterator, so
the caller turns each entry into its typed form while the next is still unread. Any other
member is decoded in pieces a few levels down (``NESTED``: a lineage's nodes one by one),
or read and dropped (``hollow``), so no large value ever sits in the buffer as text.

Every value is decoded by the standard library (``json.JSONDecoder.raw_decode``); this
module only walks the punctuation between them (``{``, ``:``, ``,``, ``[``, ``]``, ``}``),
so it accepts exactly what ``json.loads`` accepts for an object. Duplicate keys: the last
wins, as in ``json.loads``. Errors are ``ValueError`` subclasses (``json.JSONDecodeError``
or ``StreamError``) or ``UnicodeDecodeError``/``RecursionError``, like ``json.loads``.

Why not ijson: its C backend parses as fast as ``json``, but building Python values from
its events for several arrays in one pass runs a Python call per event (≈4M for such a
manifest): 2.9 s against 0.9 s here, and a new dependency for a reader this size.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

BLOCK = 1 << 20  # characters decoded per read
_WS = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()
_NUMBER_TAIL = frozenset("0123456789.eE+-")
NESTED = 2  # levels of a member's value decoded piece by piece (the lineage's node lists)
_MAX_TAIL = 32  # a number's continuation shorter than this may be cut by the block end


def _same(value: Any) -> Any:
    return value


class StreamError(ValueError):
    """The text is not one JSON object (a structural error between values)."""


class _Text:
    """Decoded text of a byte stream in a sliding buffer."""

    def __init__(self, fh: BinaryIO, on_bytes: Callable[[bytes], None] | None) -> None:
        self._fh = fh
        self._on_bytes = on_bytes
        self._decode = codecs.getincrementaldecoder("utf-8")("strict").decode
        self.buf = ""
        self.pos = 0
        self.eof = False

    def more(self, want: int = 0) -> bool:
        """Read at least ``want`` (a block) more characters, fewer at the end; False at the
        end."""
        if self.eof:
            return False
        want = want or BLOCK
        self.buf = self.buf[self.pos :]
        self.pos = 0
        got = 0
        while got < want:
            raw = self._fh.read(want)
            if self._on_bytes is not None and raw:
                self._on_bytes(raw)
            text = self._decode(raw, final=not raw)
            self.buf += text
            got += len(text)
            if not raw:
                self.eof = True
                break
        return True

    def peek(self) -> str:
        """The next character that is not whitespace ('' at the end)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def take(self, allowed: str) -> str:
        char = self.peek()
        if not char or char not in allowed:
            got = repr(char) if char else "the end of the text"
            raise StreamError(f"expected one of {allowed!r}, got {got}")
        self.pos += 1
        return char

    def value(self) -> Any:
        """Decode one whole value, reading on until it is complete."""
        self.peek()
        want = BLOCK
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buf, self.pos)
            except json.JSONDecodeError:
                if self.more(want):  # maybe cut off by the block end: read on
                    want *= 2  # a value of many blocks costs O(size log size), not O(size²)
                    continue
                raise
            # A number cut by the block end ("1.5e" of "1.5e-7") may go on in the next one:
            # read on while what follows could continue it and the buffer is short.
            rest = self.buf[end : end + _MAX_TAIL]
            if self.eof or (rest and (rest[0] not in _NUMBER_TAIL or len(rest) == _MAX_TAIL)):
                self.pos = end
                return value
            self.more(want)

    def tree(self, depth: int, keep: bool = True, leaf: Callable[[Any], Any] = _same) -> Any:
        """Decode one value; an object or array at most ``depth`` levels down is walked
        member by member, item by item, so a large one never sits in the buffer as text
        (a 100k-blob lineage is ~12 MB of it). Each part decoded whole passes through
        ``leaf`` as it arrives. ``keep=False``: objects and arrays are read and checked but
        come back empty (scalars are kept)."""
        char = self.peek()
        if depth <= 0 or char not in "{[":
            return leaf(self.value()) if keep else self.value()
        self.pos += 1
        close = "]" if char == "[" else "}"
        out: Any = [] if char == "[" else {}
        if self.peek() == close:
            self.pos += 1
            return out
        while True:
            if char == "[":
                item = self.tree(depth - 1, keep, leaf)
                if keep:
                    out.append(item)
            else:
                if self.peek() != '"':
                    raise StreamError("expected a member name in double quotes")
                key = leaf(self.value()) if keep else self.value()
                self.take(":")
                item = self.tree(depth - 1, keep, leaf)
                if keep:
                    out[key] = item
            if self.take("," + close) == close:
                return out


class Items:
    """The items of one streamed array member; read them before the next member."""

    def __init__(self, text: _Text) -> None:
        self._text = text
        self.done = False
        self._items = self._read()

    def __iter__(self) -> Iterator[Any]:
        return self._items

    def _read(self) -> Iterator[Any]:
        text = self._text
        text.take("[")
        if text.peek() == "]":
            text.pos += 1
        else:
            while True:
                yield text.value()
                if text.take(",]") == "]":
                    break
        self.done = True


def members(
    fh: BinaryIO,
    streamed: frozenset[str] | tuple[str, ...] = (),
    *,
    on_bytes: Callable[[bytes], None] | None = None,
    hollow: frozenset[str] | tuple[str, ...] = (),
    leaf: Callable[[Any], Any] = _same,
) -> Iterator[tuple[str, Any]]:
    """``(key, value)`` for each member of the JSON object in ``fh``, in stored order; the
    value of a key in ``streamed`` that holds an array is an ``Items``. Other values are
    decoded in pieces ``NESTED`` levels down (``_Text.tree``), each piece (and member name)
    passed through ``leaf`` (to share equal strings while the value is read); the object
    or array of a key in ``hollow`` is read and checked but comes back empty (a part the
    caller does not want costs no memory). ``on_bytes`` sees every byte read (to hash the
    stream); the stream is read to its end."""
    text = _Text(fh, on_bytes)
    text.take("{")
    if text.peek() == "}":
        text.pos += 1
    else:
        while True:
            if text.peek() != '"':
                raise StreamError("expected a member name in double quotes")
            key = text.value()
            text.take(":")
            if key in streamed and text.peek() == "[":
                items = Items(text)
                yield key, items
                if not items.done:
                    for _ in items:  # the caller stopped early: skip the rest
                        pass
            else:
                yield key, text.tree(NESTED, keep=key not in hollow, leaf=leaf)
            if text.take(",}") == "}":
                break
    if text.peek():
        raise StreamError("extra data after the JSON object")
