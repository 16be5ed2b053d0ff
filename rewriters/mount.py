"""Compute mount paths: v1 ``/mnt/batch/tasks/shared/LS_root/jobs/<ws>/azureml/<run>/mounts/<ds>/…``
and v2 ``/mnt/azureml/cr/j/<32hex>/cap/data-capability/wd/[INPUT_]<port>``.

Never rewritten. They are local file-system paths on a compute node that no longer exists,
found in logs as provenance: they record what a step read and wrote, and the walker derives
lineage edges from them (the v1 path names the datastore, the v2 path the port). Rewriting
them would make the logs say something that never happened. They carry no credential, and
the v1 path names only the workspace and datastore, not the storage account.
"""

from __future__ import annotations

from amlport.model.uris import ParsedUri
from amlport.rewriters.rules import RewriteRules

FAMILIES: tuple[str, ...] = ("mount_v1", "mount_v2")


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    return None
