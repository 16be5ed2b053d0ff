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

import os
import re
from collections.abc import Iterable
from typing import Any

from rich.console import Console, ConsoleOptions, RenderableType
from rich.segment import Segment
from rich.text import Text
from rich.traceback import Traceback

from amlport.plaintext import UNSAFE, document_text, plain

__all__ = [
    "ClosedPipeSafe",
    "SafeConsole",
    "document_text",
    "fold_path",
    "line",
    "plain",
    "styled",
    "without_secrets",
]

# The sanitiser itself is pure text, one floor down (the HTML report uses it too).
_UNSAFE = UNSAFE


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
        renderable = _redacted(renderable)  # before layout: a wrap may split a secret
        for segment in super().render(renderable, options):
            if segment.control or not _UNSAFE.search(segment.text):
                yield segment
            else:
                yield Segment(plain(segment.text), segment.style)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # What one print writes, secrets redacted (F, session 8): a secret in a workspace.yaml
        # value, a tag or a path printed by any command never reaches the terminal or a log.
        return without_secrets(super()._render_buffer(buffer))


def _redacted(renderable: RenderableType) -> RenderableType:
    """``renderable`` with secrets redacted before rich lays it out (F, session 9): the
    buffer is redacted again after layout, but a line folded between ``sig=`` and its value
    no longer looks like a secret there, and the value came out whole. Texts (every string
    printed becomes one) and a traceback's exception messages (``--debug``); rich renders
    nested renderables (tables, panels) through ``render`` too."""
    if isinstance(renderable, Text):
        shown = without_secrets(renderable.plain)
        if shown == renderable.plain:
            return renderable
        return Text(shown, style=renderable.style, justify=renderable.justify,
                    overflow=renderable.overflow, no_wrap=renderable.no_wrap,
                    end=renderable.end)  # fmt: skip
    if isinstance(renderable, Traceback):
        for stack in renderable.trace.stacks:
            stack.exc_value = without_secrets(stack.exc_value)
            stack.notes = [without_secrets(note) for note in stack.notes]
    return renderable


def without_secrets(text: str) -> str:
    """``text`` with what looks like a secret redacted (``secrets.redact``, the one
    detector, whose fast pre-check passes most text untouched): the one net under everything
    amlport prints, on the console and in documents written to stdout."""
    from amlport.secrets import redact

    return redact(text)


def fold_path(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters after a ``/`` (a path, a
    blob name), so a table column folds it where a reader expects and never mid-segment;
    only a single segment longer than ``width`` is cut inside."""
    if width < 1 or len(text) <= width:
        return text
    lines: list[str] = []
    current = ""
    for piece in re.split(r"(?<=/)", text):
        while len(piece) > width:  # one segment wider than the column
            if current:
                lines.append(current)
                current = ""
            lines.append(piece[:width])
            piece = piece[width:]
        if len(current) + len(piece) > width:
            lines.append(current)
            current = piece
        else:
            current += piece
    if current:
        lines.append(current)
    return "\n".join(lines)


class ClosedPipeSafe:
    """stdout that a reader closing the pipe early (``amlport scan … | head -1``) cannot turn
    into an error: the first ``BrokenPipeError`` points the descriptor at ``/dev/null`` and
    the rest of the output is dropped, so the run ends as it would have (its own exit code),
    without a traceback and without Python's exit 120 for a failed final flush."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.pipe_closed = False

    def write(self, text: str) -> int:
        if self.pipe_closed:
            return len(text)
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._close()
            return len(text)

    def flush(self) -> None:
        if self.pipe_closed:
            return
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._close()

    def _close(self) -> None:
        self.pipe_closed = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(devnull, self._stream.fileno())
            finally:
                os.close(devnull)
        except (OSError, ValueError):  # no descriptor (a test's StringIO): nothing to point
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
