"""What the format rewriters share: rewriting the URIs of one value, scrubbing secrets, and
keeping the record (changes, redaction counts, warnings) of one file; text decoding.
"""

from __future__ import annotations

import codecs
from collections import Counter
from dataclasses import dataclass, field

from amlport.model.uri_scan import find_uris
from amlport.model.uris import UriError, parse_uri
from amlport.rewriters.dispatch import rewrite_uri
from amlport.rewriters.rules import Change, RewriteResult, RewriteRules, Unmappable
from amlport.safeload import decode_text
from amlport.secrets import redact_with_counts

# A dropped SAS query string is the same secret secrets.py calls a "sas_signature".
SAS_QUERY_KIND = "sas_signature"


@dataclass
class Recorder:
    """Rewrites the values of one file and records what it did.

    ``lenient``: an ``Unmappable`` URI is left as it is with a warning instead of raised
    (logs: a URI there is history, not configuration).
    """

    file: str
    rules: RewriteRules
    lenient: bool = False
    changes: list[Change] = field(default_factory=list)
    redactions: Counter[str] = field(default_factory=Counter)
    _warnings: dict[str, list[str]] = field(default_factory=dict)  # message -> locations

    def value(self, text: str, location: str) -> tuple[str, list[tuple[str, str]]]:
        """Rewrite a string value: the whole of it if it is one URI, else each URI inside.

        Returns the new text and the (old, new) substitutions made, in order.
        """
        # One line that parses as a URI is one URI (blob paths may contain spaces).
        one_line = bool(text) and text == text.strip() and "\n" not in text and "\t" not in text
        if one_line and _is_uri(text):
            new = self.uri(text, location)
            return new, ([(text, new)] if new != text else [])
        new, pairs = self.spans(text, location)
        if one_line and " " not in text and not pairs:
            self.uri(text, location)  # only reports a value that claims to be a URI but is not
        return new, pairs

    def spans(self, text: str, location: str) -> tuple[str, list[tuple[str, str]]]:
        """Rewrite every URI ``find_uris`` finds in free text."""
        out: list[str] = []
        pairs: list[tuple[str, str]] = []
        pos = 0
        for start, end, found in find_uris(text):
            new = self.uri(found, location)
            out += [text[pos:start], new]
            if new != found:
                pairs.append((found, new))
            pos = end
        if not pairs:
            return text, []
        out.append(text[pos:])
        return "".join(out), pairs

    def uri(self, text: str, location: str) -> str:
        """Rewrite one whole URI; returns what to put in its place."""
        try:
            change = rewrite_uri(text, self.rules)
        except Unmappable as exc:
            error = exc.at(f"{self.file} {location}")
            if not self.lenient:
                raise error from None
            self.warn(location, f"{error.message}; left as is")
            return text
        if change is None:
            return text
        if change.warning:
            self.warn(location, f"{change.before}: {change.warning}")
        if change.dropped_sas:
            self.redactions[SAS_QUERY_KIND] += 1
        if change.changed:
            self.record(location, change.before, change.after, change.rule)
        return change.replacement

    def record(self, location: str, before: str, after: str, rule: str) -> None:
        self.changes.append(Change(self.file, location, before, after, rule))

    def scrub(self, text: str) -> str:
        """Redact every secret in ``text`` and count it."""
        clean, counts = redact_with_counts(text)
        self.redactions.update(counts)
        return clean

    def warn(self, location: str, message: str) -> None:
        """Warnings repeat in logs; each message is kept once, with where it was first seen."""
        self._warnings.setdefault(message, []).append(location)

    @property
    def warnings(self) -> list[str]:
        out = []
        for message, where in self._warnings.items():
            more = f" (and {len(where) - 1} more)" if len(where) > 1 else ""
            at = f" {where[0]}" if where[0] else ""
            out.append(f"{self.file}{at}{more}: {message}")
        return out

    def result(self, data: bytes) -> RewriteResult:
        return RewriteResult(data, list(self.changes), dict(self.redactions), self.warnings)


def _is_uri(text: str) -> bool:
    try:
        parse_uri(text)
    except UriError:
        return False
    return True


@dataclass(frozen=True)
class Decoded:
    """Text and how to turn it back into the same kind of bytes."""

    text: str
    encoding: str  # "utf-8" or "latin-1" (any byte sequence; cp1252 logs round-trip)
    bom: bool = False

    @classmethod
    def of(cls, data: bytes) -> Decoded:
        for encoding, bom in _UTF16_BOMS.items():  # Windows tools write UTF-16 logs
            if data.startswith(bom) and len(data) % 2 == 0:
                try:
                    return cls(data[len(bom) :].decode(encoding), encoding, True)
                except UnicodeDecodeError:
                    break
        text, was_utf8 = decode_text(data)
        return cls(text, "utf-8" if was_utf8 else "latin-1", data.startswith(codecs.BOM_UTF8))

    def encode(self, text: str, rec: Recorder) -> bytes:
        """Same encoding as the original; UTF-8 (with a warning) if the text no longer fits."""
        try:
            raw = text.encode(self.encoding)
        except UnicodeEncodeError:
            rec.warn("", f"re-encoded as UTF-8: the rewritten text does not fit {self.encoding}")
            return codecs.BOM_UTF8 + text.encode("utf-8") if self.bom else text.encode("utf-8")
        return _UTF16_BOMS.get(self.encoding, codecs.BOM_UTF8) + raw if self.bom else raw


_UTF16_BOMS = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}
