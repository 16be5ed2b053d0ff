"""``Repository.objects_intact`` and the check before a snapshot is written test the same
predicate (``_unfit_objects``): stored, with the size the entry records."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.bundle import SOURCE, at, new_repo

from amlport.errors import IntegrityError
from amlport.model.manifest import FileEntry, Manifest


def _manifest(files: list[FileEntry]) -> Manifest:
    return Manifest(source=dict(SOURCE), files=files, created=at(0))


@pytest.mark.parametrize("case", ["whole", "missing", "other-size", "twice-one-wrong"])
def test_objects_intact_and_the_write_check_agree(tmp_path: Path, case: str) -> None:
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"twelve bytes")
    other = "sha256:" + "0" * 64 if not digest.startswith("keyed") else digest[:-1] + "0"
    files = {
        "whole": [FileEntry("a/x.txt", digest, 12)],
        "missing": [FileEntry("a/x.txt", digest, 12), FileEntry("a/y.txt", other, 3)],
        "other-size": [FileEntry("a/x.txt", digest, 13)],
        # the same object listed twice, first with a size it does not have (objects_intact
        # kept the last size of a digest: it said intact, the write then refused)
        "twice-one-wrong": [FileEntry("a/x.txt", digest, 5), FileEntry("a/y.txt", digest, 12)],
    }[case]
    intact = repo.objects_intact((f.digest, f.size) for f in files)
    assert intact == (case == "whole")
    if intact:
        repo.write_snapshot(_manifest(files))
    else:
        says = "not stored" if case == "missing" else "a size their object does not have"
        with pytest.raises(IntegrityError, match=says):
            repo.write_snapshot(_manifest(files))
