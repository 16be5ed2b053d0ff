"""Small generated workspaces (local folders shaped like a storage copy) and CLI helpers.

A workspace here is ``<root>/workspace.yaml`` plus one folder per container: the artifact
container ``azureml`` (runs under ``ExperimentRun/dcid.<run>/``) and the blobstore. The same
folder can be uploaded to Azurite with ``azurite.upload_workspace``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import yaml

from helpers.cliutil import init_format1
from helpers.cliutil import manifest_paths as manifest_paths  # the reliability suite's, re-exported

GUID = "5e1ab1e0-0000-4000-8000-00000000c0de"
BLOBSTORE = f"azureml-blobstore-{GUID}"
ARTIFACTS = "azureml"
TRACEBACK = "Traceback (most recent call last)"
INTERNAL = "amlport: internal error:"


@dataclass(frozen=True)
class Workspace:
    root: Path
    account: str

    @property
    def artifacts(self) -> Path:
        return self.root / ARTIFACTS

    @property
    def blobstore(self) -> Path:
        return self.root / BLOBSTORE

    def run(self, run_id: str) -> Path:
        return self.artifacts / "ExperimentRun" / f"dcid.{run_id}"

    def put(self, rel: str, data: bytes | str) -> Path:
        """Write ``<container>/<name>`` (``rel`` starts with the container folder)."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path

    def put_run_file(self, run_id: str, name: str, data: bytes | str) -> Path:
        return self.put(f"{ARTIFACTS}/ExperimentRun/dcid.{run_id}/{name}", data)

    def files(self) -> list[Path]:
        """Every file that is a blob (what a scan must count)."""
        return sorted(
            p
            for c in (self.artifacts, self.blobstore)
            if c.is_dir()
            for p in c.rglob("*")
            if p.is_file() and not p.is_symlink()
        )


def new_workspace(root: Path, account: str = "relws") -> Workspace:
    """An empty workspace with one harmless run (so exports always have something)."""
    ws = Workspace(root, account)
    (ws.artifacts).mkdir(parents=True, exist_ok=True)
    (ws.blobstore).mkdir(parents=True, exist_ok=True)
    descriptor = {
        "account": account,
        "endpoint": "core.windows.net",
        "containers": {"blobstore": BLOBSTORE, "artifacts": ARTIFACTS},
        "datastores": {"workspaceblobstore": BLOBSTORE, "workspaceartifactstore": ARTIFACTS},
    }
    (root / "workspace.yaml").write_text(yaml.safe_dump(descriptor), encoding="utf-8")
    ws.put_run_file("clean_run", "user_logs/std_log.txt", "epoch 1 loss 0.5\nepoch 2 loss 0.4\n")
    return ws


def descriptor_for(ws: Workspace, dest: Path) -> Path:
    """The descriptor, for ``--workspace-file`` when the workspace is read from Azurite."""
    dest.write_text((ws.root / "workspace.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    return dest


# --- running the CLI ----------------------------------------------------------------------


@dataclass(frozen=True)
class Ran:
    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mb: float  # peak resident set of the amlport process (MiB; VmHWM, see finish)

    def json(self) -> Any:
        return json.loads(self.stdout)

    def explain(self) -> str:
        return f"amlport {' '.join(self.args)} -> {self.returncode}\n{self.stderr[-3000:]}"


def run_measured(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> Ran:
    """Run the installed command as a user does, measuring its peak resident memory."""
    proc = start(*args, env=env, cwd=cwd)
    return finish(proc, args, timeout=timeout)


def start(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> _Proc:
    full_env = {
        **os.environ,
        "COLUMNS": "200",
        "AZURE_STORAGE_CONNECTION_STRING": "",
        **(env or {}),
    }
    popen = subprocess.Popen(
        [sys.executable, "-m", "amlport", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=cwd,
    )
    return _Proc(popen, time.monotonic())


@dataclass
class _Proc:
    popen: subprocess.Popen[bytes]
    started: float

    @property
    def pid(self) -> int:
        return self.popen.pid


def finish(proc: _Proc, args: tuple[str, ...], *, timeout: float = 300) -> Ran:
    """Collect the output and the exit status, sampling the child's peak RSS meanwhile.

    The peak is the kernel's high-water mark of the child's own memory (``VmHWM`` in
    /proc/<pid>/status), read every 10 ms until it exits. Not ``ru_maxrss``: Linux charges
    the parent's memory at the time of the exec to the child, so a child of a big pytest
    process would seem big.
    """
    chunks: dict[str, bytes] = {}

    def drain(name: str, stream: IO[bytes]) -> None:
        chunks[name] = stream.read()

    assert proc.popen.stdout is not None and proc.popen.stderr is not None
    readers = [
        threading.Thread(target=drain, args=("out", proc.popen.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", proc.popen.stderr), daemon=True),
    ]
    for r in readers:
        r.start()
    deadline = time.monotonic() + timeout
    status_file, peak_kb = Path(f"/proc/{proc.pid}/status"), 0
    while True:
        with contextlib.suppress(OSError, ValueError):
            hwm = re.search(r"^VmHWM:\s+(\d+) kB", status_file.read_text(), re.M)
            peak_kb = max(peak_kb, int(hwm.group(1))) if hwm else peak_kb
        pid, status = os.waitpid(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.popen.kill()
            pid, status = os.waitpid(proc.pid, 0)
            break
        time.sleep(0.01)
    proc.popen.returncode = os.waitstatus_to_exitcode(status)
    for r in readers:
        r.join(10)
    return Ran(
        args,
        proc.popen.returncode,
        chunks.get("out", b"").decode("utf-8", "replace"),
        chunks.get("err", b"").decode("utf-8", "replace"),
        time.monotonic() - proc.started,
        peak_kb / 1024,
    )


def run_in_process(*args: str, env: dict[str, str] | None = None) -> Ran:
    """Run the command in this process (typer's runner): the same exit codes and output as a
    subprocess, ten times faster. An escaped exception shows as a traceback on stderr."""
    import traceback

    from typer.testing import CliRunner

    from amlport.cli import common
    from amlport.cli.app import app
    from amlport.cli.terminal import SafeConsole

    saved = common.out, common.err, common.State.debug
    # The CLI's own console class (no markup, controls escaped), only wider.
    common.out = SafeConsole(soft_wrap=False, width=250)
    common.err = SafeConsole(stderr=True, width=250)
    started = time.monotonic()
    try:
        res = CliRunner().invoke(
            app,
            list(args),
            env={"COLUMNS": "250", "AZURE_STORAGE_CONNECTION_STRING": "", **(env or {})},
            catch_exceptions=True,
        )
    finally:
        common.out, common.err, common.State.debug = saved
    stderr = res.stderr
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        assert res.exc_info is not None
        stderr += "".join(traceback.format_exception(*res.exc_info))
    return Ran(args, res.exit_code, res.stdout, stderr, time.monotonic() - started, 0.0)


TARGET_GUID = "11111111-2222-3333-4444-555555555555"


def target_section() -> dict[str, Any]:
    """A map file's ``target:`` for a local import target (account and containers of its own)."""
    return {
        "account": "sttarget01",
        "endpoint": "core.windows.net",
        "subscription_id": "00000000-0000-0000-0000-000000000001",
        "resource_group": "rg-target",
        "workspace": "ws-target",
        "containers": {"blobstore": f"azureml-blobstore-{TARGET_GUID}", "artifacts": "azureml"},
        "datastores": {
            "workspaceblobstore": f"azureml-blobstore-{TARGET_GUID}",
            "workspaceartifactstore": "azureml",
        },
    }


def identity_map(out: Path) -> Path:
    """A map file onto ``target_section()`` that keeps every datastore name."""
    doc = {
        "target": target_section(),
        "datastores": {
            "workspaceblobstore": "workspaceblobstore",
            "workspaceartifactstore": "workspaceartifactstore",
        },
    }
    out.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return out


def filled_map(repo: Path, out: Path) -> Path:
    """``map init`` of ``repo`` with its target filled in (a local import target)."""
    ran = run_in_process("map", "init", str(repo), "-o", str(out))
    assert ran.returncode == 0, ran.explain()
    doc = yaml.safe_load(out.read_text(encoding="utf-8"))
    doc["target"] = target_section()
    out.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return out


def small_backup(root: Path, *, version: int = 2) -> tuple[Path, Path]:
    """``root/repo`` holding one backup of a small workspace (a log, an MLmodel, a binary),
    and the workspace's folder. ``version``: the repository format (1: a repository made
    with ``repo init --format 1`` first, for tests of the format-1 files)."""
    if version == 1:
        init_format1(root / "repo")
    ws = new_workspace(root / "ws")
    ws.put_run_file("r1", "user_logs/std_log.txt", "loss 0.1\n" * 50)
    ws.put_run_file("r1", "outputs/model/MLmodel", "flavors: {}\n")
    ws.put_run_file("r1", "outputs/model.pkl", bytes(range(256)) * 8)
    ran = run_in_process("backup", str(ws.root), "--repo", str(root / "repo"))
    assert ran.returncode == 0, ran.explain()
    return root / "repo", ws.root


OUTAGE_PARTS = 400


def outage_workspace(root: Path, account: str, part: int = 16 << 10) -> Workspace:
    """One run with ``OUTAGE_PARTS`` outputs of ``part`` bytes: long enough to stop storage
    mid-copy."""
    ws = new_workspace(root, account)
    for i in range(OUTAGE_PARTS):
        ws.put_run_file("bigrun", f"outputs/model/part_{i:04d}.bin", os.urandom(part))
    return ws


def assert_clean_failure(ran: Ran, *, code: int, says: str = "") -> None:
    """The exit code is ``code``, with no traceback, and ``says`` appears in the output."""
    assert ran.returncode == code, ran.explain()
    assert TRACEBACK not in ran.stderr + ran.stdout, ran.explain()
    assert INTERNAL not in ran.stderr, ran.explain()  # an error amlport did not expect
    if says:
        assert says in ran.stdout + ran.stderr, ran.explain()


def error_lines(ran: Ran) -> list[str]:
    return [ln for ln in ran.stderr.splitlines() if ln.startswith("amlport: ")]


def finding_messages(report: dict[str, Any]) -> list[str]:
    return [f"{f['code']}: {f['path']}: {f['message']}" for f in report["inventory"]["findings"]]


def all_bytes_under(paths: Iterable[Path]) -> bytes:
    return b"".join(p.read_bytes() for p in paths if p.is_file())
