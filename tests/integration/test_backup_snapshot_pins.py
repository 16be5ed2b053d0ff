"""A backup's snapshot content is pinned: speed and memory work must not change a byte of it.

Each list of the snapshot of a first backup of the checked-in fixture workspaces (files,
assets, lineage, rewrites, redactions, warnings, the selection) is hashed as canonical JSON
and compared with the digest recorded when the change that pinned it was made
(docs/design/0007, *First backup and memory*). The digests are of the manifest's content, not
of the pieces that store it, so a change of how format 2 cuts or stores lists does not touch
them; a change of what a backup records does, and must then update them on purpose.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

from amlport.backup.run import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.storage.local import LocalSource

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
LISTS = ("assets", "files", "lineage", "redactions", "rewrites", "selection", "warnings")

PINNED: dict[str, dict[str, str]] = {
    "designer-autoprice": {
        "assets": "48a9c768e7ec4728",
        "files": "f5aa335fbe8ee273",
        "lineage": "64ded05945393ba2",
        "redactions": "4f53cda18c2baa0c",
        "rewrites": "61eaab956fa4c73c",
        "selection": "08c94a6dd44881a3",
        "warnings": "4f53cda18c2baa0c",
    },
    "v2-lendingclub": {
        "assets": "0df889e1bef7b376",
        "files": "6f23553121aa651d",
        "lineage": "a46b2ee4ccfad4f0",
        "redactions": "4f53cda18c2baa0c",
        "rewrites": "6044c88c1c2fba99",
        "selection": "dc6f6f45d1db225b",
        "warnings": "4f53cda18c2baa0c",
    },
    "messy": {
        "assets": "c94b9ad15110be91",
        "files": "447580d2189e3c35",
        "lineage": "0f76f8ff279683b6",
        "redactions": "8edaed48a307c43b",
        "rewrites": "24509da7ce962277",
        "selection": "4b3f22441e40be6d",
        "warnings": "00ffb6811d3b81e3",
    },
}


def list_digests(repo: Path, snapshot_id: str) -> dict[str, str]:
    opened = Repository.open(repo)
    manifest = opened.load_snapshot(snapshot_id)
    doc = json.loads("".join(manifest.iter_json()))
    if opened.encrypted:  # keyed object names (make test-encrypted): pin the plain SHA-256
        for entry in doc["files"]:
            plain = opened.get_bytes(entry["digest"])
            entry["digest"] = "sha256:" + hashlib.sha256(plain).hexdigest()
    opened.close()
    return {
        key: hashlib.sha256(
            json.dumps(doc[key], sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest()[:16]
        for key in LISTS
    }


def backup_digests(name: str, tmp_path: Path) -> dict[str, str]:
    result = run_backup(LocalSource(WS / name), tmp_path / "repo", BackupRequest(workers=4))
    assert result.snapshot_id is not None
    return list_digests(tmp_path / "repo", result.snapshot_id)


@pytest.mark.parametrize("name", ["designer-autoprice", "v2-lendingclub", "messy"])
def test_a_first_backup_records_the_pinned_lists(name: str, tmp_path: Path) -> None:
    assert backup_digests(name, tmp_path) == PINNED[name]


if __name__ == "__main__":  # print the digests to pin: python tests/integration/test_…py DIR
    out = Path(sys.argv[1])
    for n in ("designer-autoprice", "v2-lendingclub", "messy"):
        (out / n).mkdir(parents=True, exist_ok=True)
        print(f'    "{n}": {backup_digests(n, out / n)!r},')
