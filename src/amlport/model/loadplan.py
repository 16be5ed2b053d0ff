"""How much of a stored record a read keeps in memory, and which strings it shares: the
memory tactics of reading a 100k-file snapshot or source index, as one value (``LoadPlan``)
instead of keywords threaded through ``Repository``, ``SnapshotStore`` and the engine
(docs/design/0003-scale.md, "The load plan").
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from amlport.model.manifest import (
    KEEPABLE,
    AssetEntry,
    FileEntry,
    RedactionRecord,
    RewriteRecord,
)

T = TypeVar("T")
# Strings the caller already holds for a source-index row's (container, name): the index
# shares them instead of keeping copies (an export offers its planned blob's name, etag, MD5).
Known = Callable[[str, str], Iterable[str | None]]


@dataclass(frozen=True)
class LoadPlan:
    """What a read keeps and shares.

    ``keep``: the manifest's long lists (and lineage) kept; the others are read and checked,
    then dropped (the lineage is not even built: ``hollow``). ``strings``: strings the caller
    already holds (``{s: s}``, extended as it reads), shared instead of read again;
    ``digests``: the same for the entries' digests (else ``strings`` holds them too; a dict
    grows 4x when full, and the caller's may be sized to its own). ``known``: for a source
    index's rows, the caller's strings of a (container, name). ``prefix``: for a source
    index, a container's prefix of its rows' keys in memory (an export's ``files/<datastore>/``:
    a row's key is then its file's bundle path, which ``known`` offers).
    """

    keep: frozenset[str] = frozenset(KEEPABLE)
    strings: dict[str, str] | None = field(default=None, compare=False, repr=False)
    digests: dict[str, str] | None = field(default=None, compare=False, repr=False)
    known: Known | None = field(default=None, compare=False, repr=False)
    prefix: Callable[[str], str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def only(
        cls,
        *keep: str,
        strings: dict[str, str] | None = None,
        digests: dict[str, str] | None = None,
    ) -> LoadPlan:
        """Keep only these lists (none: a summary, every entry checked and counted)."""
        return cls(frozenset(keep), strings, digests)

    def keeps(self, key: str) -> bool:
        return key in self.keep

    @property
    def hollow(self) -> tuple[str, ...]:
        """The header values read and checked but not built (the lineage, unless kept)."""
        return () if "lineage" in self.keep else ("lineage",)

    def interning(self) -> Interning:
        """A fresh interner over the plan's string tables (one per read)."""
        return Interning(self.strings, self.digests)


WHOLE = LoadPlan()  # everything, sharing nothing
SUMMARY = LoadPlan.only()  # no list kept: entries are checked and shown, then dropped


class Interning:
    """One string object for equal strings of a manifest being read (a file's path appears
    in its entry, its asset's file list and its rewrite records)."""

    def __init__(
        self, seen: dict[str, str] | None = None, digests: dict[str, str] | None = None
    ) -> None:
        self._seen: dict[str, str] = {} if seen is None else seen
        # Digests apart: a dict grows 4x when full, and the caller's may be sized to its own.
        self._digests: dict[str, str] = self._seen if digests is None else digests

    def __call__(self, text: str) -> str:
        return self._seen.setdefault(text, text)

    def tree(self, value: Any) -> Any:
        """``value`` with its strings shared, keys too (the lineage names each node in its
        links, and its ~45k small objects were decoded one by one, each with keys of its
        own): lists in place, each object rebuilt as it is reached (one at a time)."""
        if isinstance(value, str):
            return self(value)
        if isinstance(value, dict):
            return {self(key): self.tree(item) for key, item in value.items()}
        if isinstance(value, list):
            for i, item in enumerate(value):
                value[i] = self.tree(item)
        return value

    def entry(self, entry: T) -> T:
        if isinstance(entry, FileEntry):
            entry.path = self(entry.path)
            entry.digest = self._digests.setdefault(entry.digest, entry.digest)
            if (original_digest := entry.original_digest) is not None:
                entry.original_digest = self._digests.setdefault(original_digest, original_digest)
            original = entry.original
            if original is not None and not entry.compact_origin:
                entry.original = {
                    k: self(v) if isinstance(v, str) else v for k, v in original.items()
                }
        elif isinstance(entry, AssetEntry):
            entry.files = [self(p) for p in entry.files]
        elif isinstance(entry, RewriteRecord):
            entry.file, entry.location = self(entry.file), self(entry.location)
            entry.before, entry.after, entry.rule = (
                self(entry.before),
                self(entry.after),
                self(entry.rule),
            )
        elif isinstance(entry, RedactionRecord):
            entry.file, entry.kind = self(entry.file), self(entry.kind)
        return entry
