"""The large-blob data path reads into buffers it reuses (docs/design/0005, "Large blobs"):
``streams.read_into``, ``Tee`` and ``Abandonable`` pass the caller's buffer down, and
``put_stream`` hashes and writes a long stream from one buffer."""

from __future__ import annotations

import io
import os
import sys
import threading
from pathlib import Path

import pytest
from helpers.bundle import new_repo

from amlport.bundle.objects import CHUNK_SIZE
from amlport.bundle.store import FileStaging
from amlport.export.transfer import Abandonable, _Abandoned, reuse_freed_buffers
from amlport.streams import WRITE_SLICE, Tee, read_into, write_sliced

MIB = 1 << 20


class ReadOnly(io.RawIOBase):
    """A raw stream with ``read`` only: ``RawIOBase.readinto`` would raise."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        return self._data.read(size)


class Recording(io.RawIOBase):
    """A raw stream that records every call and the buffer each ``readinto`` filled."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)
        self.calls: list[str] = []
        self.buffers: set[int] = set()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.calls.append("read")
        return self._data.read(size)

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        self.calls.append("readinto")
        self.buffers.add(id(memoryview(buffer).obj))
        return self._data.readinto(buffer)


def test_read_into_uses_readinto_or_copies_a_read() -> None:
    out = memoryview(bytearray(8))
    assert read_into(ReadOnly(b"abc"), out) == 3 and bytes(out[:3]) == b"abc"
    assert read_into(ReadOnly(b""), out) == 0
    recording = Recording(b"0123456789")
    assert read_into(recording, out) == 8 and bytes(out) == b"01234567"
    assert recording.calls == ["readinto"]
    buffered = io.BufferedReader(Recording(b"xy"))
    assert read_into(buffered, out) == 2 and read_into(buffered, out) == 0


def test_tee_hands_the_sink_a_view_of_what_was_read() -> None:
    seen: list[bytes] = []
    tee = Tee(Recording(b"hello world"), lambda data: seen.append(bytes(data)))
    out = bytearray(6)
    assert tee.readinto(out) == 6 and bytes(out) == b"hello "
    assert tee.readinto(out) == 5 and tee.readinto(out) == 0
    assert seen == [b"hello ", b"world", b""]  # the empty read ends the stream for the sink


def test_abandonable_reads_into_the_callers_buffer_until_abandoned() -> None:
    abandon = threading.Event()
    raw = Recording(b"x" * 100)
    stream = Abandonable(raw, abandon)  # type: ignore[arg-type]
    out = bytearray(40)
    assert stream.readinto(out) == 40 and raw.calls == ["readinto"]
    abandon.set()
    with pytest.raises(_Abandoned):
        stream.readinto(out)
    with pytest.raises(_Abandoned):
        stream.read(1)


def test_a_long_stream_is_stored_through_one_reused_buffer(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = os.urandom(5 * CHUNK_SIZE + 123)
    raw = Recording(data)
    digest, size = repo.put_stream(raw)  # type: ignore[arg-type]
    assert (digest, size) == (repo.objects.digest_of(data), len(data))  # keyed if encrypted
    assert raw.calls[0] == "read"  # the first chunk decides whether a buffer is worth it
    assert set(raw.calls[1:]) == {"readinto"} and len(raw.buffers) == 1
    assert repo.get_bytes(digest) == data  # every chunk was written before it was reused


def test_a_small_stream_gets_no_buffer(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    raw = Recording(b"small object")
    digest, size = repo.put_stream(raw)  # type: ignore[arg-type]
    assert size == 12 and raw.calls == ["read", "read"] and not raw.buffers
    assert repo.get_bytes(digest) == b"small object"


def test_a_read_only_stream_is_still_stored(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = os.urandom(3 * CHUNK_SIZE)
    digest, _ = repo.put_stream(ReadOnly(data))  # type: ignore[arg-type]
    assert repo.get_bytes(digest) == data


def test_freed_buffers_are_kept_for_reuse_on_glibc() -> None:
    glibc = sys.platform.startswith("linux") and bool(
        getattr(os, "confstr", lambda _: "")("CS_GNU_LIBC_VERSION")
    )
    assert reuse_freed_buffers() is glibc
    assert reuse_freed_buffers() is glibc  # once per process (cached)


class Writes(io.BytesIO):
    """A buffered file that records the size of every ``write``."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, data: object) -> int:  # type: ignore[override]
        n = super().write(data)  # type: ignore[arg-type]
        self.sizes.append(n)
        return n


@pytest.mark.parametrize(
    "size", [0, 1, WRITE_SLICE - 1, WRITE_SLICE, WRITE_SLICE + 1, 4 * WRITE_SLICE, MIB + 123]
)
def test_write_sliced_writes_every_byte_in_slices_of_at_most_write_slice(size: int) -> None:
    data = os.urandom(size)
    for given in (data, bytearray(data), memoryview(data), memoryview(bytearray(data))[:]):
        fh = Writes()
        write_sliced(fh, given)
        assert fh.getvalue() == data
        assert all(n <= WRITE_SLICE for n in fh.sizes)
        assert len(fh.sizes) == max(1, -(-size // WRITE_SLICE))


def test_a_staged_object_is_written_in_slices() -> None:
    """The spool of a stored stream (``FileStaging``) hands the file 256 KiB at a time: a
    1 MiB write(2) can cost the kernel more (docs/design/0005, session 6)."""
    fh = Writes()
    stage = FileStaging(fh)
    chunk = memoryview(bytearray(os.urandom(CHUNK_SIZE)))
    stage.write(chunk)
    stage.write(b"tail")
    assert fh.getvalue() == bytes(chunk) + b"tail" and stage.size == CHUNK_SIZE + 4
    assert max(fh.sizes) <= WRITE_SLICE < CHUNK_SIZE


def test_a_long_stream_stored_in_slices_is_the_same_object(tmp_path: Path) -> None:
    data = os.urandom(3 * CHUNK_SIZE + 5)
    repo = new_repo(tmp_path)
    digest, size = repo.objects.put_stream(io.BytesIO(data))
    assert size == len(data) and repo.objects.get_bytes(digest) == data
