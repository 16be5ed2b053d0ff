"""``amlport verify --secrets``: search every stored file of a repository for secrets.

Export redacts what it can and warns about what it cannot (binary files, unknown encodings);
a repository written by an older amlport, filled by ``unpack`` or changed by hand has had no
such check. This reads the plaintext of every object a snapshot references (each object once,
however many snapshots share it), as a stream with bounded memory, with the same detector as
export, ``scan`` and ``audit`` (``amlport.secrets``), and also searches each snapshot's
manifest text and file paths. Hits name the snapshot and the bundle path, redacted, and the
kinds found; a secret value is never returned or printed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from amlport.bundle.repository import Repository
from amlport.secrets import describe, find_secrets, redact, scan_stream

MANIFEST = "(manifest)"  # the path a hit in a manifest's own text is reported under


@dataclass(frozen=True)
class SecretHit:
    snapshot: str
    path: str  # bundle path (redacted), or MANIFEST
    kinds: dict[str, int]

    def to_dict(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot, "path": self.path, "kinds": dict(self.kinds)}

    def describe(self) -> str:
        return f"{self.snapshot[:12]} {self.path}: {describe(Counter(self.kinds))}"


@dataclass
class SecretsReport:
    snapshots: int = 0
    objects: int = 0
    bytes: int = 0
    hits: list[SecretHit] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshots": self.snapshots,
            "objects_scanned": self.objects,
            "bytes_scanned": self.bytes,
            "hits": [h.to_dict() for h in self.hits],
        }


def scan_repository(repository: Repository, snapshot: str | None = None) -> SecretsReport:
    """Every hit of every snapshot (or of ``snapshot`` only)."""
    ids = [snapshot] if snapshot else [s.id for s in repository.list_snapshots()]
    report = SecretsReport(snapshots=len(ids))
    by_digest: dict[str, Counter[str]] = {}  # objects are shared between snapshots
    for sid in ids:
        manifest = repository.load_snapshot(sid)
        found: Counter[str] = Counter()
        for chunk in manifest.iter_json():  # one list entry at a time: bounded memory
            found.update(find_secrets(chunk))
        if found:
            report.hits.append(SecretHit(manifest.snapshot_id or sid, MANIFEST, dict(found)))
        for entry in sorted(manifest.files, key=lambda f: f.path):
            counts = by_digest.get(entry.digest)
            if counts is None:
                with repository.open_object(entry.digest) as stream:
                    counts = by_digest[entry.digest] = scan_stream(stream)
                report.objects += 1
                report.bytes += entry.size
            if counts:
                path = redact(entry.path)
                report.hits.append(SecretHit(manifest.snapshot_id or sid, path, dict(counts)))
    return report
