"""Safe parsing of untrusted text (pure): decoding, YAML without alias bombs, bounded JSON.

Everything amlport reads from a workspace is untrusted. The walker, the rewriters and the
bundle readers all parse through here, so the bounds are the same everywhere.

YAML goes through libyaml (PyYAML's C parser and emitter, in every PyYAML wheel) when it is
there: the same safe YAML 1.1 types at a fraction of the CPU (parsing the walk's YAML and
writing the exporters' documents was a third of a backup's own CPU). Without it, PyYAML's
pure-Python classes do the same. The two emitters differ on a few rare inputs (a character
outside the Basic Multilingual Plane is escaped by libyaml; an empty key is written
``'': v``); either output loads to the same document.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from amlport.errors import ParseError

MAX_YAML_ALIASES = 64
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
MAX_JSON_DEPTH = 64


def decode_text(data: bytes) -> tuple[str, bool]:
    """Decode as UTF-8 (BOM tolerated); fall back to Latin-1. Returns (text, was_utf8)."""
    try:
        return data.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return data.decode("latin-1"), False


def load_yaml(text: str, path: str) -> Any:
    """Safe-load one YAML document, refusing alias bombs and syntax errors with a reason."""
    try:
        aliases = sum(
            1 for ev in yaml.parse(text, Loader=SAFE_LOADER) if isinstance(ev, yaml.AliasEvent)
        )
        if aliases > MAX_YAML_ALIASES:
            raise ParseError(path, f"YAML uses {aliases} aliases (limit {MAX_YAML_ALIASES})")
        return yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc.__class__.__name__
        raise ParseError(path, f"invalid YAML{where}: {problem}") from None


def dump_yaml(doc: Any) -> bytes:
    """A document amlport writes (v2 asset YAML, run descriptions): keys in their order,
    UTF-8 text as is."""
    text: str = yaml.dump(doc, Dumper=SAFE_DUMPER, sort_keys=False, allow_unicode=True)
    return text.encode("utf-8")


def load_json(text: str, path: str) -> Any:
    """Parse JSON, refusing pathological nesting before the parser recurses into it."""
    if _max_nesting(text) > MAX_JSON_DEPTH:
        raise ParseError(path, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise ParseError(path, reason) from None


def _max_nesting(text: str) -> int:
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            escaped = not escaped and ch == "\\"
            if ch == '"' and not escaped:
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest
