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

from dataclasses import dataclass, field
from typing import Any

from amlport.errors import UsageError
from amlport.model.workspace import WorkspaceDescriptor


@dataclass(frozen=True)
class Mapping:
    target: WorkspaceDescriptor
    datastores: dict[str, str] = field(default_factory=dict)
    assets: dict[str, str] = field(default_factory=dict)

    def target_datastore(self, source_datastore: str) -> str | None:
        """The mapped datastore, if it names a container the target has."""
        mapped = self.datastores.get(source_datastore)
        if mapped is None or self.target.container_of(mapped) is None:
            return None
        return mapped

    def asset_name(self, name: str) -> str:
        return self.assets.get(name, name)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "map file") -> Mapping:
        if not isinstance(data, dict) or not isinstance(data.get("target"), dict):
            raise UsageError(
                f"{where}: needs a 'target' mapping (the target workspace)",
                hint="start from 'amlport map init REPO'",
            )
        target = WorkspaceDescriptor.from_dict(data["target"], where=f"{where}: target")
        return cls(
            target=target,
            datastores=_str_map(data.get("datastores"), where, "datastores"),
            assets=_str_map(data.get("assets"), where, "assets"),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "datastores": dict(self.datastores),
            "assets": dict(self.assets),
        }


def _str_map(value: Any, where: str, key: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise UsageError(f"{where}: '{key}' must map names to names")
    return dict(value)
