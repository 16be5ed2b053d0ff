"""One registry type for every kind of plugin: exporters, importers, rewriters, audit checks.

A ``Registry`` holds named entries in the order they were added: the built-ins, then — for a
kind with an entry-point group — the plugins installed under that group
(``importlib.metadata`` entry points). What it guarantees (design 0015):

- **names are unique**: a built-in added twice is a programming error (``DuplicateName``);
  an entry point whose name is taken is refused with a warning naming both;
- **a broken plugin is a warning, not a crash**: an entry point that fails to import, or
  whose factory raises, or that is not of the kind's shape, is left out and reported
  (``Registry.warnings``: "plugin 'x' (amlport.exporters.v1) failed to load: …"); every
  other plugin and every built-in still runs;
- **lazy built-ins stay lazy**: an entry may name ``"module:attribute"`` instead of the value,
  so an optional dependency (azure-ai-ml, mlflow) is imported only when the entry is used;
- **read like a mapping**: ``registry[name]``, ``name in registry``, iteration over names in
  order, ``values()``; call sites that used the old dict/tuple/MappingProxyType keep working.

Pure bookkeeping one floor above the leaf utilities (docs/design/0000-map.md): it imports only
``secrets`` (a plugin's error is redacted before it is shown), so every plugin package may use
it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Generic, TypeVar

from amlport.secrets import redact

T = TypeVar("T")

BUILTIN = "built-in"


class DuplicateName(ValueError):
    """A name registered twice by amlport itself (a bug, not a user's problem)."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plugin: its name, where it comes from, and what it is."""

    kind: str  # "exporter", "importer", "rewriter", "audit check"
    name: str
    origin: str  # "built-in" or "entry point <group>"
    target: str  # "module:attribute" of the value (what `amlport plugins` shows)
    distribution: str | None = None  # the installed package an entry point comes from


@dataclass(frozen=True)
class PluginWarning:
    kind: str
    name: str
    message: str

    def __str__(self) -> str:
        return self.message


def _target_of(value: object) -> str:
    """``module:qualname`` of a function, class, module or instance (its class)."""
    if hasattr(value, "__qualname__") and hasattr(value, "__module__"):
        return f"{value.__module__}:{value.__qualname__}"  # function or class
    name = getattr(value, "__name__", None)
    if isinstance(name, str) and not hasattr(value, "__module__"):
        return name  # a module
    cls = type(value)
    return f"{cls.__module__}:{cls.__qualname__}"


def _resolve(reference: str) -> object:
    module, _, attribute = reference.partition(":")
    value: object = importlib.import_module(module)
    for part in filter(None, attribute.split(".")):
        value = getattr(value, part)
    return value


class Registry(Mapping[str, T]):
    """Named entries of one plugin kind; see the module docstring."""

    def __init__(
        self,
        kind: str,
        *,
        group: str | None = None,
        make: Callable[[object], T] | None = None,
        check: Callable[[object], bool] | None = None,
    ) -> None:
        self.kind = kind
        self.group = group  # the entry-point group, or None: built-ins only
        self._make = make  # turns what an entry point loads into the value (a class -> instance)
        self._check = check  # the kind's shape; an entry point failing it is refused
        self._entries: dict[str, Entry[T]] = {}
        self._values: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._warnings: list[PluginWarning] = []
        self._loaded = group is None

    # --- registration ---------------------------------------------------------------------

    def add(self, name: str, value: T) -> T:
        """Register a built-in; a name already taken raises ``DuplicateName``."""
        self._claim(name)
        self._entries[name] = Entry(self.kind, name, BUILTIN, _target_of(value))
        self._values[name] = value
        return value

    def add_lazy(self, name: str, reference: str) -> None:
        """Register a built-in by ``"module:attribute"``, imported on first use."""
        self._claim(name)
        self._entries[name] = Entry(self.kind, name, BUILTIN, reference)
        self._lazy[name] = reference

    def _claim(self, name: str) -> None:
        if not name or name in self._entries:
            raise DuplicateName(f"{self.kind} {name!r} is registered twice")

    # --- entry points ---------------------------------------------------------------------

    def load_entry_points(self) -> list[PluginWarning]:
        """Add the plugins of the entry-point group (once); return what went wrong."""
        if self._loaded:
            return list(self._warnings)
        self._loaded = True
        assert self.group is not None
        for ep in entry_points(group=self.group):
            self._load_one(ep)
        return list(self._warnings)

    def _load_one(self, ep: EntryPoint) -> None:
        origin = f"entry point {self.group}"
        dist = getattr(ep, "dist", None)
        label = f"{dist.name} {dist.version}" if dist is not None else None
        if ep.name in self._entries:
            owner = self._entries[ep.name]
            self._warn(ep.name, f"plugin {ep.name!r} ({self.group}) refused: the {self.kind} "
                       f"name is taken by {owner.origin} {owner.target}")  # fmt: skip
            return
        try:
            loaded = ep.load()
            value = self._make(loaded) if self._make is not None else loaded
        except Exception as exc:  # a plugin's bug must not stop the run: reported instead
            reason = redact(f"{type(exc).__name__}: {exc}")  # no secret out (design 0004)
            self._warn(ep.name, f"plugin {ep.name!r} ({self.group}, {ep.value}) failed to "
                       f"load: {reason}")  # fmt: skip
            return
        if self._check is not None and not self._check(value):
            self._warn(ep.name, f"plugin {ep.name!r} ({self.group}, {ep.value}) is not "
                       f"an {self.kind}: left out")  # fmt: skip
            return
        self._entries[ep.name] = Entry(self.kind, ep.name, origin, ep.value, label)
        self._values[ep.name] = value

    def _warn(self, name: str, message: str) -> None:
        self._warnings.append(PluginWarning(self.kind, name, message))

    @property
    def warnings(self) -> list[PluginWarning]:
        return list(self._warnings)

    # --- reading --------------------------------------------------------------------------

    def entries(self) -> list[Entry[T]]:
        """Every entry, built-ins first, entry points (once loaded) after them."""
        return list(self._entries.values())

    def __getitem__(self, name: str) -> T:
        if name not in self._values and name in self._lazy:
            self._values[name] = _resolve(self._lazy[name])  # type: ignore[assignment]
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)!r})"
