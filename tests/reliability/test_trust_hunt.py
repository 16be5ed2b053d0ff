"""Session 7 trust hunt (engineer F): what a hostile user or repository did to the promises
"nothing written where it must not be", "no crash on legal input" and "no secret out", each
case a test that failed before its fix (docs/bundle-format.md, docs/exit-codes.md).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import index_piece_of, object_span, sha, tree
from helpers.packing import packed_snapshot, reopen
from helpers.rel_workspace import finish, new_workspace, start

from amlport.bundle import Repository, lock
from amlport.errors import IntegrityError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "designer-autoprice"
CONTENTS = {f"files/f{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(40)}


@pytest.fixture
def packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    monkeypatch.setenv("AMLPORT_PACKS", "1")
    return Repository.init(tmp_path / "repo")


def _listing(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry below ``root``: (kind bits, mtime in ns), to compare before and after."""
    return {
        p.relative_to(root).as_posix(): (p.lstat().st_mode, p.lstat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
    }


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _empty_dir(path: Path) -> None:
    path.mkdir()


def _link(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _garbage(path: Path) -> None:
    path.write_bytes(b"garbage")


IN_PLACE: dict[str, Callable[[Path], None]] = {
    "fifo": _fifo, "directory": _empty_dir, "link": _link, "garbage": _garbage
}  # fmt: skip


def _data_piece(repo: Repository) -> Path:
    """The index piece naming the pack that holds the data objects of ``CONTENTS``."""
    pack, _, _ = object_span(repo, sha(CONTENTS["files/f005.txt"]))
    return index_piece_of(repo.path, pack)


def _replace(piece: Path, how: str) -> None:
    piece.unlink()
    IN_PLACE[how](piece)


# --- an unreadable index piece: prune removes it once its objects are elsewhere -------------


@pytest.mark.parametrize("how", sorted(IN_PLACE))
def test_prune_removes_an_unreadable_index_piece_once_its_objects_are_stored_again(
    packed: Repository, how: str
) -> None:
    """The objects it listed were stored again by the next backup (another pack, another
    piece): verify still failed on the piece, forever, and prune left it (or, a damaged
    file, stopped). Now prune removes it, a dry run first saying so and writing nothing."""
    packed_snapshot(packed, CONTENTS)
    piece = _data_piece(packed)
    _replace(piece, how)
    packed_snapshot(reopen(packed), {**CONTENTS, "files/new.txt": b"another pack"})
    kinds = {p.kind for p in reopen(packed).verify().problems}
    assert kinds == {"corrupt_pack_index"}
    before = _listing(packed.path)
    dry = reopen(packed).prune(dry_run=True)
    assert _listing(packed.path) == before
    key = f"packs/index/{piece.name}"
    assert dry.to_dict()["unreadable_index_pieces"] == [key]
    assert dry.pack_lines()[0].startswith(f"would remove unreadable pack index piece {key}")
    report = reopen(packed).prune()
    assert report.to_dict()["unreadable_index_pieces"] == [key]
    assert not piece.exists() and not piece.is_symlink()
    after = reopen(packed)
    assert after.verify().ok, after.verify().problems
    for sid in [i.id for i in after.list_snapshots()]:
        for entry in after.load_snapshot(sid).files:
            assert after.objects.get_bytes(entry.digest, entry.size) is not None


@pytest.mark.parametrize("how", ["fifo", "garbage"])
def test_prune_keeps_an_unreadable_index_piece_that_may_be_the_only_trace(
    packed: Repository, how: str
) -> None:
    """Nothing stored the objects again: the packs only the unreadable piece named were
    deleted as crash leftovers (a FIFO: prune did not see the piece), the only copy of
    those objects. Now prune stops before deleting anything and says what to do."""
    packed_snapshot(packed, CONTENTS)
    orphan = packed.put_bytes(b"loose orphan " * 4000)  # dead: would be deleted
    piece = _data_piece(packed)
    _replace(piece, how)
    before = tree(packed.path)
    with pytest.raises(IntegrityError, match=f"packs/index/{piece.name}.*cannot be read") as err:
        reopen(packed).prune()
    assert "no other copy" in str(err.value) and "amlport verify" in str(err.value.hint)
    assert tree(packed.path) == before
    assert reopen(packed).objects.has(orphan)


def test_a_non_empty_directory_in_place_of_an_index_piece_is_named_not_removed(
    packed: Repository,
) -> None:
    """A user's file inside it is no piece amlport wrote: prune stops naming it (a stray name
    under ``packs/index/``); an empty folder below it (nothing listed) is named as a warning."""
    packed_snapshot(packed, CONTENTS)
    piece = _data_piece(packed)
    piece.unlink()
    (piece / "sub").mkdir(parents=True)
    (piece / "mine.txt").write_bytes(b"a user's file")
    packed_snapshot(reopen(packed), {**CONTENTS, "files/new.txt": b"another pack"})
    before = tree(packed.path)
    with pytest.raises(IntegrityError, match=f"{piece.name}/mine.txt is not named like"):
        reopen(packed).prune()
    assert tree(packed.path) == before
    (piece / "mine.txt").unlink()
    warnings: list[str] = []
    reopen(packed, warnings).prune()
    assert (piece / "sub").is_dir()
    assert any(f"packs/index/{piece.name} is a directory" in w and "remove it" in w
               for w in warnings), warnings  # fmt: skip


# --- lock.machine_id: once per process, again after a fork ---------------------------------


def test_machine_id_is_worked_out_once_per_process_and_again_in_a_forked_child(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A lock check asked /proc and the host name each time; now once per process. A forked
    child (perhaps in a pid namespace of its own) does not inherit the answer."""
    calls: list[int] = []
    real = socket.gethostname

    def counted() -> str:
        calls.append(os.getpid())
        return real()

    monkeypatch.setattr(lock, "_machine", None, raising=False)
    monkeypatch.setattr(socket, "gethostname", counted)
    first = lock.machine_id()
    if not first:
        pytest.skip("no boot id / pid namespace to tell machines apart")
    assert [lock.machine_id() for _ in range(5)] == [first] * 5
    assert calls == [os.getpid()]
    monkeypatch.setattr(socket, "gethostname", lambda: "forked-elsewhere")
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its own answer, worked out again
        try:
            os.write(write, lock.machine_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as fh:
        child = fh.read().decode()
    os.waitpid(pid, 0)
    assert child.startswith("forked-elsewhere/") and child != first
    assert lock.machine_id() == first


# --- exporters/v2yaml.relative: the paths alone, not the working directory ------------------


def test_relative_bundle_paths_do_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``posixpath.relpath`` of two relative paths asks the working directory: a ``..``
    climbing above the bundle gave an answer per directory, and a deleted directory (a
    command started in a folder removed meanwhile) raised FileNotFoundError."""
    from exporters.v2yaml import relative

    cases = {
        ("assets/models/m.yml", "files/c/a b/[x]/model"): "../../files/c/a b/[x]/model",
        ("assets/data/d.yml", "assets/data/d/x"): "d/x",
        ("m.yml", "files/x"): "files/x",
        ("assets/models/m.yml", "../../../../etc/passwd"): "../../etc/passwd",
    }
    answers = []
    for where in ("/", str(tmp_path), "gone"):
        if where == "gone":
            gone = tmp_path / "gone"
            gone.mkdir()
            monkeypatch.chdir(gone)
            gone.rmdir()
        else:
            monkeypatch.chdir(where)
        answers.append({k: relative(*k) for k in cases})
    assert answers == [cases] * 3


# --- a backup with worker processes killed outright: no leaked-semaphore warning -------------


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="worker processes need 2 CPUs")
def test_a_backup_killed_with_its_workers_running_prints_no_leaked_semaphore_warning(
    tmp_path: Path,
) -> None:
    """SIGKILL of the main process while its worker processes run: the workers end by their
    watch on it, and Python's resource tracker printed "There appear to be 5 leaked semaphore
    objects" on the user's terminal (the pool's queues' semaphores, which only the killed
    process could unlink). The workers unlink them now, and tell the tracker."""
    ws = new_workspace(tmp_path / "ws")
    for i in range(2500):  # more than workers.MIN_FILES small files: the pool is used
        ws.put(f"{ws.blobstore.name}/data/part{i // 100:03d}/f{i:05d}.csv",
               f"{i}," + "y" * (4000 + i % 997) + "\n")  # fmt: skip
    args = ("backup", str(ws.root), "--repo", str(tmp_path / "repo"))
    proc = start(*args)
    deadline = time.monotonic() + 120
    while not any(_children(c) for c in _children(proc.pid)):  # the fork server's workers
        assert proc.popen.poll() is None, "the backup ended before its workers started"
        assert time.monotonic() < deadline, "no worker process started"
        time.sleep(0.005)
    time.sleep(0.5)  # at work
    os.kill(proc.pid, signal.SIGKILL)
    ran = finish(proc, args)  # its stderr ends when the tracker and the workers have ended
    assert ran.returncode == -signal.SIGKILL
    assert "leaked" not in ran.stderr and "Traceback" not in ran.stderr, ran.stderr


# --- dry runs write nothing: `repo upgrade --dry-run` of a read-only repository -------------


@pytest.mark.azurite
def test_repo_upgrade_dry_run_reads_a_repository_it_may_only_read(azurite: Any) -> None:
    """``repo upgrade --dry-run`` took the exclusive lock a real upgrade takes: with a read +
    list SAS (an off-site copy) it failed writing a lock blob (exit 2). A dry run reads: a
    shared lock, taken without a file there; not one blob changes."""
    from helpers.azurite import read_list_container_sas
    from helpers.cliutil import amlport

    account, container = azurite.source, "f7-upgrade-dry-ro"
    url = f"{account.url}/{container}"
    env = {"AMLPORT_REPO_CONNECTION_STRING": account.connection_string, "AMLPORT_PACKS": "0"}
    made = amlport("backup", str(FIXTURE), "--repo", url, env=env)
    assert made.returncode == 0, made.stderr
    sas = read_list_container_sas(account, container)
    client = account.service_client().get_container_client(container)
    before = {b.name: str(b.etag) for b in client.list_blobs()}
    ran = amlport("repo", "upgrade", url, "--packs", "--dry-run", "--json", "--repo-sas-token", sas)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr and json.loads(ran.stdout)["dry_run"] is True
    assert {b.name: str(b.etag) for b in client.list_blobs()} == before
    ran = amlport("repo", "upgrade", url, "--packs", "--repo-sas-token", sas)  # for real: refused
    assert ran.returncode == 2 and "Traceback" not in ran.stderr, ran.stderr
    assert "access denied" in ran.stderr
    assert {b.name: str(b.etag) for b in client.list_blobs()} == before


# --- a lock file's pid is hostile input: no crash where there is no /proc --------------------


@pytest.mark.skipif(os.name == "nt", reason="pid_alive answers True on Windows")
@pytest.mark.parametrize("proc", [True, False], ids=["proc", "no-proc"])
def test_a_pid_no_process_can_have_is_not_alive(
    monkeypatch: pytest.MonkeyPatch, proc: bool
) -> None:
    """A lock file naming pid 2**31 (or 10**30) on this machine: without /proc (macOS)
    ``os.kill`` raised OverflowError, so a lock check ended in an internal error."""
    from amlport import processes

    monkeypatch.setattr(processes, "_PROC", proc)
    for pid in (2**31, 2**64, 10**30, -(2**70)):
        assert processes.pid_alive(pid) is False
    assert processes.pid_alive(os.getpid()) is True
