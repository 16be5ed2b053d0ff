"""A local source reads only what is inside its container folders.

``LocalSource._path`` answers most names with one ``lstat`` (folders checked once) and asks
``Path.resolve`` for the rest (``..``, links, anything unusual): the same files are read and
the same names refused as when every read resolved its whole path.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from amlport.errors import SourceError, UsageError
from amlport.storage.local import LocalSource

CONTAINER = "azureml-blobstore-0001"


@pytest.fixture
def source(tmp_path: Path) -> LocalSource:
    root = tmp_path / "ws"
    base = root / CONTAINER
    (base / "data" / "deep").mkdir(parents=True)
    (base / "data" / "a.csv").write_bytes(b"a")
    (base / "data" / "deep" / "b[1].csv").write_bytes(b"b")
    (base / "data" / ("n" * 200)).write_bytes(b"long")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(b"outside")
    os.symlink(tmp_path / "outside", base / "linked")  # a folder link leaving the container
    os.symlink(tmp_path / "outside" / "secret.txt", base / "file-link")
    os.symlink(base / "data", base / "inner")  # a link inside the container
    os.symlink(base / "data" / "a.csv", base / "data" / "alias.csv")
    (root / "azureml").mkdir()
    return LocalSource(root)


def test_plain_names_are_read(source: LocalSource) -> None:
    assert source.read_bytes(CONTAINER, "data/a.csv") == b"a"
    assert source.read_bytes(CONTAINER, "data/deep/b[1].csv") == b"b"
    assert source.read_bytes(CONTAINER, "data/" + "n" * 200) == b"long"
    with source.open_stream(CONTAINER, "data/deep/b[1].csv") as fh:
        assert fh.read() == b"b"
    assert source.read_bytes(CONTAINER, "data/a.csv") == b"a"  # folders now known


@pytest.mark.parametrize(
    "name",
    ["linked/secret.txt", "file-link", "../outside/secret.txt", "data/../../outside/secret.txt",
     "data/../linked/secret.txt"],
)  # fmt: skip
def test_names_that_leave_the_container_are_refused(source: LocalSource, name: str) -> None:
    with pytest.raises(UsageError, match="escapes container"):
        source.read_bytes(CONTAINER, name)


@pytest.mark.parametrize("name", ["inner/a.csv", "data/alias.csv", "data/./a.csv", "data//a.csv"])
def test_links_and_spellings_inside_the_container_still_read(
    source: LocalSource, name: str
) -> None:
    assert source.read_bytes(CONTAINER, name) == b"a"


@pytest.mark.parametrize("name", ["data/missing.csv", "missing/a.csv", "data/a.csv/x", "data"])
def test_what_is_not_a_file_is_not_found_or_refused(source: LocalSource, name: str) -> None:
    with pytest.raises(SourceError):
        source.read_bytes(CONTAINER, name)


def test_a_folder_swapped_for_a_link_before_its_first_read_is_refused(
    source: LocalSource, tmp_path: Path
) -> None:
    base = tmp_path / "ws" / CONTAINER
    (base / "data" / "deep" / "b[1].csv").unlink()
    (base / "data" / "deep").rmdir()
    os.symlink(tmp_path / "outside", base / "data" / "deep")
    with pytest.raises(UsageError, match="escapes container"):
        source.read_bytes(CONTAINER, "data/deep/secret.txt")


def test_the_folders_it_remembers_are_bounded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlport.storage import local

    monkeypatch.setattr(local, "_FOLDERS_KEPT", 3)
    base = tmp_path / "ws" / CONTAINER
    for n in range(6):
        (base / f"run{n}" / "logs").mkdir(parents=True)
        (base / f"run{n}" / "logs" / "std.txt").write_text(f"{n}")
    src = LocalSource(tmp_path / "ws")
    for _ in range(2):
        assert [src.read_bytes(CONTAINER, f"run{n}/logs/std.txt") for n in range(6)] == [
            f"{n}".encode() for n in range(6)
        ]
        assert len(src._real_folders) <= 3
