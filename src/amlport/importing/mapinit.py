"""``amlport map init``: a mapping-file template naming every source identity of a snapshot."""

from __future__ import annotations

from typing import Any

import yaml

from amlport.bundle.sources import source_text
from amlport.model.manifest import Manifest

HEADER = """\
# amlport map file for {snapshot}
# Source: account {account}, workspace {workspace}.
# Fill in the target workspace (same shape as workspace.yaml) and map every source datastore
# below to a datastore of the target. Anything left unmapped blocks the items that need it.
# 'source' names the workspace this map is for: import and restore refuse a snapshot of
# another source, and 'latest' means the newest snapshot of this one.
"""


def template(manifest: Manifest) -> str:
    """The template for a snapshot's source (``map init REPO``)."""
    return template_of(
        manifest.source,
        {f.path.split("/")[1] for f in manifest.files if f.path.startswith("files/")},
        [(a.kind, a.name) for a in manifest.assets],
        f"snapshot {manifest.snapshot_id}",
    )


def template_of(
    source: dict[str, Any], with_files: set[str], assets: list[tuple[str, str]], label: str
) -> str:
    """The template for ``source`` (a snapshot's, or a scanned workspace's: ``map init
    SOURCE``): ``with_files`` the datastores its files live in, ``assets`` (kind, name)."""
    # Every datastore the snapshot has files of, and every datastore the source workspace
    # declares: a file (a v2 YAML, an MLmodel, a pointer) may name one whose data is not in
    # the snapshot, and a datastore is mapped only when the map lists it (nothing is guessed).
    declared = source.get("datastores")
    datastores = sorted(
        with_files | ({str(k) for k in declared} if isinstance(declared, dict) else set())
    )
    doc: dict[str, Any] = {
        "source": source_text(source),
        "target": {
            "account": "<target storage account>",
            "endpoint": source.get("endpoint", "core.windows.net"),
            "subscription_id": "<target subscription id>",
            "resource_group": "<target resource group>",
            "workspace": "<target workspace name>",
            "containers": {
                "blobstore": "azureml-blobstore-<target workspace guid>",
                "artifacts": "azureml",
            },
            "datastores": {
                "workspaceblobstore": "azureml-blobstore-<target workspace guid>",
                "workspaceartifactstore": "azureml",
            },
        },
        "datastores": {ds: ds for ds in datastores},
        "assets": {
            name: name
            for kind, name in sorted(assets, key=lambda a: a[1])
            if kind in ("model", "environment", "data")
        },
    }
    head = HEADER.format(
        snapshot=_comment(label),
        account=_comment(source.get("account")),
        workspace=_comment(source.get("workspace") or "-"),
    )
    return head + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)


def _comment(value: object) -> str:
    """A name on one comment line: a newline in it would end the comment (and inject YAML)."""
    return repr(value) if any(ord(c) < 32 for c in str(value)) else str(value)
