"""Audit facts of a diff side: what ``amlport audit`` finds in a workspace's storage.

A side's facts are the outcomes of the rules a walk alone decides (the hygiene checks,
``audit.runner.audit_walk``) that did not pass: ``(rule id, state, subject)``, the subject
being the bundle path (``files/<datastore>/<path>``) of the object the outcome names, or the
rule's own id when it names none. No data-plane or control-plane call is made (those facts
belong to ``amlport audit SOURCE --arm-live``, not to a comparison).

- A **live** side's facts come from the walk its plan made (``LivePlan.inventory``).
- A **snapshot**'s are computed offline: the snapshot's files are walked as a read-only
  source (``SnapshotSource``: each datastore's files in its container, read through the
  verifying reader), and the credentials the backup redacted, which the stored bytes no
  longer hold, come from the snapshot's redaction records (one failure per file, as the walk
  of the live file reports it: ``sas_in_pointer`` for a designer pointer's ``SasToken``,
  ``secrets_in_files`` for any other credential).
- Under ``--map`` subjects are re-keyed like paths (``MappedSide``): a finding about
  ``files/devblob/x`` of A is the finding about ``files/prodblob/x`` of B.

Two sides are compared as multisets of ``(rule, state, subject)``; messages are shown, not
compared (they name containers and assets, which a promotion renames).
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from amlport.errors import SourceNotFound
from amlport.memory import trim_heap
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import BlobInfo, Source

if TYPE_CHECKING:
    from amlport.bundle import Repository
    from amlport.model.inventory import Inventory
    from amlport.model.manifest import Manifest

FILES = "files/"
SECRETS_CHECK = "secrets_in_files"
SAS_CHECK = "sas_in_pointer"
POINTER_SAS = "sas_token"  # the redaction kind of a pointer's SasToken (amlport.secrets)


@dataclass(frozen=True, order=True)
class AuditFact:
    rule: str
    state: str  # fail or not_checked (a pass is no fact)
    subject: str  # a bundle path, or the rule id when the outcome names no object
    message: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.rule, self.state, self.subject)

    def rekeyed(self, subject: str) -> AuditFact:
        return AuditFact(self.rule, self.state, subject, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule,
            "state": self.state,
            "subject": self.subject,
            "message": self.message,
        }


def bundle_subject(path: str | None, desc: WorkspaceDescriptor) -> str | None:
    """``container/blob`` (an audit outcome's path) as ``files/<datastore>/<blob>``."""
    if not path:
        return None
    container, sep, name = path.partition("/")
    if not sep:
        return path
    return f"{FILES}{desc.datastore_of(container) or container}/{name}"


def inventory_facts(inv: Inventory) -> list[AuditFact]:
    """The walk-decided audit outcomes of ``inv`` that did not pass."""
    from amlport.audit.engine import State
    from amlport.audit.runner import audit_walk

    out = []
    for result in audit_walk(inv).results:
        if result.state is State.PASS:
            continue
        o = result.outcome
        subject = bundle_subject(o.path, inv.source) or o.resource or result.rule.id
        out.append(AuditFact(result.rule.id, result.state.value, subject, o.message))
    return sorted(out)


def snapshot_facts(repo: Repository, manifest: Manifest) -> list[AuditFact]:
    """A snapshot's facts, computed offline (see the module doc)."""
    from amlport.audit.catalog import load_rules
    from amlport.walk import walk

    source = SnapshotSource(repo, manifest)
    redactions = manifest.redactions
    del manifest  # a caller that passed it alone lets go of its files for the walk
    with source:
        facts = inventory_facts(walk(source))
    del source
    # The walk's inventory is a web of reference cycles that only a full collection frees,
    # which a process with 100k+ live objects seldom runs: a diff then walked the second
    # snapshot beside the first one's inventory (docs/design/0007, E session 6).
    gc.collect()
    trim_heap()  # the walk's pages back to the system: the next walk does not grow on them
    rules = load_rules()
    by_check = {c: [r.id for r in rules if r.check == c] for c in (SECRETS_CHECK, SAS_CHECK)}
    kinds: dict[str, set[str]] = {}
    for redaction in redactions:
        kinds.setdefault(redaction.file, set()).add(redaction.kind)
    found = {(f.rule, f.subject) for f in facts}
    for path, redacted in sorted(kinds.items()):
        # A designer pointer's ``SasToken`` is the SAS rule's (the walk scans such a pointer
        # for nothing else); any other credential is the secrets rule's.
        check = SAS_CHECK if POINTER_SAS in redacted else SECRETS_CHECK
        for rule in by_check[check]:
            if (rule, path) not in found:
                found.add((rule, path))
                facts.append(
                    AuditFact(rule, "fail", path, "held credentials (redacted in the snapshot)")
                )
    return sorted(facts)


class SnapshotSource(Source):
    """A snapshot's stored files as a read-only workspace storage (for the walk): each
    ``files/<datastore>/<path>`` is ``<path>`` in the datastore's container."""

    def __init__(self, repo: Repository, manifest: Manifest) -> None:
        self.repo = repo
        self.descriptor = WorkspaceDescriptor.from_dict(
            manifest.source, where="snapshot source", strict=False
        )
        self._label = f"{repo.location}@{str(manifest.snapshot_id)[:16]}"
        # Each container's files by name: (digest, size). The name is the string the
        # listing's ``BlobInfo`` holds too, and nothing of the manifest's entries is kept, so
        # the caller may let go of them for the walk (a path string and an entry per file,
        # ~20 MB at 100k files; docs/design/0007, C session 8). A container several
        # datastores name keeps the first entry of a name in the snapshot's order.
        self._names: dict[str, dict[str, tuple[str, int]]] = {}
        for entry in manifest.files:
            if not entry.path.startswith(FILES) or entry.path.count("/") < 2:
                continue
            datastore, _, name = entry.path[len(FILES) :].partition("/")
            container = self.descriptor.container_of(datastore) or datastore
            names = self._names.setdefault(container, {})
            if name not in names:
                names[name] = (entry.digest, entry.size)

    def list_blobs(self) -> Iterator[BlobInfo]:
        for container in sorted(self._names):
            names = self._names[container]
            for name in sorted(names):
                yield BlobInfo(container, name, names[name][1])

    def _entry(self, container: str, name: str) -> tuple[str, int]:
        found = self._names.get(container, {}).get(name)
        if found is None:
            raise SourceNotFound(f"snapshot has no file {container}/{name}")
        return found

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        digest, size = self._entry(container, name)
        data = self.repo.objects.get_bytes(digest, size)
        return data if max_bytes is None else data[:max_bytes]

    def open_stream(self, container: str, name: str) -> BinaryIO:
        return self.repo.open_object(self._entry(container, name)[0])

    def describe(self) -> str:
        return self._label


def compare_facts(
    a: list[AuditFact], b: list[AuditFact]
) -> tuple[list[AuditFact], list[AuditFact], int]:
    """(in B only, in A only, in both) as multisets of ``AuditFact.key``."""
    ka = Counter(f.key for f in a)
    kb = Counter(f.key for f in b)
    added = _take(b, kb - ka)
    removed = _take(a, ka - kb)
    return added, removed, sum((ka & kb).values())


def _take(facts: list[AuditFact], wanted: Counter[tuple[str, str, str]]) -> list[AuditFact]:
    left = Counter(wanted)
    out = []
    for fact in reversed(facts):  # the last ones of a repeated key (any will do: same key)
        if left[fact.key] > 0:
            left[fact.key] -= 1
            out.append(fact)
    return sorted(out)
