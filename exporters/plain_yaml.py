"""``safeload.dump_yaml`` of the generated documents, byte for byte, without PyYAML's
Python representer when it can.

A first backup writes one description per pipeline run (``run_graph.py``): at 100k blobs
~9,000 documents, whose dump through PyYAML's representer (a node per value, the implicit
resolvers' expressions on every string) was ~7 % of the main process's CPU. Their values
are names, ids, locations, module names, parameter values and a few sentences: printable
ASCII that PyYAML writes as it is (a plain scalar) or between single quotes (``'True'``,
``'0.7'``, ``'%22Split+Rows%22'``: a plain scalar would read back as another type, or it
starts with an indicator). This module writes such a document itself, as PyYAML (libyaml's
emitter) does: block style, two spaces of indent, a sequence under a mapping key not
indented, an empty mapping or sequence as ``{}``/``[]``, ``null``, ``true``/``false``,
``''``; a container met twice as an anchor (``&id001``, numbered in PyYAML's order) and
aliases; text with spaces folded beyond the line width as libyaml folds it. The choice of
plain or quoted is PyYAML's own resolvers' answer.

It gives the document to ``dump_yaml`` as soon as it meets anything else: text with control
or non-ASCII characters (escapes), text it cannot tell plain from quoted (``-x``, ``/x``),
a key PyYAML could not write as a simple key, a float with an exponent, a tuple, a sequence
directly in a sequence. ``tests/unit/test_plain_yaml.py`` checks the bytes against
``dump_yaml`` on generated documents (hypothesis: printable, hostile and non-ASCII text,
long lines, numbers, nesting, shared containers).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from amlport.safeload import dump_yaml

# Text PyYAML writes as a plain scalar in block context: printable ASCII that starts with a
# letter, a digit or ``_`` (no indicator, no ``---``/``...``) and does not end with a space or
# ``:``; no ``: `` (a mapping value) or `` #`` (a comment) in it. Whether it would read back as
# a string (not a number, a boolean, a date, null) is asked of PyYAML's own resolvers.
_PLAIN = re.compile(r"[A-Za-z0-9_](?:[ -~]*[!-9;-~])?\Z")
_PRINTABLE = re.compile(r"[ -~]+\Z")
_INDICATORS = "#,[]{}&*!|>'\"%@`"  # a first character that forbids a plain scalar
_MAX_KEY = 100  # PyYAML writes a key of 128 characters or more as a complex key (``? ``)
WIDTH = 80  # PyYAML's line width: a scalar with spaces may be folded beyond it
_STR = "tag:yaml.org,2002:str"
_FLOAT = "tag:yaml.org,2002:float"
_resolver = yaml.resolver.Resolver()
_known: dict[str, str | None] = {}  # text → as written (None: PyYAML's); names recur


class _Other(Exception):
    """The document holds something this module does not write: ``dump_yaml`` does."""


def dump(doc: dict[str, Any]) -> bytes:
    """``dump_yaml(doc)``: the same bytes."""
    if type(doc) is not dict or not doc:
        return dump_yaml(doc)
    try:
        return _Writer(doc).bytes()
    except _Other:
        return dump_yaml(doc)


def _text(text: str, column: int | None, indent: int = 0) -> str:
    """``text`` (not empty) as PyYAML writes it starting at ``column`` (None: a key, never
    folded), a value's next lines indented by two more than its key or dash."""
    written = _known.get(text, "")
    if written == "":
        written = _style(text)
        if len(_known) < 65536:
            _known[text] = written
    if written is None:
        raise _Other  # escapes, or a style this module does not tell
    if column is not None and " " in written and column + len(written) > WIDTH:
        return _fold(written, column, indent)
    return written


def _fold(written: str, column: int, indent: int) -> str:
    """A plain or single-quoted scalar with spaces, as libyaml's emitter writes it from
    ``column``: at a single space (not the text's first or last character) reached beyond
    the line width, a new line indented to ``indent`` instead of the space."""
    quoted = written[0] == "'"
    last = len(written) - 1
    out: list[str] = []
    start = 0
    col = column
    previous = ""
    for i, ch in enumerate(written):
        if (
            ch == " "
            and previous != " "
            and col > WIDTH
            and i < last
            and written[i + 1] != " "
            and not (quoted and (i == 1 or i == last - 1))
        ):
            out.append(written[start:i])
            out.append("\n" + " " * indent)
            start = i + 1
            col = indent
        else:
            col += 1
        previous = ch
    out.append(written[start:])
    return "".join(out)


def _style(text: str) -> str | None:
    """``text`` as PyYAML writes it on one line: plain, or single-quoted when a plain
    scalar cannot be (it would read back as another type, or it holds an indicator); None
    when unsure (PyYAML's representer and emitter decide)."""
    if not _PRINTABLE.match(text):
        return None  # control or non-ASCII characters: escapes or other rules
    implicit = _resolver.resolve(yaml.ScalarNode, text, (True, False)) == _STR
    if implicit and _PLAIN.match(text) and ": " not in text and " #" not in text:
        return text
    if not implicit or _not_plain(text):
        return "'" + text.replace("'", "''") + "'"
    return None  # plain perhaps (``-x``, ``.x``, ``/x``): PyYAML's call


def _not_plain(text: str) -> bool:
    """Is a plain scalar of ``text`` impossible in block context (PyYAML's analysis)?"""
    first = text[0]
    return (
        first in _INDICATORS
        or first == " "
        or text[-1] == " "
        or text[-1] == ":"
        or ": " in text
        or " #" in text
        or (first in "-?:" and (len(text) == 1 or text[1] == " "))
        or text.startswith(("---", "..."))
    )


def _scalar(value: Any, column: int, indent: int) -> str | None:
    """How PyYAML writes ``value``, not a container, as a scalar starting at ``column``
    (its next lines, if folded, at ``indent``); None for a mapping or a sequence."""
    if type(value) is str:
        return _text(value, column, indent) if value else "''"
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        text = repr(value).lower()  # PyYAML's, for a finite float without an exponent
        implicit = _resolver.resolve(yaml.ScalarNode, text, (True, False))
        if "e" in text or "n" in text or implicit != _FLOAT:
            raise _Other
        return text
    if type(value) is dict or type(value) is list:
        return None
    raise _Other  # a tuple, a date, a subclass, bytes: PyYAML's representer decides


def _key(key: Any) -> str:
    if type(key) is not str or not key or len(key) >= _MAX_KEY:
        raise _Other
    return _text(key, None)


class _Writer:
    """One document in PyYAML's block style, with its anchors and aliases."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.out: list[str] = []
        self.anchors: dict[int, str | None] = {}  # container id → its anchor (None: once)
        self.written: set[int] = set()  # anchored containers written (then: an alias)
        self.named = 0  # anchors given
        self._anchor(doc)
        if self.anchors[id(doc)] is not None:
            raise _Other  # the document holds itself

    def bytes(self) -> bytes:
        self._mapping(self.doc, 0, "")
        return "".join(self.out).encode("ascii")

    def _anchor(self, value: Any) -> None:
        """PyYAML's serializer: a container met a second time (in document order, keys
        before values, not entering it again) gets the next anchor, ``id001`` on."""
        if type(value) is not dict and type(value) is not list:
            return
        key = id(value)
        if key in self.anchors:
            if self.anchors[key] is None:
                self.named += 1
                self.anchors[key] = f"id{self.named:03d}"
            return
        self.anchors[key] = None
        for item in value.values() if type(value) is dict else value:
            self._anchor(item)

    def _node(self, value: Any, column: int, indent: int) -> tuple[str, bool]:
        """The text after ``key: `` or ``- `` for ``value``: a scalar, an alias, or an
        anchor; and whether the container's block follows on the next lines."""
        text = _scalar(value, column, indent)
        if text is not None:
            return text, False
        anchor = self.anchors[id(value)]
        if anchor is not None:
            if id(value) in self.written:
                return f"*{anchor}", False
            self.written.add(id(value))
            if not value:
                return f"&{anchor} {'{}' if type(value) is dict else '[]'}", False
            return f"&{anchor}", True
        if not value:
            return "{}" if type(value) is dict else "[]", False
        return "", True

    def _mapping(self, doc: dict[str, Any], indent: int, first: str) -> None:
        """A non-empty block mapping whose keys start at column ``indent``; its first line
        starts with ``first`` (``- `` for an item of a sequence, as wide as the indent)."""
        out = self.out
        pad = " " * indent
        lead = first
        for key, value in doc.items():
            written = _key(key)
            text, block = self._node(value, indent + len(written) + 2, indent + 2)
            out.append(f"{lead}{written}:{' ' if text else ''}{text}\n")
            lead = pad
            if not block:
                continue
            if type(value) is dict:
                self._mapping(value, indent + 2, " " * (indent + 2))
            else:
                self._sequence(value, indent)

    def _sequence(self, items: list[Any], indent: int) -> None:
        """A non-empty block sequence whose dashes stand at column ``indent``."""
        out = self.out
        pad = " " * indent
        for item in items:
            text, block = self._node(item, indent + 2, indent + 2)
            if not block:
                out.append(f"{pad}- {text}\n")
            elif type(item) is list:
                raise _Other  # a sequence in a sequence (``- - x``)
            elif text:  # an anchored mapping: its keys on the next lines
                out.append(f"{pad}- {text}\n")
                self._mapping(item, indent + 2, " " * (indent + 2))
            else:
                self._mapping(item, indent + 2, f"{pad}- ")
