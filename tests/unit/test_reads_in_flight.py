"""How many reads a source keeps in flight is the source's to say (``reads_in_flight``): a
local disk has no latency to hide, so its reads (the walk's ``read_many``) and the export's
copies run on the calling thread; a remote store keeps as many in flight as ``--workers``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest

from amlport.errors import SourceNotFound
from amlport.export import ExportRequest, run_export
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import BlobInfo, OnThisThread, Source, executor
from amlport.storage.local import LocalSource
from amlport.storage.reuse import ReusingSource

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
HOSTILE = ["a[1].txt", "b]..x.txt", "tab\there.txt", "n" * 200 + ".txt", "über/ü.json"]


class ThreadsSeen(LocalSource):
    """A local source that notes the thread of every read."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.threads: set[str] = set()
        self._lock = threading.Lock()

    def _note(self) -> None:
        with self._lock:
            self.threads.add(threading.current_thread().name)

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        self._note()
        return super().read_bytes(container, name, max_bytes=max_bytes)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        self._note()
        return super().open_stream(container, name)


class RemoteLike(ThreadsSeen):
    """The same files, as a remote store would say: every read waits, so all pay off."""

    read_parallelism = None


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    for name in HOSTILE:
        path = root / "azureml-blobstore-x" / "data" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(name.encode())
    (root / "azureml").mkdir()
    return root


def test_a_local_source_is_read_on_the_calling_thread(tmp_path: Path) -> None:
    source = ThreadsSeen(_folder(tmp_path))
    blobs = list(source.list_blobs())
    results = list(source.read_many(blobs, workers=8))
    assert sorted(r.blob.name for r in results) == sorted(f"data/{n}" for n in HOSTILE)
    assert all(r.data == r.blob.name.split("/", 1)[1].encode() for r in results)
    assert source.threads == {threading.current_thread().name}


def test_a_failed_local_read_is_a_result_not_an_exception(tmp_path: Path) -> None:
    source = LocalSource(_folder(tmp_path))
    gone = BlobInfo("azureml-blobstore-x", "data/gone.txt", 3)
    [result] = list(source.read_many([gone], workers=8))
    assert result.data is None and isinstance(result.error, SourceNotFound)


def test_a_remote_source_keeps_its_reads_in_flight(tmp_path: Path) -> None:
    """Three reads that each wait for the other two: they finish only when three are in
    flight at once (a barrier, not a timing)."""
    barrier = threading.Barrier(3, timeout=30)

    class Waiting(RemoteLike):
        def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
            barrier.wait()
            return super().read_bytes(container, name, max_bytes=max_bytes)

    source = Waiting(_folder(tmp_path))
    blobs = list(source.list_blobs())[:3]
    results = list(source.read_many(blobs, workers=3))
    assert len(results) == 3 and all(r.error is None for r in results)
    assert threading.current_thread().name not in source.threads


def test_the_source_says_how_many_reads_pay_off_and_wrappers_ask_the_inner_one(
    tmp_path: Path,
) -> None:
    local = LocalSource(_folder(tmp_path))
    assert local.reads_in_flight(8) == 1
    assert ReusingSource(local).reads_in_flight(8) == 1  # the transfer sees the wrapper
    remote = RemoteLike(tmp_path / "ws")
    assert remote.reads_in_flight(8) == 8
    assert ReusingSource(remote).reads_in_flight(3) == 3
    assert remote.reads_in_flight(0) == 1

    class Four(_Empty):
        read_parallelism = 4

    assert Four().reads_in_flight(8) == 4 and Four().reads_in_flight(2) == 2


def test_a_local_export_copies_on_the_calling_thread_and_a_remote_one_on_workers(
    tmp_path: Path,
) -> None:
    local = ThreadsSeen(WS / "sdk-bikeshare")
    done = run_export(local, tmp_path / "a", ExportRequest(workers=4))
    remote = RemoteLike(WS / "sdk-bikeshare")
    again = run_export(remote, tmp_path / "b", ExportRequest(workers=4))
    assert local.threads == {threading.current_thread().name}
    assert any(name.startswith("amlport-export") for name in remote.threads)
    assert any(name.startswith("amlport-read") for name in remote.threads)
    assert done.stats is not None and again.stats is not None
    assert not done.stats.failures and not again.stats.failures
    # the same snapshot content whichever thread copied
    assert done.stats.files == again.stats.files and done.stats.bytes == again.stats.bytes
    assert done.snapshot_id and again.snapshot_id


def test_on_this_thread_keeps_an_error_in_the_future_and_lets_ctrl_c_through() -> None:
    pool = OnThisThread()
    ok = pool.submit(lambda x: x + 1, 1)
    assert ok.done() and ok.result() == 2

    def fail() -> None:
        raise ValueError("one file")

    failed = pool.submit(fail)
    assert isinstance(failed.exception(), ValueError)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        pool.submit(interrupted)
    assert isinstance(executor(1, "x"), OnThisThread)
    with executor(2, "x") as threads:
        assert threads.submit(threading.current_thread).result() is not threading.current_thread()


class _Empty(Source):
    descriptor = WorkspaceDescriptor(account="a", blobstore_container="b")

    def list_blobs(self) -> Iterator[BlobInfo]:
        return iter(())

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        raise SourceNotFound(name)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        raise SourceNotFound(name)

    def describe(self) -> str:
        return "empty"
