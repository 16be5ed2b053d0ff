"""A node-link document held compressed while it waits (docs/design/0007, "Peak memory of
backup at 100k (B, session 7)").

An export takes the snapshot's lineage out of the graph before the transfer, so that the
graph can go, and hands it to the snapshot after the transfer. Held as dicts and lists
through the transfer, a 100k-blob workspace's node-link (16.5k nodes, 25k links) took
~10 MB at the backup's high-water mark; held as a compressed pickle, ~1 MB.

The pickle never leaves the process and is only ever made here, from the graph's own
node-link (str, int, float, bool, None, lists, dicts): it is not a format and nothing
hostile is unpickled. ``unpack`` gives back an equal document (same types, same order).
"""

from __future__ import annotations

import pickle
import zlib
from typing import Any


class PackedNodeLink:
    """A node-link document (``LineageGraph.to_node_link``), compressed until ``unpack``."""

    __slots__ = ("_packed",)

    def __init__(self, doc: dict[str, Any]) -> None:
        self._packed = zlib.compress(pickle.dumps(doc, protocol=pickle.HIGHEST_PROTOCOL), 1)

    def unpack(self) -> dict[str, Any]:
        """The document, as it was given (a new copy at each call)."""
        doc: dict[str, Any] = pickle.loads(zlib.decompress(self._packed))  # made here only
        return doc

    def __len__(self) -> int:
        """Bytes held."""
        return len(self._packed)
