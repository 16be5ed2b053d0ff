"""The mapping file: where a bundle's source identities land in a target workspace.

Shape (``amlport map init REPO`` writes a template listing every identity to fill in)::

    target:                       # the target workspace: same shape as workspace.yaml
      account: stqa0001
      endpoint: core.windows.net
      subscription_id: …           # needed to write long-form azureml:// URIs
      resource_group: rg-ml-qa
      workspace: mlw-qa
      containers: {blobstore: azureml-blobstore-<guid>, artifacts: azureml}
      datastores: {workspaceblobstore: azureml-blobstore-<guid>, workspaceartifactstore: azureml}
    datastores:                   # source datastore -> target datastore
      workspaceblobstore: workspaceblobstore
      workspaceartifactstore: workspaceartifactstore
    assets:                       # optional: source asset name -> name in the target
      Trained_model-a79bd916: autoprice-regressor

An identity that is not mapped blocks the items that need it; nothing is guessed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field, replace
from typing import Any

from amlport.errors import UsageError
from amlport.model.schema import NameMap, Record, Text, describe, load_config_yaml, validate
from amlport.model.workspace import (
    DATASTORE_NAME,
    WORKSPACE_HINT,
    WorkspaceDescriptor,
    workspace_schema,
)

MAP_HINT = "fill in the template 'amlport map init REPO' writes; see docs/importing.md"
# Asset names are checked where they are used (the importer blocks a name Azure ML refuses,
# naming the map entry to fix); here, only their type, so a template ``map init`` wrote for a
# snapshot with an odd name still loads.
_ASSET_NAME = Text("an asset name", name=False)
MAP_SCHEMA = Record(
    {
        "target": workspace_schema(),
        "datastores": NameMap(
            DATASTORE_NAME, DATASTORE_NAME, what="a mapping of source datastore to target datastore"
        ),
        "assets": NameMap(_ASSET_NAME, _ASSET_NAME, what="a mapping of source to target name"),
        "source": Text("ACCOUNT[/WORKSPACE] of the snapshots this map is for", name=False),
    },
    required=frozenset({"target"}),
)


def mapped_datastore(
    datastores: AbcMapping[str, str],
    container_of: Callable[[str], str | None],
    source_datastore: str,
) -> str | None:
    """The one rule deciding whether a source datastore is mapped, for the importer (which
    blocks a file or a pointer that needs an unmapped one) and the rewriters (which refuse a
    URI naming one) alike: the map's ``datastores:`` lists it, and the target datastore it
    names has a container in the target (``container_of``). A datastore the target merely
    has by the same name is *not* mapped: nothing is guessed, so a pointer is never written
    while the folder it points to is blocked."""
    mapped = datastores.get(source_datastore)
    if mapped is None or container_of(mapped) is None:
        return None
    return mapped


@dataclass(frozen=True)
class Mapping:
    target: WorkspaceDescriptor
    datastores: dict[str, str] = field(default_factory=dict)
    assets: dict[str, str] = field(default_factory=dict)
    # ACCOUNT[/WORKSPACE] (or a source key) of the snapshots this map is for; ``map init``
    # writes it, and import/restore refuse a snapshot of another source (bundle/sources.py).
    source: str | None = None

    def target_datastore(self, source_datastore: str) -> str | None:
        """The mapped datastore, if it names a container the target has (``mapped_datastore``)."""
        return mapped_datastore(self.datastores, self.target.container_of, source_datastore)

    def with_aliases(self, source: WorkspaceDescriptor) -> Mapping:
        """This map, plus every other name ``source`` gives a container one of whose names is
        mapped (``workspaceblobstore`` and ``qablob`` over one QA container: files are listed
        under the built-in name, the files themselves name ``qablob``). The map itself cannot
        list both: two source datastores onto one target container are refused, as they would
        be two different folders colliding; aliases are one folder."""
        extra: dict[str, str] = {}
        for datastore, container in sorted(source.datastores.items()):
            if datastore in self.datastores:
                continue
            aliases = sorted(a for a, c in source.datastores.items() if c == container)
            mapped = [self.datastores[a] for a in aliases if self.target_datastore(a)]
            if mapped:
                extra[datastore] = mapped[0]
        if not extra:
            return self
        return replace(self, datastores={**self.datastores, **extra})

    def asset_name(self, name: str) -> str:
        return self.assets.get(name, name)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "map file") -> Mapping:
        """Validate (types, unknown keys, placeholders, names that could not be a container,
        two sources onto one target: ``UsageError`` naming each key) and build."""
        validate(MAP_SCHEMA, data, where=where, hint=MAP_HINT)
        target = WorkspaceDescriptor.from_dict(data["target"], where=f"{where}: target")
        mapping = cls(
            target=target,
            datastores=dict(data.get("datastores") or {}),
            assets=dict(data.get("assets") or {}),
            source=_opt_str(data.get("source"), where, "source"),
        )
        mapping.refuse_collisions(where)
        return mapping

    @classmethod
    def from_yaml(cls, text: str, *, where: str) -> Mapping:
        """A map file's text: bounded YAML, then the schema; errors name ``where``."""
        return cls.from_dict(load_config_yaml(text, where, MAP_HINT), where=where)

    def refuse_collisions(self, where: str) -> None:
        """Two source datastores landing in one target container would overwrite each
        other's files under the same paths (the import cannot tell them apart): refused."""
        onto: defaultdict[str, list[str]] = defaultdict(list)
        for source, mapped in self.datastores.items():
            container = self.target.container_of(mapped)
            onto[f"container {container!r}" if container else f"datastore {mapped!r}"].append(
                source
            )
        problems = [
            f"{', '.join(repr(s) for s in sorted(sources))} all map onto target {what}"
            for what, sources in onto.items()
            if len(sources) > 1
        ]
        if problems:
            raise UsageError(
                describe(problems, where),
                hint="map each source datastore to a target datastore of its own container",
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "datastores": dict(self.datastores),
            "assets": dict(self.assets),
            **({"source": self.source} if self.source is not None else {}),
        }


def _opt_str(value: Any, where: str, key: str) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise UsageError(f"{where}: '{key}' must be a string", hint="e.g. source: ACCOUNT/WORKSPACE")


def descriptor_from_yaml(text: str, *, where: str) -> WorkspaceDescriptor:
    """A ``workspace.yaml`` or a map file (its ``target:``): wherever a workspace file is
    accepted, the map of that workspace is too (docs/importing.md). Bounded YAML, then the
    schema of whichever it is; errors name ``where``."""
    doc = load_config_yaml(text, where, WORKSPACE_HINT)
    if isinstance(doc, dict) and "target" in doc:
        return Mapping.from_dict(doc, where=where).target
    return WorkspaceDescriptor.from_dict(doc, where=where)
