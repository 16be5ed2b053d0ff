"""``diff A B --map MAP``: compare two stages (dev and prod) under the mapping that promoted
or restored one into the other, so only what differs after re-binding is reported.

Side A is seen as it would land in B (``MappedSide``):

- **paths**: ``files/<datastore>/<path>`` of A is at ``files/<datastore B names the mapped
  container>/<path>``; a datastore the map does not map keeps its path (and shows as a file
  removed and, in B, a file added);
- **files** that bind to storage: A's neutral bytes are re-bound to the map's target (import's
  rules, the map's datastores and asset renames) and made neutral again with B's identity
  (export's rules), then hashed — B's side hashes its own neutral form, so an unchanged
  promotion compares equal byte for byte; payloads compare as they are;
- **lineage**, **asset ids** and asset file lists: node ids ``<kind>:<datastore>/<path>``
  (an asset's id is its lineage node id) and paths re-keyed the same way, asset names renamed
  by the map's ``assets:``;
- **audit facts** (``backup/facts.py``): a finding's subject (a bundle path) re-keyed the
  same way, so a finding about ``devblob`` in A is the finding about the mapped datastore;
- files amlport **generates** (the v2 YAML of a pipeline, outside ``files/``) are compared
  through the storage files they are made from: present on both sides is equal (each side
  makes its own from its own storage; a reference the map leaves alone, such as
  ``azureml_globaldatasets``, would otherwise read as drift);
- amlport's **own records** (``amlport/`` of the artifact container: import records, the
  identity record) differ between stages by construction and are left out on both sides.

Nothing is written; a file that cannot be re-bound under the map is a difference (its
digest names why).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import replace
from typing import Any

from amlport.backup.diff import Side
from amlport.backup.facts import AuditFact
from amlport.backup.sides import LiveSide, SnapshotSide
from amlport.errors import AmlportError
from amlport.export.writer import MAX_REWRITE_BYTES
from amlport.importing.engine import import_rules
from amlport.model.manifest import AssetEntry, Manifest
from amlport.model.mapping import Mapping
from amlport.model.provenance import RECORDS_PREFIX
from amlport.model.workspace import WorkspaceDescriptor
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Identity, RewriteRules

FILES = "files/"
GENERATED = "generated"  # see the module doc


def source_of(side: Side) -> dict[str, Any]:
    """The workspace identity a side describes (a snapshot's source, a live walk's)."""
    if isinstance(side, MappedSide):
        return side.b_desc.to_dict()
    if isinstance(side, SnapshotSide):
        return side.manifest.source
    if isinstance(side, LiveSide):
        return side.plan.source.descriptor.to_dict()
    raise TypeError(f"no workspace identity for {type(side).__name__}")


class MappedSide:
    """Side ``a`` as it would be in the workspace ``b_desc`` under ``mapping`` (``b_desc``:
    side B's identity, or the map's target for a stage in between: ``--map`` repeated)."""

    label: str

    def __init__(self, a: Side, b_desc: WorkspaceDescriptor, mapping: Mapping) -> None:
        self.inner = a
        self.label = a.label if isinstance(a, MappedSide) else f"{a.label} (under the map)"
        a_source = source_of(a)
        self.a_desc = WorkspaceDescriptor.from_dict(a_source, where="diff A", strict=False)
        self.mapping = mapping.with_aliases(self.a_desc)
        manifest = Manifest(source=a_source)  # import's rules need only the source identity
        self.to_target = import_rules(manifest, mapping)
        self.b_desc = b_desc
        self.to_neutral = RewriteRules("export", Identity.from_descriptor(b_desc))  # B's own
        self._datastores = {
            ds: self._b_datastore(ds) for ds in self._a_datastores(a_source, a.paths())
        }
        own = records_prefix(self.a_desc)
        self._paths = {self.path(p): p for p in a.paths() if not p.startswith(own)}
        self._own = records_prefix(b_desc)

    # -- re-keying -------------------------------------------------------------------------
    @staticmethod
    def _a_datastores(source: dict[str, Any], paths: AbstractSet[str]) -> set[str]:
        declared = source.get("datastores")
        found = {p.split("/")[1] for p in paths if p.startswith(FILES) and p.count("/") >= 2}
        return found | (set(declared) if isinstance(declared, dict) else set())

    def _b_datastore(self, datastore: str) -> str:
        mapped = self.mapping.target_datastore(datastore)
        if mapped is None:
            return datastore
        container = self.mapping.target.container_of(mapped)
        return (self.b_desc.datastore_of(container) if container else None) or mapped

    def path(self, path: str) -> str:
        if not path.startswith(FILES):
            return path
        datastore, sep, rest = path[len(FILES) :].partition("/")
        return f"{FILES}{self._datastores.get(datastore, datastore)}{sep}{rest}"

    def node(self, node_id: str) -> str:
        kind, sep, rest = node_id.partition(":")
        datastore, slash, tail = rest.partition("/")
        if not sep or not slash or datastore not in self._datastores:
            return node_id
        return f"{kind}:{self._datastores[datastore]}/{tail}"

    # -- Side ------------------------------------------------------------------------------
    @property
    def assets(self) -> list[AssetEntry]:
        return [
            replace(
                a,
                id=self.node(a.id),  # ids are lineage node ids: ``<kind>:<datastore>/<path>``
                name=self.mapping.asset_name(a.name),
                files=[self.path(p) for p in a.files],
                v2_yaml=self.path(a.v2_yaml) if a.v2_yaml else None,
            )
            for a in self.inner.assets
            if not own_records(a)
        ]

    @property
    def lineage(self) -> dict[str, Any]:
        graph = self.inner.lineage
        nodes = [{**n, "id": self.node(str(n["id"]))} for n in graph.get("nodes", [])]
        links = [
            {**e, "source": self.node(str(e["source"])), "target": self.node(str(e["target"]))}
            for e in graph.get("links", [])
        ]
        return {**graph, "nodes": nodes, "links": links}

    def paths(self) -> AbstractSet[str]:
        return self._paths.keys()

    def audit_facts(self) -> list[AuditFact]:
        """A's audit facts with their subjects where they would be in B (backup/facts.py)."""
        own = records_prefix(self.a_desc)
        return sorted(
            f.rekeyed(self.path(f.subject))
            for f in self.inner.audit_facts()
            if not f.subject.startswith(own)
        )

    def compared(self) -> None:
        self._paths = {}
        self.inner.compared()

    def size_of(self, path: str) -> int:
        return self.inner.size_of(self._paths[path])

    def _binds(self, path: str) -> bool:
        return binds(path, self.inner.size_of(self._paths[path]))

    def stored_digest(self, path: str) -> str | None:
        if not path.startswith(FILES):
            return GENERATED
        return None if self._binds(path) else self.inner.stored_digest(self._paths[path])

    def source_size(self, path: str) -> int | None:
        return None if self._binds(path) else self.inner.source_size(self._paths[path])

    def listing_md5(self, path: str) -> str | None:
        return None if self._binds(path) else self.inner.listing_md5(self._paths[path])

    def source_md5(self, path: str) -> str | None:
        return None if self._binds(path) else self.inner.source_md5(self._paths[path])

    def final_digest(self, path: str) -> str:
        original = self._paths[path]
        if not path.startswith(FILES):
            return GENERATED
        if not self._binds(path):
            return self.inner.final_digest(original)
        try:
            again = self.neutral(path)
        except AmlportError as exc:
            return f"not re-bindable under the map: {exc.message}"
        return "sha256:" + hashlib.sha256(again).hexdigest()

    def neutral(self, path: str) -> bytes:
        """A's neutral bytes re-bound to the map's target, then neutral in B's terms."""
        original = self._paths[path]
        neutral = _neutral_bytes(self.inner, original)
        name = path.split("/", 2)[-1]
        bound = rewrite_file(name, neutral, self.to_target, bundle_path=original).data
        return rewrite_file(name, bound, self.to_neutral, bundle_path=path).data


def records_prefix(desc: WorkspaceDescriptor) -> str:
    """Bundle path prefix of amlport's own records in a side (``files/<artifact ds>/amlport/``)."""
    datastore = desc.datastore_of(desc.artifact_container) or desc.artifact_container
    return f"{FILES}{datastore}/{RECORDS_PREFIX}"


def own_records(asset: AssetEntry) -> bool:
    """The catch-all group of amlport's own records (``unclassified:<ds>/amlport``)."""
    return bool(asset.attrs.get("unclassified")) and asset.id.endswith(f"/{RECORDS_PREFIX[:-1]}")


def binds(path: str, size: int) -> bool:
    """A file compared in its re-bound form (the rule of ``sides.py``)."""
    return needs_rewrite(path, size) and size <= MAX_REWRITE_BYTES


def _neutral_bytes(side: Side, path: str) -> bytes:
    """A file's neutral form as the side stores (or would store) it."""
    if isinstance(side, MappedSide):
        return side.neutral(path)
    if isinstance(side, SnapshotSide):
        return side.repo.read_file(side.manifest, path)
    if isinstance(side, LiveSide):
        blob = side.plan.writer.blobs.get(path)
        if blob is None:
            return side.plan.writer.generated[path]
        data = side.plan.source.read_bytes(blob.container, blob.name)
        return rewrite_file(blob.name, data, side.plan.writer.rules, bundle_path=path).data
    raise TypeError(f"cannot read {path} of {type(side).__name__}")


def neutral_digest(side: Side, path: str) -> str:
    """B's own neutral form, hashed as ``MappedSide`` hashes A's (plain SHA-256)."""
    return "sha256:" + hashlib.sha256(_neutral_bytes(side, path)).hexdigest()


class PlainSide:
    """Side ``b`` with its rewritten files hashed in plain SHA-256, as ``MappedSide`` hashes
    (an encrypted repository names bytes with a keyed hash)."""

    label: str

    def __init__(self, b: Side) -> None:
        self.inner = b
        self.label = b.label

        self._own = records_prefix(
            WorkspaceDescriptor.from_dict(source_of(b), where="diff B", strict=False)
        )

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    @property
    def assets(self) -> list[AssetEntry]:
        return [a for a in self.inner.assets if not own_records(a)]

    def paths(self) -> AbstractSet[str]:
        return {p for p in self.inner.paths() if not p.startswith(self._own)}

    def audit_facts(self) -> list[AuditFact]:
        return [f for f in self.inner.audit_facts() if not f.subject.startswith(self._own)]

    def compared(self) -> None:
        self.inner.compared()

    def stored_digest(self, path: str) -> str | None:
        if not path.startswith(FILES):
            return GENERATED
        if binds(path, self.inner.size_of(path)):
            return None
        return self.inner.stored_digest(path)

    def final_digest(self, path: str) -> str:
        if not path.startswith(FILES):
            return GENERATED
        if binds(path, self.inner.size_of(path)):
            try:
                return neutral_digest(self.inner, path)
            except AmlportError as exc:
                return f"unreadable: {exc.message}"
        return self.inner.final_digest(path)


def under_map(*mappings: Mapping) -> Callable[[Side, Side], tuple[Side, Side]]:
    """``diff_specs``' ``mapped`` hook: (A, B) -> (A under the maps, B). Several maps are
    stages in order (``--map qa.yaml --map prod.yaml``: dev → qa → prod)."""

    def sides(a: Side, b: Side) -> tuple[Side, Side]:
        b_desc = WorkspaceDescriptor.from_dict(source_of(b), where="diff B", strict=False)
        mapped: Side = a
        for n, mapping in enumerate(mappings, 1):
            mapped = MappedSide(mapped, b_desc if n == len(mappings) else mapping.target, mapping)
        return mapped, PlainSide(b)

    return sides
