"""Text logs (``*.txt``, ``*.log``, ``rslex.log.*``, JSON logs): every URI span that
``find_uris`` recognises is rewritten where it is workspace-bound, and every secret is
redacted (``amlport.secrets``). Locations are ``line N``.

A log is history: an ``Unmappable`` URI becomes a warning and stays as it was (its SAS, if
any, is still redacted). Mount paths are provenance and stay (see ``mount``); so do plain
words that name the account or a container (``Mounting <container> container from
<account> account at /mnt/batch/…``): they are not locations, and they say what happened.

Non-UTF-8 logs are decoded as Latin-1 (every byte round-trips), rewritten, and re-encoded
the same way, so bytes outside the rewritten spans are unchanged.
"""

from __future__ import annotations

from amlport.rewriters.recorder import Decoded, Recorder
from amlport.rewriters.rules import RewriteResult, RewriteRules


def rewrite_log(name: str, data: bytes, rules: RewriteRules) -> RewriteResult:
    decoded = Decoded.of(data)
    rec = Recorder(name, rules, lenient=True)
    text = rewrite_text(decoded.text, rec)
    if text == decoded.text:
        return rec.result(data)
    return rec.result(decoded.encode(text, rec))


def rewrite_text(text: str, rec: Recorder) -> str:
    """Rewrite URIs and redact secrets line by line (a secret never spans a line)."""
    lines = text.split("\n")
    for number, line in enumerate(lines, start=1):
        new, _ = rec.spans(line, f"line {number}")
        lines[number - 1] = rec.scrub(new)
    return "\n".join(lines)
