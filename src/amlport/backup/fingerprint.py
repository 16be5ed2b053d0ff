"""What a backup is a function of, hashed while the source is listed.

A backup's snapshot is decided by its inputs: the source's listing (every container, name,
size, ETag — a local file's size and mtime — and Content-MD5, in listing order), the source's
identity, amlport's version, the options that change the output (``--select``,
``--include``, the catch-all), the secret patterns (they decide what is redacted or
withheld) and the exporter plugins installed. The export reads no clock (the snapshot time
is a header field of the root, not an input of any list). So when the fingerprint of all of
them equals the one the previous snapshot of the same source recorded, a full run would
write the same lists: the backup writes a new root naming the previous one's pieces and
reads nothing else (``run.py``, docs/design/0007, "Re-backup from the listing").

The fingerprint is SHA-256 of a canonical stream: a domain prefix, the context as
canonical JSON, then one ``repr`` line per blob (``repr`` of a tuple of str, int and None
is unambiguous and escapes every control character and lone surrogate), fed in batches as
the listing arrives: no second copy of the listing is kept.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

from amlport import __version__
from amlport.secrets import rules_digest
from amlport.storage.base import BlobInfo

#: bump when what is hashed changes: an older fingerprint then never matches
SCHEME = "amlport.listing/1"
#: the manifest header field that records it (``Manifest.extra``)
FIELD = "listing"
_BATCH = 4096  # lines hashed at once
_PLUGIN_GROUPS = ("amlport.exporters.v1",)  # exporters/__init__.py ENTRY_POINT_GROUP


def plugins() -> list[list[str]]:
    """The installed exporter plugins (name, target, distribution and version):
    a plugin installed, removed or upgraded changes what an export writes."""
    out: list[list[str]] = []
    for group in _PLUGIN_GROUPS:
        for ep in entry_points(group=group):
            dist = getattr(ep, "dist", None)
            label = f"{dist.name} {dist.version}" if dist is not None else ""
            out.append([group, ep.name, ep.value, label])
    return sorted(out)


def context(source: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    """Everything but the listing that a backup's snapshot is a function of."""
    return {
        "amlport": __version__,
        "source": source,
        "options": options,
        "rules": rules_digest(),
        "plugins": plugins(),
    }


@dataclass
class Fingerprint:
    """SHA-256 of the context and of every blob of the listing, fed one blob at a time."""

    context: dict[str, Any]
    blobs: int = 0
    _sha: Any = field(init=False, repr=False)
    _lines: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        self._sha = hashlib.sha256(SCHEME.encode() + b"\0")
        text = json.dumps(self.context, sort_keys=True, separators=(",", ":"))
        self._sha.update(text.encode("utf-8", "surrogatepass") + b"\0")

    def add(self, blob: BlobInfo) -> None:
        self._lines.append(
            repr((blob.container, blob.name, blob.size, blob.etag, blob.content_md5))
        )
        self.blobs += 1
        if len(self._lines) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._lines:
            self._lines.append("")
            self._sha.update("\n".join(self._lines).encode("utf-8", "surrogatepass"))
            self._lines = []

    def digest(self) -> str:
        """``sha256:<hex>`` of everything added so far."""
        self._flush()
        return "sha256:" + self._sha.copy().hexdigest()

    def record(self) -> dict[str, Any]:
        """What a snapshot records of it (the header field ``FIELD``)."""
        return {"scheme": SCHEME, "fingerprint": self.digest(), "blobs": self.blobs}


def recorded(header: dict[str, Any]) -> str | None:
    """The fingerprint a snapshot's header records (None: none, or of another scheme)."""
    value = header.get(FIELD)
    if not isinstance(value, dict) or value.get("scheme") != SCHEME:
        return None
    found = value.get("fingerprint")
    return found if isinstance(found, str) else None
