"""Secret detection and redaction: pure functions, no I/O.

One place knows what a secret looks like, so the walker (findings), the exporters (scrubbing),
the error messages and the logs all agree. Values are never returned or stored: callers get
the redacted text and a count per kind. ``install_log_redaction`` applies the redactor to
every log record (the storage SDK and urllib3 log request URLs, SAS signature included).
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

REDACTED = "REDACTED"

# A value already replaced by REDACTED is not a secret any more (redaction is idempotent).
_NOT_DONE = rf"(?!{REDACTED}(?![A-Za-z0-9+/=%]))"

# Order matters: a whole connection string is removed before its AccountKey part would be.
_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "connection_string",
        re.compile(
            r"DefaultEndpointsProtocol=[^;\s\"']+;(?:[A-Za-z]+=[^;\s\"']*;)*"
            r"(?:AccountKey|SharedAccessSignature)=[^\s\"']+",
            re.IGNORECASE,
        ),
    ),
    ("account_key", re.compile(rf"(?<=AccountKey=){_NOT_DONE}[A-Za-z0-9+/=%]{{8,}}", re.I)),
    (
        "shared_access_signature",
        re.compile(rf"(?<=SharedAccessSignature=){_NOT_DONE}[^\s;\"']+", re.IGNORECASE),
    ),
    # The signature of a SAS query string; the other SAS fields are harmless but go with it.
    ("sas_signature", re.compile(rf"(?<=[?&]sig=){_NOT_DONE}[^&\s\"'#]+", re.IGNORECASE)),
    ("sas_signature", re.compile(rf"(?<=\bsig=){_NOT_DONE}[A-Za-z0-9%+/=]{{16,}}", re.I)),
    ("bearer_token", re.compile(rf"(?<=Bearer ){_NOT_DONE}[A-Za-z0-9\-._~+/]{{16,}}=*")),
    # The designer pointer JSON's "SasToken": "<value>" (null is fine).
    ("sas_token", re.compile(r'(?<="SasToken":)\s*"[^"]+"', re.IGNORECASE)),
)


@dataclass(frozen=True)
class Redaction:
    kind: str
    count: int


def redact_with_counts(text: str) -> tuple[str, Counter[str]]:
    """Return ``text`` with every secret replaced, and how many of each kind were removed."""
    counts: Counter[str] = Counter()
    if not may_hold_secret(text):  # one pass instead of seven look-behind searches
        return text, counts
    for kind, pattern in _PATTERNS:
        replacement = "null" if kind == "sas_token" else REDACTED
        text, n = pattern.subn(replacement, text)
        if n:
            counts[kind] += n
    return text, counts


def redact(text: str) -> str:
    """Return ``text`` with every secret replaced (for messages, logs and reports)."""
    return redact_with_counts(text)[0]


def find_secrets(text: str) -> Counter[str]:
    """Count secret-looking values by kind. Never returns the values themselves."""
    return redact_with_counts(text)[1]


def has_secret(text: str) -> bool:
    return any(p.search(text) for _, p in _PATTERNS)


# Every pattern above needs one of these (lower-case) substrings, so text holding none of them
# holds no secret and the regular expressions can be skipped: a cheap pre-check for streams
# (tests/reliability checks that each pattern names one). _FOLD maps the only non-ASCII
# characters that IGNORECASE matches to ASCII letters.
TRIGGERS = (
    "defaultendpointsprotocol=",
    "accountkey=",
    "sharedaccesssignature=",
    "sig=",
    "bearer ",
    '"sastoken":',
)
_FOLD = {0x130: "i", 0x131: "i", 0x17F: "s", 0x212A: "k"}


def may_hold_secret(text: str) -> bool:
    """False only when ``text`` certainly holds no secret (a fast substring pre-check)."""
    lower = text.lower() if text.isascii() else text.translate(_FOLD).lower()
    return any(t in lower for t in TRIGGERS)


def secret_spans(text: str) -> list[tuple[int, int]]:
    """``(start, end)`` of every secret-looking value in ``text``, in no particular order.

    For cutting a stream into pieces where no secret straddles a cut (see
    ``amlport.rewriters.text_log``). A span starts after a look-behind prefix such as
    ``AccountKey=``; callers keep a margin before each span for that prefix.
    """
    if not may_hold_secret(text):
        return []
    return [m.span() for _, pattern in _PATTERNS for m in pattern.finditer(text)]


_log_lock = threading.Lock()
_log_redaction = False


def install_log_redaction() -> None:
    """Redact secrets from every log record created from now on, whatever the logger.

    urllib3 logs each request line at DEBUG (the URL with its SAS query string); a user or an
    embedding application that turns DEBUG on must not find a signature in its logs.
    Idempotent; wraps the current log record factory.
    """
    global _log_redaction
    with _log_lock:
        if _log_redaction:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _log_redaction = True


def _scrub_record(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format string is the logging module's to report
        return
    if may_hold_secret(message):
        record.msg, record.args = redact(message), None
    if record.exc_info and record.exc_info[1] is not None:
        text = logging.Formatter().formatException(record.exc_info)
        if may_hold_secret(text):
            record.exc_text = redact(text)
