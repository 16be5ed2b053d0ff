"""Text safe for a terminal: the one sanitiser (design 0004, "Output that cannot be hijacked").

Every string amlport shows quotes a workspace it does not control. ``plain`` shows control
characters as visible escapes (``\\x1b``), ``document_text`` does the same for a whole document
(JSON gets ``\\u007f``-style escapes, so it decodes to the same values). Pure text functions on
the lowest floor (docs/design/0000-map.md), so that the CLI's ``SafeConsole``
(``cli/terminal.py``) and the HTML report share them without the report importing the CLI.
"""

from __future__ import annotations

import re

# C0 except tab and newline, DEL, C1 (0x9b is a one-byte CSI to some terminals), the line and
# paragraph separators, and the bidi embeddings/overrides/isolates that reorder what is shown.
UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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
    return UNSAFE.sub(_visible, text) if UNSAFE.search(text) else text


def document_text(text: str, *, is_json: bool = False) -> str:
    """A whole document for stdout, control characters escaped.

    JSON gets ``\\u007f``-style escapes: ``json.dumps`` already escapes C0, the rest only
    occurs inside strings, so the document decodes to the same values.
    """
    if not UNSAFE.search(text):
        return text
    return UNSAFE.sub(_json_escape if is_json else _visible, text)
