"""The ``Source`` contract: every storage amlport reads a workspace from passes the same suite.

Each test runs once per backend of ``BACKENDS``: a local copy (a folder per container; always
runs) and the same files in two containers of the session Azurite account, opened by the
blobstore container's URL with an account key (marked ``azurite``). The files hold what a
workspace holds and what trips readers: names with ``[``, ``]``, ``[/]``, ``..`` inside a
segment, spaces, ``%``, ``&``, non-ASCII, a 1,024-character name, an empty file and one past
the 8 MiB chunk size. What only one backend has (URL parsing, credentials, throttling, SAS) is
tested beside it (tests/integration/test_azure_source.py, tests/unit/test_source_reuse.py).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.data import long_name

from amlport.errors import SourceNotFound
from amlport.storage.base import BlobInfo, Source
from amlport.storage.local import LocalSource
from amlport.storage.opener import StorageAuth, open_source

BIG = 9 * (1 << 20) + 123  # past the 8 MiB chunk size, not a multiple of it
BLOBSTORE_FILES: dict[str, bytes] = {
    "azureml/3f1e/Trained_model/_meta.yaml": b"type: ModelDirectory\n",
    "UI/2024-01-02_030405_UTC/with space & sign%.csv": b"x\n",
    "x[/]y.txt": b"markup\n",
    "[bold]z[link=x].txt": b"more markup\n",
    "a..b/..dots../x.txt": b"dots\n",
    "données/été ☃.txt": "unicode ☃\n".encode(),
    long_name("long/"): b"a 1,024-character name\n",
    "empty.txt": b"",
    "model/weights.bin": os.urandom(BIG),
}
ARTIFACT_FILES: dict[str, bytes] = {
    "ExperimentRun/dcid.3f1e/logs/azureml/executionlogs.txt": b"[2022-07-22 11:45:38Z] ok\n",
}


@dataclass(frozen=True)
class Copy:
    """The files, as a local copy: ``root/<container>/<name>``."""

    root: Path
    blobstore: str
    artifacts: str

    def files(self) -> dict[tuple[str, str], bytes]:
        return {
            **{(self.blobstore, n): d for n, d in BLOBSTORE_FILES.items()},
            **{(self.artifacts, n): d for n, d in ARTIFACT_FILES.items()},
        }


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Copy:
    wsid = uuid.uuid4().hex[:12]  # hub-style names: the blobstore finds its artifact store
    found = Copy(tmp_path_factory.mktemp("source"), f"{wsid}-blobstore", f"{wsid}-azureml")
    for (container, name), data in found.files().items():
        path = found.root / container / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return found


def _local(request: pytest.FixtureRequest, copy: Copy) -> Iterator[Source]:
    with LocalSource(copy.root) as source:
        yield source


def _azure(request: pytest.FixtureRequest, copy: Copy) -> Iterator[Source]:
    emulator: az.Azurite = request.getfixturevalue("azurite")
    account = emulator.source
    admin = account.service_client()
    if not admin.get_container_client(copy.blobstore).exists():  # once per module
        az.upload_workspace(account.connection_string, copy.root)
    url = f"{account.url}/{copy.blobstore}"
    with open_source(url, auth=StorageAuth(account_key=account.key)) as source:
        yield source


# Every Source: (factory, id, marks). The local copy runs everywhere.
BACKENDS: list[object] = [
    pytest.param(_local, id="local"),
    pytest.param(_azure, id="azure", marks=pytest.mark.azurite),
]


@pytest.fixture(params=BACKENDS)
def source(request: pytest.FixtureRequest, copy: Copy) -> Iterator[Source]:
    factory: Callable[[pytest.FixtureRequest, Copy], Iterator[Source]] = request.param
    yield from factory(request, copy)


def test_the_listing_is_every_file_with_its_size(source: Source, copy: Copy) -> None:
    listed = {(b.container, b.name): b.size for b in source.list_blobs()}
    assert listed == {key: len(data) for key, data in copy.files().items()}


def test_read_bytes_reads_whole_and_bounded(source: Source, copy: Copy) -> None:
    for (container, name), data in copy.files().items():
        assert source.read_bytes(container, name) == data, name
        assert source.read_bytes(container, name, max_bytes=64) == data[:64], name
    weights = BLOBSTORE_FILES["model/weights.bin"]
    assert source.read_bytes(copy.blobstore, "model/weights.bin", max_bytes=0) == b""
    assert source.read_bytes(copy.blobstore, "model/weights.bin", max_bytes=2 * BIG) == weights


def test_open_stream_streams_every_byte(source: Source, copy: Copy) -> None:
    digest, total = hashlib.sha256(), 0
    with source.open_stream(copy.blobstore, "model/weights.bin") as stream:
        while piece := stream.read(1 << 20):
            digest.update(piece)
            total += len(piece)
    assert total == BIG
    assert digest.digest() == hashlib.sha256(BLOBSTORE_FILES["model/weights.bin"]).digest()
    with source.open_stream(copy.blobstore, "empty.txt") as empty:
        assert empty.read() == b""


def test_a_missing_blob_is_not_found(source: Source, copy: Copy) -> None:
    for name in ("not/there.txt", "x[/]y.txt.missing"):
        with pytest.raises(SourceNotFound):
            source.read_bytes(copy.blobstore, name)
        with pytest.raises(SourceNotFound):
            source.open_stream(copy.blobstore, name)


def test_read_many_answers_every_blob_and_each_error_apart(source: Source, copy: Copy) -> None:
    blobs = list(source.list_blobs())
    missing = BlobInfo(copy.blobstore, "not/there.txt", 1)
    results = list(source.read_many([*blobs, missing], workers=2, max_bytes=64))
    by_key = {r.blob.key: r for r in results}
    assert len(results) == len(by_key) == len(blobs) + 1
    assert isinstance(by_key[missing.key].error, SourceNotFound)
    for (container, name), data in copy.files().items():
        result = by_key[(container, name)]
        assert result.error is None and result.data == data[:64], name


def test_describe_names_the_place_without_a_credential(source: Source, copy: Copy) -> None:
    text = source.describe()
    assert text and "AccountKey" not in text and "sig=" not in text
    assert isinstance(source.retry_count, int) and source.retry_count >= 0
