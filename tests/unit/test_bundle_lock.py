"""Repository locks, stale-lock takeover, and concurrent writers and readers."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import TESTS
from helpers.bundle import new_repo, snapshot
from helpers.stores import place_of, plant_lock

from amlport.bundle import Repository, RepositoryLocked
from amlport.bundle.lock import machine_id
from amlport.errors import ExitCode, UsageError


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_exclusive_conflicts_with_any_lock_and_says_who_holds_it(tmp_path: Path) -> None:
    holder = new_repo(tmp_path)
    other = Repository.open(holder.path)
    with holder.lock(exclusive=False):
        with other.lock(exclusive=False):
            pass  # readers and writers share
        with pytest.raises(RepositoryLocked) as err, other.lock(exclusive=True):
            pass
    text = str(err.value)
    assert f"pid {os.getpid()}" in text and socket.gethostname() in text
    assert "shared lock" in text and "delete" in (err.value.hint or "")
    assert err.value.exit_code == ExitCode.ERROR
    with (
        holder.lock(exclusive=True),
        pytest.raises(RepositoryLocked, match="exclusive lock"),
        other.lock(exclusive=False),
    ):
        pass
    assert holder.locks() == []  # every lock file is gone after release


def test_failed_attempt_leaves_no_lock_behind(tmp_path: Path) -> None:
    holder = new_repo(tmp_path)
    other = Repository.open(holder.path)
    with holder.lock(exclusive=True):
        with pytest.raises(RepositoryLocked), other.lock(exclusive=True):
            pass
        assert len(holder.locks()) == 1


def test_lock_is_reentrant_on_the_same_repository_object(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    snapshot(repo, {"files/a": b"a"})
    with repo.lock(exclusive=True) as outer:
        with repo.lock(exclusive=False) as inner:
            assert inner is outer
        repo.forget(keep_last=1)  # takes the exclusive lock it already holds
        repo.prune()
    with repo.lock(exclusive=False), pytest.raises(UsageError), repo.lock(exclusive=True):
        pass


def test_forget_and_prune_wait_for_no_one_but_refuse_while_a_backup_runs(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path)
    backup = Repository.open(repo.path)
    with backup.lock(exclusive=False):
        repo.put_bytes(b"in-flight object of a running backup")
        assert repo.prune(dry_run=True).objects_removed == 1
        with pytest.raises(RepositoryLocked):
            repo.prune()
        with pytest.raises(RepositoryLocked):
            repo.forget(keep_last=1)
    assert repo.prune().objects_removed == 1


def test_lock_of_a_dead_process_on_this_host_is_taken_over(tmp_path: Path) -> None:
    warnings: list[str] = []
    repo = new_repo(tmp_path, on_warning=warnings.append)
    pid = dead_pid()
    key = plant_lock(place_of(repo), pid=pid, host=socket.gethostname(), age=timedelta(seconds=5))
    with repo.lock(exclusive=True):
        assert not (repo.path / key).exists()
    assert len(warnings) == 1 and "stale" in warnings[0] and f"pid {pid}" in warnings[0]


@pytest.mark.skipif(not machine_id(), reason="no boot id / pid namespace to tell machines apart")
def test_a_dead_pid_of_another_machine_with_this_host_name_does_not_free_the_lock(
    tmp_path: Path,
) -> None:
    """Two containers with one host name share a mounted repository: a pid that is not running
    here may be running there. Before, the host name alone made such a lock stale, and a prune
    could start under a live backup."""
    repo = new_repo(tmp_path)
    pid = dead_pid()
    here = machine_id()
    elsewhere = here.rsplit("/", 1)[0] + "/1"  # same host name and boot, another pid namespace
    key = plant_lock(
        place_of(repo), pid=pid, host=socket.gethostname(), age=timedelta(seconds=5),
        machine=elsewhere,
    )  # fmt: skip
    with pytest.raises(RepositoryLocked, match=f"pid {pid}"), repo.lock(exclusive=True):
        pass
    assert (repo.path / key).exists()
    plant_lock(
        place_of(repo), pid=pid, host=socket.gethostname(), age=timedelta(seconds=5),
        machine=here,
    )  # fmt: skip
    with repo.lock(exclusive=True):
        assert not (repo.path / key).exists()


def test_a_lock_file_records_where_its_pid_means_something(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    with repo.lock(exclusive=False):
        (info,) = repo.locks()
    assert info.pid == os.getpid() and info.machine == machine_id()


def test_old_lock_from_another_host_is_stale_fresh_one_is_not(tmp_path: Path) -> None:
    warnings: list[str] = []
    repo = new_repo(tmp_path, on_warning=warnings.append)
    plant_lock(place_of(repo), pid=1, host="backup-vm-7", age=timedelta(minutes=5))
    with pytest.raises(RepositoryLocked, match="backup-vm-7"), repo.lock(exclusive=True):
        pass
    plant_lock(place_of(repo), pid=1, host="backup-vm-7", age=timedelta(hours=2))
    with repo.lock(exclusive=True):
        pass
    assert "backup-vm-7" in warnings[0]
    assert repo.locks() == []
    plant_lock(place_of(repo), pid=1, host="backup-vm-7", age=timedelta(minutes=5))
    with repo.lock(exclusive=True, stale_after=timedelta(minutes=1)):
        pass  # the caller decides how old is too old


def test_unreadable_lock_file_counts_as_exclusive_until_old(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    junk = repo.path / "locks" / "junk.json"
    junk.write_text("{half a lock")
    with pytest.raises(RepositoryLocked, match="unknown"), repo.lock(exclusive=False):
        pass
    old = time.time() - 7200
    os.utime(junk, (old, old))
    with repo.lock(exclusive=False):
        assert not junk.exists()


# A long run keeping its lock fresh, and a writer whose lock was taken over as stale: the
# repository-store contract (tests/contract/test_repository_store.py), local and Azure.


def test_concurrent_threads_writing_snapshots_do_not_corrupt(tmp_path: Path) -> None:
    root = new_repo(tmp_path).path
    errors: list[BaseException] = []

    def backup(worker: int) -> None:
        try:
            repo = Repository.open(root)
            with repo.lock(exclusive=False):
                for i in range(10):  # shared objects race on the same names
                    contents = {"files/shared": b"common", "files/mine": f"{worker}-{i}".encode()}
                    snapshot(repo, contents, tags=(f"w{worker}",))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=backup, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    repo = Repository.open(root)
    assert len(repo.list_snapshots()) == 40
    assert repo.verify().ok
    assert list(repo.objects.iter_temp_files()) == []
    assert repo.locks() == []


def test_reader_during_backup_sees_only_complete_snapshots(tmp_path: Path) -> None:
    root = new_repo(tmp_path).path
    done = threading.Event()
    seen: set[str] = set()
    failed: list[BaseException] = []

    def read_loop() -> None:
        """One reader open the whole time: it must find the objects of snapshots written
        after it read the pack index (it reads the writer's new index pieces)."""
        reader = Repository.open(root)
        try:
            while not done.is_set():
                for info in reader.list_snapshots():
                    m = reader.load_snapshot(info.id)
                    assert all(reader.has_object(f.digest) for f in m.files)
                    assert reader.get_bytes(m.files[-1].digest)
                    seen.add(info.id)
        except BaseException as exc:  # reported by the test below
            failed.append(exc)

    thread = threading.Thread(target=read_loop)
    thread.start()
    writer = Repository.open(root)
    try:
        for i in range(30):
            snapshot(writer, {"files/a": os.urandom(20_000), "files/b": str(i).encode()})
    finally:
        done.set()
        thread.join()
    assert failed == []
    assert len(Repository.open(root).list_snapshots()) == 30


_WORKER = textwrap.dedent(
    """
    import sys
    from amlport.bundle import Repository
    from helpers.bundle import snapshot
    repo = Repository.open_or_init(sys.argv[1])
    with repo.lock(exclusive=False):
        for i in range(5):
            snapshot(repo, {"files/shared": b"x" * 50_000,
                            "files/own": f"{sys.argv[2]}-{i}".encode()})
    """
)


def test_concurrent_processes_initialise_and_write_one_repository(tmp_path: Path) -> None:
    root = tmp_path / "repo"  # does not exist yet: every process races to create it
    env = {**os.environ, "PYTHONPATH": str(TESTS)}  # `helpers` in the worker processes
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(root), str(n)], env=env)
        for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    repo = Repository.open(root)
    assert len(repo.list_snapshots()) == 20
    assert repo.verify().ok
    assert repo.locks() == []
