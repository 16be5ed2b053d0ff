"""Run one command and measure it: wall time, CPU time, peak RSS, bytes received, and the
CPU time the emulator spent serving it.

Peak RSS comes from ``os.wait4`` on the command itself (``ru_maxrss`` of exactly that process,
not the running maximum over all children that ``RUSAGE_CHILDREN`` gives), taken by a tiny
parent (``spawn.py``) because a child's ``ru_maxrss`` starts at its parent's peak. Bytes
received are counted inside the measured Python process (``wrap.py``: socket reads, HTTP headers and
bodies), because the loopback interface is shared with whatever else runs on the machine.
The emulator's CPU time comes from ``/proc/<pid>/stat`` before and after: on a 2-core machine
client and emulator compete for the same cores, so CPU seconds are reported next to wall time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Measured:
    label: str
    argv: list[str]
    rc: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_mb: float
    received_bytes: int | None  # socket bytes the command received (None: not counted)
    server_cpu_s: float | None  # CPU seconds the emulator spent meanwhile
    load_before: float  # 1-minute load average when the command started
    stdout: str = field(repr=False, default="")
    stderr_tail: str = field(repr=False, default="")

    def json(self) -> Any:
        """stdout parsed as JSON (the --json output of amlport or a floor)."""
        return json.loads(self.stdout)

    def summary(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("stdout")
        return d


def cpu_seconds(pid: int | None) -> float | None:
    """utime + stime of a running process (``/proc/<pid>/stat``), None when unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return -1.0


def run(
    label: str,
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    ok_codes: tuple[int, ...] = (0,),
    log_dir: Path | None = None,
    redact: tuple[str, ...] = (),
    net_file: Path | None = None,
    server_pid: int | None = None,
) -> Measured:
    """Run ``argv`` to completion and measure it; raise when the exit code is not in ok_codes.

    ``redact`` lists secrets (keys, connection strings) kept out of the log and of errors.
    ``net_file`` is where ``wrap.py`` (already in ``argv``) writes the bytes received;
    ``server_pid`` is the emulator whose CPU time is charged to this command.
    """
    full_env = dict(os.environ)
    full_env.update(env or {})
    load = load_average()
    if net_file is not None:
        net_file.unlink(missing_ok=True)
    cpu0 = cpu_seconds(server_pid)
    t0 = time.perf_counter()
    usage_file = Path(tempfile.gettempdir()) / f"amlport-bench-usage-{os.getpid()}.json"
    usage_file.unlink(missing_ok=True)
    spawner = [sys.executable, "-S", str(Path(__file__).with_name("spawn.py")), str(usage_file)]
    proc = subprocess.Popen(
        [*spawner, *argv],
        env=full_env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out_b, err_b = _drain(proc)
    proc.wait()
    wall = time.perf_counter() - t0
    usage = json.loads(usage_file.read_text())
    usage_file.unlink()
    cpu1 = cpu_seconds(server_pid)
    received = None
    if net_file is not None and net_file.is_file():
        received = int(net_file.read_text() or 0)
    stdout = out_b.decode("utf-8", "replace")
    stderr = err_b.decode("utf-8", "replace")
    for secret in redact:
        if secret:
            stderr = stderr.replace(secret, "<redacted>")
            stdout = stdout.replace(secret, "<redacted>")
    m = Measured(
        label=label,
        argv=[_redact(a, redact) for a in argv],
        rc=proc.returncode,
        wall_s=wall,
        user_s=usage["user_s"],
        sys_s=usage["sys_s"],
        peak_rss_mb=usage["maxrss_kb"] * 1024 / 1e6,  # Linux: KiB; MB = 10^6 bytes
        received_bytes=received,
        server_cpu_s=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        load_before=load,
        stdout=stdout,
        stderr_tail="\n".join(stderr.splitlines()[-15:]),
    )
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)
        (log_dir / f"{safe}.stdout").write_text(stdout)
        (log_dir / f"{safe}.stderr").write_text(stderr)
    if m.rc not in ok_codes:
        raise RuntimeError(f"{label}: exit {m.rc}\n{m.stderr_tail}")
    return m


def _drain(proc: subprocess.Popen[bytes]) -> tuple[bytes, bytes]:
    """Read stdout and stderr to EOF (both at once, so neither pipe fills up)."""
    import threading

    chunks: dict[str, list[bytes]] = {"out": [], "err": []}

    def pump(name: str, stream: Any) -> None:
        for block in iter(lambda: stream.read(1 << 16), b""):
            chunks[name].append(block)
        stream.close()

    threads = [
        threading.Thread(target=pump, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=pump, args=("err", proc.stderr), daemon=True),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return b"".join(chunks["out"]), b"".join(chunks["err"])


def _redact(arg: str, secrets: tuple[str, ...]) -> str:
    for secret in secrets:
        if secret and secret in arg:
            arg = arg.replace(secret, "<redacted>")
    return arg
