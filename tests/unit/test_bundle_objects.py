"""The object store: write once, atomic, deduplicated, streamed, verified on read."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import subprocess
import sys
import textwrap
import time
import tracemalloc
from pathlib import Path

import pytest
from helpers.bundle import new_repo, plain_only, sha
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.bundle import Repository
from amlport.bundle import store as store_mod
from amlport.bundle.objects import MAX_CHUNK_SIZE
from amlport.errors import ExitCode, IntegrityError, UsageError

MIB = 1 << 20


class GeneratedStream(io.RawIOBase):
    """``size`` pseudo-random bytes made on demand; records every read size asked for."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.left = size
        self.block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB pattern
        self.reads: list[int] = []
        self.md5 = hashlib.md5()
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads.append(size)
        n = self.left if size < 0 else min(size, self.left)
        out = (self.block * (n // len(self.block) + 1))[:n]
        self.left -= n
        self.md5.update(out)
        self.sha.update(out)
        return out


def objects_in(repo: Repository) -> list[Path]:
    return [p for p in (repo.path / "objects").rglob("*") if p.is_file()]


@plain_only
def test_put_bytes_names_the_object_by_its_hash(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"hello")
    hexd = hashlib.sha256(b"hello").hexdigest()
    assert digest == f"sha256:{hexd}"
    assert repo.object_path(digest) == repo.path / "objects" / "sha256" / hexd[:2] / hexd
    assert repo.has_object(digest)
    assert repo.get_bytes(digest) == b"hello"


def test_same_bytes_are_stored_once_and_never_rewritten(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"payload")
    path = repo.object_path(digest)
    os.utime(path, (1_000_000, 1_000_000))
    before = path.stat()
    assert repo.put_bytes(b"payload") == digest
    assert repo.put_stream(io.BytesIO(b"payload")) == (digest, 7)
    after = path.stat()
    assert (after.st_ino, after.st_mtime) == (before.st_ino, before.st_mtime)
    assert len(objects_in(repo)) == 1


def test_failed_rename_leaves_no_object_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo(tmp_path)

    def broken_replace(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        repo.put_bytes(b"data")
    with pytest.raises(OSError):
        repo.put_stream(io.BytesIO(b"more data"))
    monkeypatch.undo()
    assert objects_in(repo) == []
    assert not repo.has_object(sha(b"data"))


def test_a_stop_while_a_large_object_is_made_durable_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C or SIGTERM arrives while the staged bytes of a large object are fsynced (the
    longest step after the copy): the temp file went with it only when the signal came during
    the copy (``test_a_stop_abandons_the_file_in_flight`` failed now and then)."""
    repo = new_repo(tmp_path)

    def stopped(path: Path) -> None:
        raise KeyboardInterrupt("SIGTERM")

    monkeypatch.setattr(store_mod, "_fsync_file", stopped)
    with pytest.raises(KeyboardInterrupt):
        repo.put_stream(io.BytesIO(os.urandom(1 << 20)))
    monkeypatch.undo()
    assert [p.name for p in (repo.path / "objects").rglob("*") if p.is_file()] == []


@plain_only
def test_crash_between_temp_write_and_rename_shows_no_partial_object(tmp_path: Path) -> None:
    """A process killed at the rename leaves a temp file, never a visible object."""
    repo = new_repo(tmp_path)
    script = textwrap.dedent(
        f"""
        import os
        from amlport.bundle import Repository
        repo = Repository.open({str(repo.path)!r})
        os.replace = lambda *a: os._exit(9)   # the machine dies right before the rename
        repo.put_bytes(b"x" * 100_000)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    digest = sha(b"x" * 100_000)
    assert not repo.has_object(digest)
    leftovers = list(repo.objects.iter_temp_files())
    assert len(leftovers) == 1 and leftovers[0].stat().st_size == 100_000
    assert list(repo.objects.iter_digests()) == []
    # The re-run stores the object; prune sweeps the crash's temp file once it is old.
    assert repo.put_bytes(b"x" * 100_000) == digest
    old = time.time() - 3600
    os.utime(leftovers[0], (old, old))
    assert repo.prune().temp_files_removed == 1
    assert list(repo.objects.iter_temp_files()) == []


def test_stream_failure_midway_stores_nothing(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)

    class Dropping(GeneratedStream):
        def read(self, size: int = -1) -> bytes:
            if len(self.reads) == 3:
                raise ConnectionResetError("storage endpoint dropped")
            return super().read(size)

    with pytest.raises(ConnectionResetError):
        repo.put_stream(Dropping(10 * MIB))
    assert objects_in(repo) == []


@plain_only
def test_put_stream_of_20_mib_uses_bounded_chunks_and_memory(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    stream = GeneratedStream(20 * MIB)
    tracemalloc.start()
    try:
        digest, size = repo.put_stream(stream, expected_md5=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size == 20 * MIB
    assert digest == "sha256:" + stream.sha.hexdigest()
    assert all(0 < n <= MAX_CHUNK_SIZE for n in stream.reads)
    assert len(stream.reads) >= 20 * MIB // MAX_CHUNK_SIZE
    assert peak < 12 * MIB  # a few chunks in flight, never the whole object
    assert repo.object_path(digest).stat().st_size == 20 * MIB


@pytest.mark.parametrize("form", ["hex", "HEX", "base64"])
def test_put_stream_accepts_the_right_md5(tmp_path: Path, form: str) -> None:
    repo = new_repo(tmp_path)
    data = os.urandom(3 * MIB + 5)
    raw = hashlib.md5(data).digest()
    md5 = {"hex": raw.hex(), "HEX": raw.hex().upper(), "base64": base64.b64encode(raw).decode()}
    digest, size = repo.put_stream(io.BytesIO(data), expected_md5=md5[form])
    assert (digest, size) == (sha(data), len(data))


def test_put_stream_refuses_a_wrong_md5_and_stores_nothing(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    stream = GeneratedStream(5 * MIB)
    with pytest.raises(IntegrityError, match="MD5 mismatch") as err:
        repo.put_stream(stream, expected_md5=hashlib.md5(b"other").hexdigest())
    assert err.value.exit_code == ExitCode.INTEGRITY
    assert objects_in(repo) == []


def test_put_stream_refuses_an_unexpected_digest(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    with pytest.raises(IntegrityError, match="corrupt"):
        repo.put_stream(io.BytesIO(b"abc"), expected_digest=sha(b"abd"))
    assert objects_in(repo) == []


@pytest.mark.parametrize("bad", ["nothex", "00" * 15, "=="])
def test_malformed_md5_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError):
        new_repo(tmp_path).put_stream(io.BytesIO(b"x"), expected_md5=bad)


def test_get_bytes_detects_a_flipped_byte(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    digest = repo.put_bytes(b"model weights" * 100)
    path = repo.object_path(digest)
    data = bytearray(path.read_bytes())
    data[500] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=digest) as err:
        repo.get_bytes(digest)
    assert err.value.exit_code == ExitCode.INTEGRITY
    with pytest.raises(IntegrityError, match="corrupt"), repo.open_object(digest) as fh:
        fh.read()


def test_open_object_streams_verified_bytes(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    data = os.urandom(3 * MIB)
    digest = repo.put_bytes(data)
    with repo.open_object(digest) as fh:
        chunks = iter(lambda: fh.read(100_000), b"")
        assert b"".join(chunks) == data


def test_missing_object_is_named(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    digest = sha(b"never stored")
    with pytest.raises(IntegrityError, match=f"{digest} is missing"):
        repo.get_bytes(digest)
    with pytest.raises(IntegrityError, match="missing"):
        repo.open_object(digest)


@pytest.mark.parametrize("bad", ["sha256:xyz", "md5:" + "0" * 32, "0" * 64, "sha256:" + "A" * 64])
def test_malformed_digest_is_a_usage_error(tmp_path: Path, bad: str) -> None:
    with pytest.raises(UsageError):
        new_repo(tmp_path).has_object(bad)


def test_chunk_size_is_capped(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        new_repo(tmp_path).objects.put_stream(io.BytesIO(b"x"), chunk_size=MAX_CHUNK_SIZE + 1)


def test_progress_callback_sees_every_byte(tmp_path: Path) -> None:
    seen: list[int] = []
    new_repo(tmp_path).put_stream(io.BytesIO(b"z" * (3 * MIB + 1)), progress=seen.append)
    assert sum(seen) == 3 * MIB + 1 and max(seen) <= MAX_CHUNK_SIZE


@settings(max_examples=40, deadline=None)
@given(blobs=st.lists(st.binary(max_size=2048), max_size=8))
def test_store_is_a_content_addressed_set(
    tmp_path_factory: pytest.TempPathFactory, blobs: list[bytes]
) -> None:
    repo = Repository.init(tmp_path_factory.mktemp("prop") / "repo")
    digests = [repo.put_bytes(b) for b in blobs]
    streamed = [repo.put_stream(io.BytesIO(b))[0] for b in blobs]
    assert digests == streamed == [sha(b) for b in blobs]
    assert sorted(repo.objects.iter_digests()) == sorted(set(digests))
    assert all(repo.get_bytes(d) == b for d, b in zip(digests, blobs, strict=True))


@pytest.mark.parametrize("syncfs", [True, False], ids=["syncfs", "fsync-each"])
def test_objects_written_together_are_made_durable_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, syncfs: bool
) -> None:
    """Inside ``synced_together`` no object is fsynced one by one: at the end (however the
    block ends) one ``syncfs`` of the repository's filesystem, or where there is none, one
    fsync per object written and per folder; outside the block, each object at once."""
    from amlport.bundle import files
    from amlport.bundle import store as store_mod
    from amlport.storage import durable

    repo = new_repo(tmp_path)
    synced: list[Path] = []
    filesystems: list[Path] = []
    fsynced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        fsynced.append(fd)
        real_fsync(fd)

    # The store syncs through bundle/files (a re-export); a write through storage/durable.
    monkeypatch.setattr(files, "fsync_dir", synced.append)
    monkeypatch.setattr(durable, "fsync_dir", synced.append)
    monkeypatch.setattr(os, "fsync", fsync)
    if syncfs:
        monkeypatch.setattr(store_mod, "_SYNCFS", lambda fd: 0)
        monkeypatch.setattr(store_mod, "sync_filesystem", lambda p: filesystems.append(p) or True)
    else:
        monkeypatch.setattr(store_mod, "_SYNCFS", None)
    blobs = [f"object {n}".encode() for n in range(60)]
    with pytest.raises(KeyboardInterrupt), repo.store.synced_together():
        for n, data in enumerate(blobs):
            repo.add_bytes(data)
            if n == 29:
                repo.put_stream(io.BytesIO(b"streamed " * 1000))
        assert synced == [] and fsynced == []  # nothing yet: made durable together …
        raise KeyboardInterrupt  # … however the block ends
    folders = {repo.store.local_path(repo.objects.key(sha(d))).parent for d in blobs}
    if syncfs:
        assert filesystems == [repo.store.local_root] and synced == [] and fsynced == []
    else:
        assert filesystems == [] and len(fsynced) == len(blobs) + 1  # each object, once
        assert len(synced) == len(set(synced)) and folders <= set(synced)
        assert len(synced) < len(blobs)
    synced.clear()
    fsynced.clear()
    repo.add_bytes(b"outside the block")  # one at a time again
    assert synced == [repo.store.local_path(repo.objects.key(sha(b"outside the block"))).parent]
    assert len(fsynced) == 1


def test_syncfs_makes_a_written_file_durable(tmp_path: Path) -> None:
    """On Linux the store finds ``syncfs`` (one call for every object of a backup)."""
    from amlport.bundle import store as store_mod

    if not sys.platform.startswith("linux"):
        pytest.skip("syncfs is Linux's")
    (tmp_path / "f").write_bytes(b"x")
    assert store_mod._SYNCFS is not None
    assert store_mod.sync_filesystem(tmp_path)
    assert not store_mod.sync_filesystem(tmp_path / "missing")  # cannot open: not done


def test_nested_blocks_make_what_was_written_durable_at_each_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A snapshot's pieces are written in a block of their own: when that block ends inside
    another (objects still pending), everything written so far is made durable before the
    root is written; a block that wrote nothing syncs nothing."""
    from amlport.bundle import store as store_mod

    repo = new_repo(tmp_path)
    filesystems: list[Path] = []
    monkeypatch.setattr(store_mod, "_SYNCFS", lambda fd: 0)
    monkeypatch.setattr(store_mod, "sync_filesystem", lambda p: filesystems.append(p) or True)
    with repo.store.synced_together():
        repo.add_bytes(b"outer")
        with repo.store.synced_together():
            repo.add_bytes(b"inner")
        assert filesystems == [repo.store.local_root]
        with repo.store.synced_together():
            pass
        assert len(filesystems) == 1
    assert len(filesystems) == 1  # nothing written since the inner end
