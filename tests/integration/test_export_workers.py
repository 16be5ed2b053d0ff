"""The per-file work of a backup of a local copy, done ahead in worker processes
(``export/workers.py``), records what the serial transfer records: the same objects (byte
for byte), entries, rewrites, redactions, warnings, withheld files, failures and counts.

Real worker processes (the fork server) over copies of the fixture workspaces, with files
added that exercise every outcome of a file: rewritten, redacted, withheld for a secret
redaction cannot remove, failed, streamed, hostile names. ``MIN_FILES`` is lowered so that
these small workspaces use the workers (a real backup needs 1,000 files to prepare).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from amlport.backup import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.export import copy as copy_mod
from amlport.export import engine, workers
from amlport.export.copy import prepare, read_whole
from amlport.export.plan import rewrites
from amlport.processes import pid_alive
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.local import LocalSource
from amlport.storage.reuse import ReusingSource

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
SAS = (
    "sv=2021-08-06&ss=b&srt=co&sp=rl&se=2030-01-01&sig="
    + "A1b2C3d4E5f6G7h8I9j0KlMnOpQrStUvWxYz%2Bab%3D"
)
KEY = "AccountKey=" + "q" * 86 + "=="


def _workspace(tmp_path: Path, name: str = "messy") -> Path:
    """A fixture workspace with files for every outcome of a small file."""
    root = tmp_path / "ws"
    shutil.copytree(WS / name, root)
    container = next(p for p in root.iterdir() if p.name.startswith("azureml-blobstore"))
    extra = container / "extra"
    extra.mkdir()
    hostile = ["a[1].log", "b]..x.txt", "tab\there.json", "n" * 200 + ".log", "über/ü.txt"]
    for i, n in enumerate(hostile):
        path = extra / n
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"line {i}\nread https://acct.blob.core.windows.net/c/x?{SAS}\n")
    (extra / "conf.yaml").write_text(
        f"path: azureml://datastores/workspaceblobstore/paths/d\nk: {KEY}\n"
    )
    (extra / "weights.bin").write_bytes(b"\x00\x01binary " + KEY.encode() + b"\x00")  # withheld
    (extra / "model.pkl").write_bytes(bytes(range(256)) * 8)
    (extra / "large.log").write_bytes(b"x" * (copy_mod.READ_WHOLE + 10) + b"\n")  # a stream
    for i in range(40):
        (extra / "many" / f"{i:03}.txt").parent.mkdir(exist_ok=True)
        (extra / "many" / f"{i:03}.txt").write_text(f"file {i % 7}\n")  # equal bytes recur
    return root


def _backup(root: Path, repo: Path, monkeypatch: pytest.MonkeyPatch, *, ahead: bool) -> Any:
    monkeypatch.setattr(workers, "MIN_FILES", 1 if ahead else 10**9)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    used: list[int] = []
    real_pool = workers.pool

    def counting_pool(*args: Any) -> Any:
        used.append(args[2])
        return real_pool(*args)

    monkeypatch.setattr(workers, "pool", counting_pool)
    import amlport.export.writer as writer_mod

    monkeypatch.setattr(writer_mod, "pool", counting_pool)
    result = run_backup(LocalSource(root), repo, BackupRequest(workers=4))
    assert bool(used) == ahead
    return result


def _recorded(repo: Path) -> dict[str, Any]:
    """What a snapshot records, without its time and id."""
    r = Repository.open(repo)
    [info] = r.list_snapshots()
    m = r.load_snapshot(info.id)
    stats = {k: v for k, v in m.stats.items() if k not in ("seconds", "elapsed")}
    return {
        "files": [(f.path, f.digest, f.size, f.rewritten, f.original_digest) for f in m.files],
        "rewrites": [(x.file, x.location, x.before, x.after, x.rule) for x in m.rewrites],
        "redactions": [(x.file, x.kind, x.count) for x in m.redactions],
        "warnings": m.warnings,
        "stats": stats,
        "assets": [(a.id, a.files) for a in m.assets],
    }


def _objects(repo: Path) -> dict[str, bytes]:
    r = Repository.open(repo)
    [info] = r.list_snapshots()
    m = r.load_snapshot(info.id)
    return {f.digest: r.get_bytes(f.digest) for f in m.files}


@pytest.mark.parametrize("name", ["messy", "designer-autoprice", "v2-lendingclub"])
def test_a_backup_with_workers_records_what_the_serial_backup_records(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    root = _workspace(tmp_path, name)
    serial = _backup(root, tmp_path / "serial", monkeypatch, ahead=False)
    ahead = _backup(root, tmp_path / "ahead", monkeypatch, ahead=True)
    assert _recorded(tmp_path / "ahead") == _recorded(tmp_path / "serial")
    assert _objects(tmp_path / "ahead") == _objects(tmp_path / "serial")  # byte for byte
    assert ahead.export.stats.to_dict() == serial.export.stats.to_dict()
    rec = _recorded(tmp_path / "ahead")
    assert rec["redactions"], "the fixture's SAS tokens are redacted"
    withheld = [w for w in rec["warnings"] if w.startswith("not exported: ") and "weights.bin" in w]
    assert withheld, "the secret found in a worker withholds the file, as on this process"
    assert not any(f[0].endswith("weights.bin") for f in rec["files"])


def test_workers_prepare_the_bytes_this_process_prepares(tmp_path: Path) -> None:
    """``prepare_chunk`` in a worker gives, for every file, what ``prepare`` gives here."""
    source = LocalSource(_workspace(tmp_path))
    rules = RewriteRules(direction="export", source=Identity.from_descriptor(source.descriptor))
    jobs = [(f"files/x/{b.name}", b) for b in source.list_blobs() if workers.eligible(b)]
    assert len(jobs) > 50
    with workers.pool(source, rules, 2) as executor:
        got = executor.submit(workers.prepare_chunk, jobs).result()
    for (path, blob), prepared in zip(jobs, got, strict=True):
        here = prepare(read_whole(source, None, blob), rules, path, blob, rewrite=rewrites(blob))
        assert prepared == here, path


def _die(jobs: list[Any]) -> list[Any]:
    """A worker that dies on its task (sent by name to the worker)."""
    os._exit(3)


def _refuse(jobs: list[Any]) -> list[Any]:
    """A worker that prepares nothing (every file is done again on the main process)."""
    return [None] * len(jobs)


@pytest.mark.parametrize("task", [_die, _refuse])
def test_a_worker_that_dies_or_fails_leaves_its_files_to_the_main_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, task: Any
) -> None:
    root = _workspace(tmp_path)
    _backup(root, tmp_path / "serial", monkeypatch, ahead=False)
    monkeypatch.setattr(workers.Ahead, "task", staticmethod(task))
    _backup(root, tmp_path / "ahead", monkeypatch, ahead=True)
    assert _recorded(tmp_path / "ahead") == _recorded(tmp_path / "serial")


def test_a_file_gone_before_the_transfer_fails_as_it_does_without_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Removed after planning: the worker's read fails, the main process reads it again and
    records the failure in the same words (a partial snapshot)."""
    recorded = {}
    real = engine.warm_up
    for mode in ("serial", "ahead"):
        root = _workspace(tmp_path / mode)

        def remove_then_warm(source: Any, files: int, root: Path = root) -> None:
            (next(root.glob("azureml-blobstore*")) / "extra" / "a[1].log").unlink()
            real(source, files)

        monkeypatch.setattr(engine, "warm_up", remove_then_warm)
        result = _backup(root, tmp_path / mode / "repo", monkeypatch, ahead=mode == "ahead")
        [failure] = result.export.stats.failures
        assert failure.path.endswith("extra/a[1].log")
        recorded[mode] = _recorded(tmp_path / mode / "repo")
        recorded[mode]["warnings"] = [
            w.replace(str(root), "ROOT") for w in recorded[mode]["warnings"]
        ]
    assert recorded["ahead"] == recorded["serial"]


def test_ctrl_c_during_the_transfer_abandons_it_and_a_rerun_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    monkeypatch.setattr(workers, "MIN_FILES", 1)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    calls = 0

    def progress(phase: str, done: int, total: int | None) -> None:
        nonlocal calls
        if phase == "export":
            calls += 1
            if calls == 20:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_backup(
            LocalSource(root), tmp_path / "repo", BackupRequest(workers=4), progress=progress
        )
    assert Repository.open(tmp_path / "repo").list_snapshots() == []  # no snapshot
    run_backup(LocalSource(root), tmp_path / "repo", BackupRequest(workers=4))
    monkeypatch.setattr(workers, "MIN_FILES", 10**9)
    run_backup(LocalSource(root), tmp_path / "serial", BackupRequest(workers=4))
    assert _recorded(tmp_path / "repo")["files"] == _recorded(tmp_path / "serial")["files"]


def test_only_a_plain_local_copy_is_read_by_workers(tmp_path: Path) -> None:
    local = LocalSource(_workspace(tmp_path))

    class Counting(LocalSource):  # a stand-in that counts reads keeps them here
        pass

    assert workers.local_copy(ReusingSource(local)) is local
    assert workers.local_copy(Counting(local.root)) is None
    rules = RewriteRules(direction="export", source=Identity.from_descriptor(local.descriptor))
    assert workers.portable_rules(rules) is not None
    importing = RewriteRules(direction="import", source=rules.source, target=rules.source)
    assert workers.portable_rules(importing) is None


_KEEP_A_POOL = """
import sys, time
from pathlib import Path
from amlport.export import workers
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.local import LocalSource
src = LocalSource(Path(sys.argv[1]))
rules = RewriteRules(direction="export", source=Identity.from_descriptor(src.descriptor))
with workers.pool(src, rules, 2) as executor:
    executor.submit(workers.prepare_chunk, []).result()
    print(" ".join(str(pid) for pid in executor._processes), flush=True)
    time.sleep(120)
"""


def test_workers_end_when_the_main_process_is_killed(tmp_path: Path) -> None:
    """SIGKILL leaves the main process no chance to stop its workers: they see it gone and
    end (and so does the fork server), instead of waiting for a task for ever."""
    root = _workspace(tmp_path)
    main = subprocess.Popen(
        [sys.executable, "-c", _KEEP_A_POOL, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert main.stdout is not None
    pids = [int(pid) for pid in main.stdout.readline().split()]
    assert pids and all(pid_alive(pid) for pid in pids)
    main.kill()
    main.wait()
    assert not pid_alive(main.pid)
    deadline = time.monotonic() + 60  # a liveness bound on a loaded machine, not a timing
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(pid_alive(pid) for pid in pids)
