"""The listing a walk made, kept for whoever acts on the inventory next (export, audit)."""

from __future__ import annotations

import bisect
from collections import defaultdict

from amlport.storage.base import BlobInfo


class Listing:
    """Every blob of the walk, per container, sorted by name; prefix queries by bisection."""

    def __init__(self) -> None:
        self._blobs: dict[str, list[BlobInfo]] = defaultdict(list)
        self._names: dict[str, list[str]] = {}

    def add(self, blob: BlobInfo) -> None:
        self._blobs[blob.container].append(blob)

    def freeze(self) -> None:
        for container, blobs in self._blobs.items():
            blobs.sort(key=lambda b: b.name)
            self._names[container] = [b.name for b in blobs]

    def under(self, container: str, prefix: str) -> list[BlobInfo]:
        """The blob named ``prefix`` and every blob below ``prefix/``, sorted by name."""
        names = self._names.get(container, [])
        blobs = self._blobs.get(container, [])
        out = []
        exact = bisect.bisect_left(names, prefix)
        if exact < len(names) and names[exact] == prefix:
            out.append(blobs[exact])
        # Names below "prefix/" are contiguous: from "prefix/" up to "prefix0" ('0' follows '/').
        lo = bisect.bisect_left(names, prefix + "/")
        hi = bisect.bisect_left(names, prefix + "0")
        return out + blobs[lo:hi]

    def has_blobs_under(self, container: str, path: str) -> bool:
        """Is there a blob named ``path`` or below ``path/``?"""
        names = self._names.get(container, [])
        i = bisect.bisect_left(names, path)
        if i < len(names) and names[i] == path:
            return True
        j = bisect.bisect_left(names, path + "/")
        return j < len(names) and names[j].startswith(path + "/")

    def get(self, container: str, name: str) -> BlobInfo | None:
        names = self._names.get(container, [])
        i = bisect.bisect_left(names, name)
        return self._blobs[container][i] if i < len(names) and names[i] == name else None

    def containers(self) -> list[str]:
        return sorted(self._blobs)
