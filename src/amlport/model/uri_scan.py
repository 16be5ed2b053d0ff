"""Find URIs and compute mount paths in free text (log lines, JSON, YAML): linear time.

Split from ``uris.py`` (which parses and formats one URI); this module walks a text and asks
``uris`` whether each candidate span is a recognised form.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from amlport.model.uris import _MAX_FAILURES_PER_RUN, _MAX_URI_LEN, _match

_START = re.compile(
    r"(?<![\w+.-])(?i:azureml:|wasbs?://|abfss?://|https?://|adl://|runs:/|models:/"
    r"|mlflow-artifacts:|aml://)"
    r"|(?<![\w./-])(?:/mnt/batch/tasks/shared/LS_root/jobs/|/(?:mnt|scratch)/azureml/cr/j/)"
)
# A URI never spans these (a path that has them must percent-encode them, see quote_path).
_RUN = re.compile(r"[^\s\"'<>`\\;|]*")
_TRAILING = frozenset(".,:;!?*")
_CLOSERS = {")": "(", "]": "[", "}": "{"}
_LOG_LEVELS = frozenset({"DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL", "FATAL"})


def find_uris(text: str) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, uri)`` for every recognisable URI or mount path in ``text``.

    ``text[start:end] == uri``; a query string is part of the span, trailing punctuation
    (and unbalanced closing brackets) is not. Linear in ``len(text)``.
    """
    pos, run_end, failures = 0, -1, 0
    while (m := _START.search(text, pos)) is not None:
        start = m.start()
        if start >= run_end:
            run_end, failures = _run_end(text, start), 0
        end = _trim(text, start, run_end) if run_end - start <= _MAX_URI_LEN else start
        if end > m.end() and _recognised(text, start, end):
            yield start, end, text[start:end]
            pos = end
            continue
        failures += end > start
        pos = run_end if failures >= _MAX_FAILURES_PER_RUN else start + 1


def _run_end(text: str, start: int) -> int:
    m = _RUN.match(text, start)
    return start if m is None else m.end()


def _trim(text: str, start: int, end: int) -> int:
    excess = {c: text.count(c, start, end) - text.count(o, start, end) for c, o in _CLOSERS.items()}
    while end > start:
        ch = text[end - 1]
        if ch in _TRAILING:
            end -= 1
        elif excess.get(ch, 0) > 0:
            excess[ch] -= 1
            end -= 1
        else:
            break
    return end


def _recognised(text: str, start: int, end: int) -> bool:
    found = _match(text[start:end].partition("?")[0])
    if found is None:
        return False
    if found[0] == "azureml_ref":
        # ``INFO:azureml:Starting`` is a log prefix, not a reference.
        after_colon = start > 0 and text[start - 1] == ":"
        return not after_colon and found[1]["name"].upper() not in _LOG_LEVELS
    return True
