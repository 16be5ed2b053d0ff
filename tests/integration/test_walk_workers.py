"""The walk of a local copy with its reads done ahead in worker processes
(``export/workers.py``, ``WalkReads``) gives the inventory of the serial walk: the same
records and findings, in the same order, and the same read cache.

Real worker processes (the fork server) over a copy of a fixture workspace with files
added for every outcome of a read: secrets in logs and configuration, a non-UTF-8 file, a
malformed YAML, a file above the parse limit (streamed), an empty file, one larger than the
workers read, hostile names (``[``, ``]``, ``..``, a tab, a 1,024-character path).
``MIN_FILES`` is lowered so that this small workspace uses the workers.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from amlport.export import workers
from amlport.export.copy import READ_WHOLE
from amlport.model import findings as F
from amlport.model.inventory import Inventory
from amlport.model.workspace import WorkspaceDescriptor
from amlport.processes import pid_alive
from amlport.storage.base import BlobInfo
from amlport.storage.local import LocalSource
from amlport.walk import WalkOptions, walk_with_listing
from amlport.walk import cache as cache_mod
from amlport.walk.cache import ReadCache
from amlport.walk.handlers import Handlers

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
SAS = (
    "sv=2021-08-06&ss=b&srt=co&sp=rl&se=2030-01-01&sig="
    + "A1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWxYz%2Bab%3D"
)
KEY = "AccountKey=" + "q" * 86 + "=="
POOL = workers.pool  # the real one (the tests wrap it)
READ_AHEAD: Counter[bool] = Counter()  # files the last walk's workers read, and did not
LIMIT = 4096  # the parse limit of these walks: a larger file is clipped and streamed


def _workspace(tmp_path: Path, name: str = "messy") -> Path:
    root = tmp_path / "ws"
    shutil.copytree(WS / name, root)
    container = next(p for p in root.iterdir() if p.name.startswith("azureml-blobstore"))
    extra = container / "extra"
    long_dir = extra / "/".join(["d" * 200] * 4)  # a path of more than 1,024 characters
    long_dir.mkdir(parents=True)
    hostile = ["a[1].py", "b]..x.yaml", "tab\there.py", "n" * 200 + ".env", "über/ü.sh"]
    for i, n in enumerate(hostile):
        path = extra / n
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"x = {i}\nurl = 'https://acct.blob.core.windows.net/c/x?{SAS}'\n")
    (long_dir / ("l" * 200 + ".yaml")).write_text(f"k: {KEY}\n")
    (extra / "conf.yaml").write_text("path: azureml://datastores/workspaceblobstore/paths/d\n")
    (extra / "bad.yaml").write_text("a: [unclosed\n")
    (extra / "latin.yaml").write_bytes(b"k: caf\xe9\n")
    (extra / "utf16.ini").write_bytes(("k=" + KEY + "\n").encode("utf-16"))
    (extra / "empty.py").write_bytes(b"")
    (extra / "big.py").write_text("x = 1\n" * (LIMIT // 3) + f"key = '{KEY}'\n")  # streamed
    (extra / "huge.cfg").write_bytes(b"# c\n" * (READ_WHOLE // 4 + 10))  # read here
    for i in range(40):
        (extra / "many" / f"{i:03}.py").parent.mkdir(exist_ok=True)
        (extra / "many" / f"{i:03}.py").write_text(f"print({i % 7})\n")
    return root


def _walk(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    ahead: bool,
    cache: ReadCache | None = None,
    min_files: int = 1,
) -> tuple[Inventory, list[int]]:
    """Walk ``root`` with or without the workers; and the worker counts of the pools used."""
    monkeypatch.setattr(workers, "MIN_FILES", min_files)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    used: list[int] = []

    def counting_pool(*args: Any) -> Any:
        used.append(args[2])
        return POOL(*args)

    monkeypatch.setattr(workers, "pool", counting_pool)
    real_reads = workers.WalkReads._reads

    def counting_reads(self: Any, *args: Any) -> Iterator[Any]:
        for blob, done in real_reads(self, *args):
            READ_AHEAD[done is not None] += 1
            yield blob, done

    monkeypatch.setattr(workers.WalkReads, "_reads", counting_reads)
    READ_AHEAD.clear()
    source = LocalSource(root)
    reads = workers.WalkReads.of(source, 4, scan_secrets=True) if ahead else None
    options = WalkOptions(max_parse_bytes=LIMIT, cache=cache, ahead=reads)
    inv, _listing = walk_with_listing(source, options=options)
    return inv, used


def test_the_walk_with_workers_gives_the_serial_walks_inventory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    serial, none = _walk(root, monkeypatch, ahead=False)
    ahead, used = _walk(root, monkeypatch, ahead=True)
    assert not none and used == [2]
    assert READ_AHEAD[True] > 40 and READ_AHEAD[False] >= 2  # the empty file, the huge one
    assert repr(ahead) == repr(serial)  # every record and finding, in the same order
    secrets = [f.path for f in ahead.findings if f.code == F.SECRET_IN_FILE]
    for name in ("a[1].py", "b]..x.yaml", "tab\there.py", "ü.sh", "utf16.ini", "big.py"):
        assert any(p.endswith(name) for p in secrets), name
    assert any(p.endswith("l" * 200 + ".yaml") for p in secrets)
    assert any(f.code == F.NON_UTF8_TEXT and f.path.endswith("latin.yaml") for f in ahead.findings)


def test_the_read_cache_keeps_the_same_rows_with_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    rows = {}
    for mode in ("serial", "ahead"):
        cache = ReadCache.open(tmp_path / mode, "k", on_warning=print)
        assert cache is not None
        _walk(root, monkeypatch, ahead=mode == "ahead", cache=cache)
        cache.finish()
        with sqlite3.connect(tmp_path / mode / "walk-k.sqlite") as conn:
            rows[mode] = conn.execute(
                "SELECT container, name, etag, size, data FROM reads ORDER BY container, name"
            ).fetchall()
    assert rows["ahead"] == rows["serial"]
    assert len(rows["ahead"]) > 40  # the clean files: none with a finding
    assert not any(name.endswith("a[1].py") for _, name, *_ in rows["ahead"])


def _die(jobs: list[Any], max_bytes: int, pack: bool) -> list[Any]:
    """A worker that dies on its task (sent by name to the worker)."""
    os._exit(3)


def _refuse(jobs: list[Any], max_bytes: int, pack: bool) -> list[Any]:
    """A worker that reads nothing (every file is read again on the main process)."""
    return [None] * len(jobs)


@pytest.mark.parametrize("task", [_die, _refuse])
def test_a_walk_worker_that_dies_or_fails_leaves_its_reads_to_the_main_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: Any
) -> None:
    root = _workspace(tmp_path)
    serial, _ = _walk(root, monkeypatch, ahead=False)
    monkeypatch.setattr(workers.WalkReads, "task", staticmethod(task))
    ahead, used = _walk(root, monkeypatch, ahead=True)
    assert used == [2] and not READ_AHEAD[True]
    assert repr(ahead) == repr(serial)


def test_a_file_gone_before_its_read_is_reported_as_without_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's read fails; this process reads it again and words the finding."""
    root = _workspace(tmp_path)
    gone = next(root.glob("azureml-blobstore*")) / "extra" / "conf.yaml"
    real = workers.WalkReads.__call__

    def remove_then_read(self: Any, *args: Any) -> Any:
        gone.unlink()
        return real(self, *args)

    monkeypatch.setattr(workers.WalkReads, "__call__", remove_then_read)
    inventories = {}
    for ahead in (False, True):
        gone.write_text("a: 1\n")
        inv, used = _walk(root, monkeypatch, ahead=True, min_files=1 if ahead else 10**9)
        assert bool(used) == ahead
        inventories[ahead] = inv
    assert repr(inventories[True]) == repr(inventories[False])
    assert any(
        f.code == F.MALFORMED_FILE and f.path.endswith("conf.yaml") and "not found" in f.message
        for f in inventories[True].findings
    )


def test_ctrl_c_during_the_walks_reads_ends_its_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interruption in the middle of the reads goes up at once; the pool is shut down
    without waiting and its workers end."""
    root = _workspace(tmp_path)
    pids: list[int] = []
    real_task = workers.read_chunk
    calls = 0

    def interrupt(self: Handlers, blob: BlobInfo, data: bytes) -> None:
        nonlocal calls
        calls += 1
        if calls == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(Handlers, "on_scanned_file", interrupt)
    monkeypatch.setattr(workers.WalkReads, "task", staticmethod(real_task))

    @contextmanager
    def noting_pool(*args: Any) -> Iterator[Any]:
        with POOL(*args) as executor:
            executor.submit(int).result()  # the workers exist now
            pids.extend(executor._processes)
            yield executor

    monkeypatch.setattr(workers, "MIN_FILES", 1)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    monkeypatch.setattr(workers, "pool", noting_pool)
    source = LocalSource(root)
    options = WalkOptions(
        max_parse_bytes=LIMIT, ahead=workers.WalkReads.of(source, 4, scan_secrets=True)
    )
    with pytest.raises(KeyboardInterrupt):
        walk_with_listing(source, options=options)
    assert calls == 10 and pids
    deadline = time.monotonic() + 60  # a liveness bound on a loaded machine, not a timing
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(pid_alive(pid) for pid in pids)


def test_the_scan_verdict_is_taken_only_for_the_same_bytes() -> None:
    """``Handlers.scanned`` answers for exactly the bytes it was made for: other bytes of
    the same blob are scanned here."""
    inv = Inventory(source=WorkspaceDescriptor(account="a", blobstore_container="b"))
    handlers = Handlers(inv, scan_secrets=True)
    blob = BlobInfo(container="c", name="x.py", size=3)
    data = b"x=1"
    handlers.scanned = (data, Counter({"made up": 1}))
    handlers.on_scanned_file(blob, data)
    assert [f.code for f in inv.findings] == [F.SECRET_IN_FILE]  # the verdict given
    handlers.on_scanned_file(blob, bytes(bytearray(data)))  # equal bytes, another object
    assert len(inv.findings) == 1  # scanned here: nothing found


def test_only_a_local_copy_with_the_scan_on_and_two_cpus_is_read_by_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = LocalSource(_workspace(tmp_path))

    class Counting(LocalSource):
        pass

    monkeypatch.setattr(workers, "cpus", lambda: 2)
    assert workers.WalkReads.of(local, 4, scan_secrets=True) is not None
    assert workers.WalkReads.of(local, 4, scan_secrets=False) is None
    assert workers.WalkReads.of(local, 1, scan_secrets=True) is None
    assert workers.WalkReads.of(Counting(local.root), 4, scan_secrets=True) is None
    monkeypatch.setattr(workers, "cpus", lambda: 1)
    assert workers.WalkReads.of(local, 4, scan_secrets=True) is None
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    reads = workers.WalkReads.of(local, 4, scan_secrets=True)
    assert reads is not None
    monkeypatch.setattr(workers, "MIN_FILES", 10**9)
    assert reads(list(local.list_blobs()), LIMIT + 1, False) is None  # too few: serial


def test_packed_is_what_the_cache_stores() -> None:
    blob = BlobInfo(container="c", name="x", size=3, etag="e")
    assert cache_mod.packed(blob, b"abc") == cache_mod.pack(b"abc")
    assert cache_mod.packed(blob, b"ab") is None  # a part of the file: never kept
    assert cache_mod.packed(BlobInfo(container="c", name="x", size=3), b"abc") is None
