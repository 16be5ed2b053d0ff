"""A small typed validator for the YAML files a user writes: ``workspace.yaml`` and map files.

Why not jsonschema: it is a development dependency only, its messages name JSON pointers
rather than the keys a user typed, and these two shapes need a few dozen lines. A schema is
a tree of ``Text``, ``Record`` and ``NameMap``; ``validate`` walks a loaded document against
it, collects *every* problem (wrong type, unknown or misspelt key, missing key, a name that
could not be a container, a placeholder ``amlport map init`` left) with the dotted path of
the key that holds it, and raises one ``UsageError`` naming the file.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from amlport.errors import ParseError, UsageError
from amlport.safeload import load_yaml

# ``amlport map init`` writes placeholders such as ``<target storage account>``; no name
# Azure accepts contains an angle bracket, so any ``<…>`` is an unfilled template.
PLACEHOLDER = re.compile(r"<[^<>\n]*>")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MAX_PROBLEMS_SHOWN = 6


class Schema(Protocol):
    def check(self, value: Any, path: str, problems: list[str]) -> None: ...


@dataclass(frozen=True)
class Text:
    """A string: never a placeholder nor a control character (unless ``name`` is False:
    text amlport wrote itself, such as a map's ``source``); ``pattern`` (full match) when
    given, described by ``what`` in messages."""

    what: str = "text"
    pattern: re.Pattern[str] | None = None
    name: bool = True

    def check(self, value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, str):
            problems.append(f"{path} must be {self.what}, not {_kind(value)}")
        elif not value:
            problems.append(f"{path} must not be empty")
        elif not self.name:
            return
        elif found := PLACEHOLDER.search(value):
            problems.append(
                f"{path} still holds the placeholder {found.group()!r} "
                "from 'amlport map init'; fill it in"
            )
        elif _CONTROL.search(value):
            problems.append(f"{path} {value!r} contains a control character")
        elif self.pattern is not None and not self.pattern.fullmatch(value):
            problems.append(f"{path} {value!r} is not {self.what}")


@dataclass(frozen=True)
class Record:
    """A mapping with known keys; ``required`` ones must be there and not empty, the others
    may be absent or empty (``key:`` with no value)."""

    fields: Mapping[str, Schema]
    required: frozenset[str] = field(default_factory=frozenset)
    what: str = "a mapping"
    allow_unknown: bool = False

    def check(self, value: Any, path: str, problems: list[str]) -> None:
        if not isinstance(value, dict):
            problems.append(f"{_label(path)} must be {self.what}, not {_kind(value)}")
            return
        for key, item in value.items():
            schema = self.fields.get(key) if isinstance(key, str) else None
            if schema is not None:
                if item is not None or key in self.required:
                    schema.check(item, _join(path, key), problems)
            elif not self.allow_unknown:
                problems.append(_unknown(key, path, self.fields))
        for key in sorted(self.required - value.keys()):
            problems.append(f"{_join(path, key)} is required")


@dataclass(frozen=True)
class NameMap:
    """A mapping of names to names (datastore -> container, source -> target)."""

    key: Text
    value: Text
    what: str = "a mapping of names to names"

    def check(self, value: Any, path: str, problems: list[str]) -> None:
        if value is None:
            return
        if not isinstance(value, dict):
            problems.append(f"{_label(path)} must be {self.what}, not {_kind(value)}")
            return
        for key, item in value.items():
            self.key.check(key, f"{path} key" if path else "key", problems)
            self.value.check(item, f"{path}[{key!r}]", problems)


def validate(schema: Schema, data: Any, *, where: str, hint: str) -> None:
    """Raise one ``UsageError`` naming ``where`` and every problem found, if there is one."""
    problems: list[str] = []
    schema.check(data, "", problems)
    if problems:
        raise UsageError(describe(problems, where), hint=hint)


def load_config_yaml(text: str, where: str, hint: str) -> Any:
    """A configuration file's YAML, bounded like every load; a syntax error names the file
    and the line (``UsageError``: the user's file is wrong, exit 2)."""
    try:
        return load_yaml(text, where)
    except ParseError as exc:
        raise UsageError(f"{where}: {exc.reason}", hint=hint) from None


def describe(problems: list[str], where: str) -> str:
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = len(problems) - MAX_PROBLEMS_SHOWN
    tail = f"; and {more} more" if more > 0 else ""
    return f"{where}: {len(problems)} problems: {shown}{tail}"


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _label(path: str) -> str:
    return f"'{path}'" if path else "the file"


def _unknown(key: Any, path: str, known: Mapping[str, Schema]) -> str:
    where = f" in '{path}'" if path else ""
    close = difflib.get_close_matches(str(key), list(known), n=1)
    guess = f" (did you mean '{close[0]}'?)" if close else f" (known: {', '.join(known)})"
    return f"unknown key {key!r}{where}{guess}"


def _kind(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__
