"""Terminal output that a name in storage cannot hijack (design 0004, "console").

Every byte amlport prints comes from a workspace it does not control: blob names, tags, run
ids, error messages quoting them. Two things must never happen to such text:

- **markup**: rich reads ``[bold]``, ``[/]`` or ``[link=…]`` in a printed string as a tag, so
  a legal blob name ``x[/]y.txt`` crashed the run (``MarkupError``) and ``ws[prod]`` printed
  as ``ws``;
- **control characters**: an ESC sequence in a file name recolours, retitles or rewrites the
  terminal; a carriage return overwrites the line it is on.

``SafeConsole`` keeps both out by construction, not by each call remembering: it never parses
markup (the few styled labels are ``Text`` objects made by ``styled``/``line``), and every
string it renders, and as a last net every segment it emits, goes through ``plain``, which
shows control characters as visible escapes (``\\x1b``). Layout characters (newline, tab)
are kept. Documents written to stdout (lineage, map templates, reports) go through
``document_text``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text

# C0 except tab and newline, DEL, C1 (0x9b is a one-byte CSI to some terminals), the line and
# paragraph separators, and the bidi embeddings/overrides/isolates that reorder what is shown.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def plain(value: object) -> str:
    """``value`` as text safe for a terminal: control characters shown as ``\\x1b`` & co.

    Brackets are left alone: a ``SafeConsole`` never reads them as markup.
    """
    text = str(value)
    return _UNSAFE.sub(_visible, text) if _UNSAFE.search(text) else text


def document_text(text: str, *, is_json: bool = False) -> str:
    """A whole document for stdout, control characters escaped.

    JSON gets ``\\u007f``-style escapes: ``json.dumps`` already escapes C0, the rest only
    occurs inside strings, so the document decodes to the same values.
    """
    if not _UNSAFE.search(text):
        return text
    return _UNSAFE.sub(_json_escape if is_json else _visible, text)


def styled(text: object, style: str) -> Text:
    """One styled piece, e.g. ``styled("warning", "yellow")``; the text is never markup."""
    return Text(plain(text), style=style)


def line(*parts: object | tuple[object, str]) -> Text:
    """A line assembled from plain parts and ``(text, style)`` pairs, all of them escaped."""
    out = Text()
    for part in parts:
        if isinstance(part, tuple):
            out.append(plain(part[0]), style=part[1])
        else:
            out.append(plain(part))
    return out


class SafeConsole(Console):
    """A rich console that never reads markup or emoji codes and never emits a control
    character it did not generate itself (styles, cursor moves of a progress bar)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(markup=False, emoji=False)
        kwargs.setdefault("highlight", False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # Escaped before layout, so table columns are measured on what is shown; markup=True
        # from a caller is refused here, which is what makes the console safe by construction.
        kwargs.update(markup=False, emoji=False)
        return super().render_str(plain(text), **kwargs)

    def render(
        self, renderable: RenderableType, options: ConsoleOptions | None = None
    ) -> Iterable[Segment]:
        # The net under everything else: a Text built elsewhere with a raw ESC still comes out
        # escaped. Control segments are rich's own (cursor moves, clear line) and pass.
        for segment in super().render(renderable, options):
            if segment.control or not _UNSAFE.search(segment.text):
                yield segment
            else:
                yield Segment(plain(segment.text), segment.style)
