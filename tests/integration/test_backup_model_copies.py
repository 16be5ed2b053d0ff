"""A backup of a workspace holding copies of one large model, and a look-alike holding a key:
the copies are one object, scanned and staged once; the look-alike (same first MiB) is read
again, scanned whole and withheld (docs/design/0005, "CPU per MiB of a large-model backup (G,
session 9)")."""

from __future__ import annotations

import base64
import os
from pathlib import Path

from helpers.backup import copy_workspace

from amlport.backup import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.bundle.objects import CHUNK_SIZE
from amlport.storage.local import LocalSource

BLOBSTORE = "azureml-blobstore-ecd26aa2-5440-4e86-8e7f-527cb96ef823"


def test_copies_of_a_model_are_one_object_and_a_lookalike_with_a_key_is_withheld(
    tmp_path: Path,
) -> None:
    ws = copy_workspace("sdk-bikeshare", tmp_path / "ws")
    key = base64.b64encode(b"K" * 20 + bytes(range(44))).decode()
    body = os.urandom(2 * CHUNK_SIZE + 999)
    lookalike = body[:-4000] + b"\x01" + f"AccountKey={key}".encode() + b"\x01" + body[-3000:]
    names = [f"models/copy{i} [x]/model.bin" for i in range(3)] + ["models/other/model.bin"]
    for name in names:
        path = ws / BLOBSTORE / name
        path.parent.mkdir(parents=True)
        path.write_bytes(lookalike if "other" in name else body)
    result = run_backup(LocalSource(ws), tmp_path / "repo", BackupRequest(workers=4))
    assert result.snapshot_id is not None
    repo = Repository.open(tmp_path / "repo")
    manifest = repo.load_snapshot(result.snapshot_id)
    by_path = {f.original.get("path"): f for f in manifest.files if f.original}
    copies = {by_path[n].digest for n in names[:3]}
    assert len(copies) == 1 and repo.get_bytes(copies.pop()) == body
    assert names[3] not in by_path
    withheld = [w for w in manifest.warnings if w.startswith("not exported: ")]
    assert len(withheld) == 1 and "models/other/model.bin" in withheld[0]
    assert "account_key" in withheld[0] and key not in str(manifest.warnings)
