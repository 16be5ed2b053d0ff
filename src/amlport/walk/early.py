"""Records parsed from a file's bytes ahead of the walk, in the worker process that read them.

A first backup of a local copy reads the walk's files in worker processes
(``export/workers.py``, ``WalkReads``), which also scan them for secrets; the main process then
decoded and parsed each of them again (the lineage logs above all: a fifth of its Python at
10k blobs, docs/design/0005, "Walk records off the main process (D, session 10)"). Here is
what a worker parses of one file, as plain tuples (cheap to pickle), and how the handlers
take it back (``Handlers.parsed``):

- a run log (``artifacts`` role ``log``/``execution_log``): whether it is UTF-8, and, when it
  is a lineage log, its ``LogFacts`` and ``RunTimes``;
- an output marker (``_meta.yaml``, ``data_type.json``, ``model_spec.yaml``): whether it is
  UTF-8 and the output format it names.

Everything is pure and decided by the file's name and bytes alone (the same functions the
handlers call in process). Anything else, and any file whose parse raised, gives None: the
handler then decodes and parses it in process as before, so every finding (non-UTF-8 text, a
secret, a malformed document) is found, worded and ordered by the same code. A record is
used only for the very bytes it was parsed from (the walker hands it over with them).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from amlport.walk import classify as C
from amlport.walk import logs, parsers, runtimes

LOG = "log"
MARKER = "marker"
LOG_ROLES = ("log", "execution_log")
OUTPUT_MARKERS = frozenset({"_meta.yaml", "data_type.json", "model_spec.yaml"})
_FACTS = tuple(f.name for f in fields(logs.LogFacts))

# (LOG, utf8, LogFacts values or None, RunTimes values or None) or (MARKER, utf8, format)
Early = tuple[Any, ...]


def parse(container: str, name: str, data: bytes) -> Early | None:
    """What the walk's handlers would parse of ``data``, the whole of ``container/name``;
    None when nothing is parsed ahead (another kind of file, or its parse raised)."""
    try:
        return _parse(container, name, data)
    except Exception:  # parsed again in process, which reports what it finds
        return None


def _parse(container: str, name: str, data: bytes) -> Early | None:
    base = name.rsplit("/", 1)[-1]
    if base in OUTPUT_MARKERS:
        return _marker(container, name, base, data)
    ap = C.classify_artifact(name)
    if ap is None or ap.role not in LOG_ROLES:
        return None
    text, utf8 = parsers.decode_text(data)
    if not logs.is_lineage_log(ap.rest):
        return (LOG, utf8, None, None)
    facts = logs.read_log(text)
    times = runtimes.read_times(ap.rest, text)
    return (
        LOG,
        utf8,
        tuple(getattr(facts, f) for f in _FACTS),
        (times.started, times.ended, times.status),
    )


def marker_format(base: str, text: str, path: str) -> str:
    """The output format an output marker names (``ParseError`` when it is malformed)."""
    if base == "_meta.yaml":
        return str(parsers.parse_meta(text, path)["type"])
    if base == "data_type.json":
        type_id = parsers.parse_data_type(text, path)
        return parsers.LEGACY_TYPES.get(type_id, type_id)
    parsers.load_yaml(text, path)
    return "ModelDirectory"


def _marker(container: str, name: str, base: str, data: bytes) -> Early:
    text, utf8 = parsers.decode_text(data)
    return (MARKER, utf8, marker_format(base, text, f"{container}/{name}"))


def log_facts(values: tuple[Any, ...] | None) -> logs.LogFacts:
    """The ``LogFacts`` a worker sent as ``values`` (None: a log that is not a lineage log)."""
    if values is None:
        return logs.LogFacts()
    return logs.LogFacts(**dict(zip(_FACTS, values, strict=True)))


def run_times(values: tuple[Any, ...] | None) -> runtimes.RunTimes:
    return runtimes.RunTimes() if values is None else runtimes.RunTimes(*values)
