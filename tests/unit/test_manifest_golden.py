"""Golden ``amlport.bundle/1`` manifest: every later amlport must read it unchanged.

The bytes below are a v1 snapshot file exactly as 0.1.0 wrote it. If a change makes this test
fail, it broke old bundles: add a new minor/major instead (docs/bundle-format.md, Versioning).
The full golden repository (objects included) belongs under ``fixtures/bundles/v1/``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from amlport.bundle import Repository
from amlport.model.manifest import Manifest

GOLDEN_ID = "dfbbee6f56b3950ac3d9fd164a5647b9a8be7111c97fa348096bfc60b29f22f1"
GOLDEN_SOURCE_KEY = "azmlautoprice5241-79ee6d46896e"
GOLDEN_V1 = r"""{
  "assets": [
    {
      "attrs": {
        "flavor": "designer"
      },
      "files": [
        "files/workspaceblobstore/azureml/3f2a/Trained_model/data.ilearner",
        "files/workspaceblobstore/azureml/3f2a/Trained_model/data_type.json"
      ],
      "id": "model:price-model",
      "kind": "model",
      "name": "price-model",
      "portable": false,
      "requires": [
        "environment:designer-env"
      ],
      "v2_yaml": "assets/model/price-model.yaml"
    }
  ],
  "created": "2024-03-01T02:00:00.000000Z",
  "files": [
    {
      "digest": "sha256:9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d9d",
      "original": null,
      "original_digest": null,
      "path": "assets/model/price-model.yaml",
      "rewritten": false,
      "size": 311
    },
    {
      "digest": "sha256:0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
      "original": {
        "container": "azureml-blobstore-bfe051f9",
        "datastore": "workspaceblobstore",
        "path": "azureml/3f2a/Trained_model/data.ilearner"
      },
      "original_digest": null,
      "path": "files/workspaceblobstore/azureml/3f2a/Trained_model/data.ilearner",
      "rewritten": false,
      "size": 48213
    },
    {
      "digest": "sha256:4141414141414141414141414141414141414141414141414141414141414141",
      "original": {
        "container": "azureml-blobstore-bfe051f9",
        "datastore": "workspaceblobstore",
        "path": "azureml/3f2a/Trained_model/data_type.json"
      },
      "original_digest": "sha256:c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3",
      "path": "files/workspaceblobstore/azureml/3f2a/Trained_model/data_type.json",
      "rewritten": true,
      "size": 187
    }
  ],
  "lineage": {
    "directed": true,
    "links": [],
    "multigraph": true,
    "nodes": [
      {
        "id": "model:price-model",
        "kind": "model"
      }
    ]
  },
  "parent": "5c1f0e9a7b3d2c4e000000000000000000000000000000000000000000000000",
  "redactions": [
    {
      "count": 1,
      "file": "files/workspaceblobstore/azureml/3f2a/Trained_model/data_type.json",
      "kind": "sas_token"
    }
  ],
  "rewrites": [
    {
      "after": "azureml://datastores/workspaceblobstore/paths/azureml/3f2a/Trained_model/",
      "before": "https://azmlautoprice5241.blob.core.windows.net/azureml-blobstore-bfe051f9/azureml/3f2a/Trained_model/",
      "file": "files/workspaceblobstore/azureml/3f2a/Trained_model/data_type.json",
      "location": "/Uri",
      "rule": "blob-https"
    }
  ],
  "schema": "amlport.bundle/1",
  "selection": {
    "include": [
      "models"
    ],
    "select": [
      "model:price-model"
    ]
  },
  "source": {
    "account": "azmlautoprice5241",
    "containers": {
      "artifacts": "azureml",
      "blobstore": "azureml-blobstore-bfe051f9"
    },
    "datastores": {
      "workspaceartifactstore": "azureml",
      "workspaceblobstore": "azureml-blobstore-bfe051f9"
    },
    "endpoint": "core.windows.net",
    "workspace": "autoprice-dev"
  },
  "stats": {
    "bytes": 48711,
    "files": 3,
    "new_objects": 1
  },
  "tags": [
    "nightly"
  ],
  "tool_version": "0.1.0",
  "warnings": []
}
"""


def test_golden_v1_manifest_reads_and_reserializes_byte_for_byte() -> None:
    raw = GOLDEN_V1.encode("utf-8")
    assert hashlib.sha256(raw).hexdigest() == GOLDEN_ID
    m = Manifest.from_json_bytes(raw, where="golden v1")
    assert m.to_json_bytes() == raw  # the canonical form (and so snapshot ids) is stable
    assert m.source_key == GOLDEN_SOURCE_KEY  # index files and retention groups rely on it
    assert [a.id for a in m.assets] == ["model:price-model"]
    assert m.assets[0].portable is False
    assert m.file("assets/model/price-model.yaml") is not None
    assert m.redactions[0].count == 1 and m.rewrites[0].location == "/Uri"


@pytest.mark.parametrize("version", [1, 2], ids=["format1", "format2"])
def test_golden_v1_snapshot_file_loads_from_a_repository(tmp_path: Path, version: int) -> None:
    """A format-1 manifest file reads in a format-1 repository and in a format-2 one (where
    snapshots not yet converted by ``repo upgrade`` stay)."""
    repo = Repository.init(tmp_path / "repo", version=version)
    (repo.path / "snapshots" / f"{GOLDEN_ID}.json").write_bytes(GOLDEN_V1.encode("utf-8"))
    loaded = repo.load_snapshot(GOLDEN_ID[:8])
    assert loaded.snapshot_id == GOLDEN_ID
    info = repo.list_snapshots()[0]
    assert (info.files, info.size, info.tags) == (3, 311 + 48213 + 187, ("nightly",))
    report = repo.verify()  # the objects are not in this repository: each is reported
    assert sorted(p.kind for p in report.problems) == ["missing_object"] * 3
