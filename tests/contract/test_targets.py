"""One contract, every target: ``LocalTarget`` (a folder) and ``AzureTarget`` (Azurite).

The contract is the docstring of ``amlport.storage.target``. Each test runs once per target;
the Azure ones get containers of their own in the ``amldst`` account, so other suites are
unaffected.
"""

from __future__ import annotations

import hashlib
import io
import tracemalloc
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.data import digest, long_name

from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.opener import StorageAuth
from amlport.storage.retry import FAST_RETRY
from amlport.storage.target import DIGEST_METADATA, LocalTarget, Target, TargetConflict

MIB = 1 << 20
BIG = 12 * MIB


def meta(data: bytes) -> dict[str, str]:
    return {DIGEST_METADATA: digest(data), "amlport_source": "contract-test"}


class PatternStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on demand (never all in memory), hashed as read.

    With ``fail_after`` it raises ``OSError`` once that many bytes have been read, like a
    source connection dropping mid-way.
    """

    def __init__(self, size: int, *, seed: int = 0, fail_after: int | None = None) -> None:
        super().__init__()
        self.size = size
        self.fail_after = fail_after
        self.pos = 0
        self.sha = hashlib.sha256()
        self._unit = hashlib.sha512(str(seed).encode()).digest() * 1024  # 64 KiB pattern

    @staticmethod
    def digest_of(size: int, *, seed: int = 0) -> str:
        stream = PatternStream(size, seed=seed)
        while stream.read(MIB):
            pass
        return "sha256:" + stream.sha.hexdigest()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.fail_after is not None and self.pos >= self.fail_after:
            raise OSError("connection reset while reading the source (injected)")
        limit = self.size if self.fail_after is None else min(self.size, self.fail_after)
        n = min(len(buffer), limit - self.pos, len(self._unit))
        if n <= 0:
            return 0
        offset = self.pos % len(self._unit)
        chunk = (self._unit[offset:] + self._unit[:offset])[:n]
        buffer[:n] = chunk
        self.sha.update(chunk)
        self.pos += n
        return n


ODD_NAMES = [
    "données/été 2024/modèle ✓.txt",
    "UI/2024-01-02_030405_UTC/with space & sign.csv",
    "percent/100%/a%20b%25.txt",
    long_name(),
]


@pytest.fixture(params=["local", pytest.param("azure", marks=pytest.mark.azurite)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    tag = uuid.uuid4().hex[:10]
    if request.param == "local":
        descriptor = WorkspaceDescriptor("localacct", f"ct-{tag}-blobstore", f"ct-{tag}-azureml")
        made: Target = LocalTarget(tmp_path / "target", descriptor)
    else:
        from amlport.storage.azure_target import open_azure_target

        emulator = request.getfixturevalue("azurite")
        account = emulator.target
        descriptor = WorkspaceDescriptor(account.name, f"ct-{tag}-blobstore", f"ct-{tag}-azureml")
        made = open_azure_target(
            account.url,
            descriptor=descriptor,
            auth=StorageAuth(account_key=account.key),
            retry=FAST_RETRY,
        )
    with made:
        made.ensure_containers()
        yield made


def container_of(target: Target) -> str:
    return target.descriptor.blobstore_container


# --- stat / write ----------------------------------------------------------------------------


def test_stat_of_missing_blob_is_none(target: Target) -> None:
    c = container_of(target)
    assert target.stat(c, "no/such/blob.txt") is None
    assert target.stat(target.descriptor.artifact_container, "nothing-here") is None


def test_write_then_stat_gives_size_and_digest(target: Target) -> None:
    c, data = container_of(target), b"hello target\n"
    target.write_bytes(c, "a/b/hello.txt", data, metadata=meta(data), overwrite=False)
    blob = target.stat(c, "a/b/hello.txt")
    assert blob is not None
    assert (blob.container, blob.name, blob.size) == (c, "a/b/hello.txt", len(data))
    assert blob.sha256 == digest(data)
    assert target.read_bytes(c, "a/b/hello.txt") == data


def test_empty_blob(target: Target) -> None:
    c = container_of(target)
    target.write_bytes(c, "empty.txt", b"", metadata=meta(b""), overwrite=False)
    blob = target.stat(c, "empty.txt")
    assert blob is not None and blob.size == 0 and blob.sha256 == digest(b"")
    assert target.read_bytes(c, "empty.txt") == b""


def test_no_overwrite_on_existing_is_a_conflict_and_keeps_content(target: Target) -> None:
    c, old, new = container_of(target), b"old content", b"new content!"
    target.write_bytes(c, "x.txt", old, metadata=meta(old), overwrite=False)
    with pytest.raises(TargetConflict):
        target.write_bytes(c, "x.txt", new, metadata=meta(new), overwrite=False)
    with pytest.raises(TargetConflict):
        target.write_stream(c, "x.txt", PatternStream(5 * MIB), metadata={}, overwrite=False)
    assert target.read_bytes(c, "x.txt") == old
    blob = target.stat(c, "x.txt")
    assert blob is not None and blob.sha256 == digest(old)


def test_overwrite_replaces(target: Target) -> None:
    c, old, new = container_of(target), b"old content", b"new content!"
    target.write_bytes(c, "x.txt", old, metadata=meta(old), overwrite=False)
    target.write_bytes(c, "x.txt", new, metadata=meta(new), overwrite=True)
    assert target.read_bytes(c, "x.txt") == new
    blob = target.stat(c, "x.txt")
    assert blob is not None and blob.size == len(new) and blob.sha256 == digest(new)


def test_large_stream_is_written_with_bounded_memory(target: Target) -> None:
    c, expected = container_of(target), PatternStream.digest_of(BIG, seed=7)
    stream = PatternStream(BIG, seed=7)
    tracemalloc.start()
    try:
        target.write_stream(
            c, "model/weights.bin", io.BufferedReader(stream, 256 * 1024),
            metadata={DIGEST_METADATA: expected}, overwrite=False,
        )  # fmt: skip
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stream.pos == BIG
    assert peak < BIG * 3 // 4, f"peak {peak / MIB:.1f} MiB for a 12 MiB stream"
    blob = target.stat(c, "model/weights.bin")
    assert blob is not None and blob.size == BIG and blob.sha256 == expected
    assert digest(target.read_bytes(c, "model/weights.bin")) == expected


# --- names and listing -----------------------------------------------------------------------


def test_list_names_by_prefix(target: Target) -> None:
    c = container_of(target)
    names = ["p/a.txt", "p/sub/b.txt", "p2/c.txt", "q.txt", "p.txt"]
    for name in names:
        target.write_bytes(c, name, name.encode(), metadata=meta(name.encode()), overwrite=False)
    assert sorted(target.list_names(c, "")) == sorted(names)
    assert sorted(target.list_names(c, "p")) == ["p/a.txt", "p/sub/b.txt"]
    assert sorted(target.list_names(c, "p/")) == ["p/a.txt", "p/sub/b.txt"]
    assert sorted(target.list_names(c, "p/sub")) == ["p/sub/b.txt"]
    assert list(target.list_names(c, "p/a.txt")) == ["p/a.txt"]
    assert list(target.list_names(c, "nothing")) == []
    assert list(target.list_names(target.descriptor.artifact_container, "")) == []


@pytest.mark.parametrize("name", ODD_NAMES, ids=["unicode", "spaces", "percent", "1024-chars"])
def test_odd_names_round_trip(target: Target, name: str) -> None:
    c, data = container_of(target), f"content of {name}".encode()
    assert len(long_name()) == 1024
    target.write_bytes(c, name, data, metadata=meta(data), overwrite=False)
    blob = target.stat(c, name)
    assert blob is not None and blob.name == name and blob.sha256 == digest(data)
    assert target.read_bytes(c, name) == data
    assert list(target.list_names(c, "")) == [name]
    assert list(target.list_names(c, name.rsplit("/", 1)[0])) == [name]


def test_ensure_containers_is_idempotent(target: Target) -> None:
    target.ensure_containers()
    c = container_of(target)
    target.write_bytes(c, "kept.txt", b"kept", metadata=meta(b"kept"), overwrite=False)
    target.ensure_containers()
    target.ensure_containers()
    assert target.read_bytes(c, "kept.txt") == b"kept"
    for container in target.descriptor.containers:
        assert target.stat(container, "nothing") is None


# --- interrupted writes ----------------------------------------------------------------------


@pytest.mark.parametrize("fail_after", [100, 6 * MIB], ids=["first-block", "later-block"])
def test_interrupted_write_leaves_no_partial_blob(target: Target, fail_after: int) -> None:
    c = container_of(target)
    with pytest.raises(OSError, match="injected"):
        target.write_stream(
            c, "big/partial.bin", PatternStream(BIG, fail_after=fail_after),
            metadata={DIGEST_METADATA: PatternStream.digest_of(BIG)}, overwrite=False,
        )  # fmt: skip
    assert target.stat(c, "big/partial.bin") is None
    assert list(target.list_names(c, "")) == []
    # A retry after the failure writes the whole blob.
    target.write_stream(
        c, "big/partial.bin", PatternStream(BIG),
        metadata={DIGEST_METADATA: PatternStream.digest_of(BIG)}, overwrite=False,
    )  # fmt: skip
    blob = target.stat(c, "big/partial.bin")
    assert blob is not None and blob.size == BIG


def test_interrupted_overwrite_keeps_the_old_blob(target: Target) -> None:
    c, old = container_of(target), b"the previous, complete content"
    target.write_bytes(c, "model.bin", old, metadata=meta(old), overwrite=False)
    with pytest.raises(OSError, match="injected"):
        target.write_stream(
            c, "model.bin", PatternStream(BIG, fail_after=6 * MIB),
            metadata={DIGEST_METADATA: PatternStream.digest_of(BIG)}, overwrite=True,
        )  # fmt: skip
    assert target.read_bytes(c, "model.bin") == old
    blob = target.stat(c, "model.bin")
    assert blob is not None and blob.sha256 == digest(old)
    assert list(target.list_names(c, "")) == ["model.bin"]
