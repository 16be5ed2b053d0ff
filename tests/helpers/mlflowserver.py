"""A real ``mlflow server`` for the test session: sqlite backend, local artifact store.

Started as ``python -m mlflow server`` on 127.0.0.1 and a free port, one worker, in a fresh
directory, in its own process group (uvicorn runs as a child) so that stopping it stops every
process it started: SIGTERM to the group, SIGKILL after a grace period. Telemetry and the
server's job runner (huey consumers, not needed for tracking and registry) are off.

Nothing here is a pytest fixture: ``tests/integration/conftest.py`` wraps ``start_mlflow_server``
in the session fixture ``mlflow_server``.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers.azurite import free_port as free_port

START_TIMEOUT_S = 180.0  # ~10 s here on 2 cores; a loaded CI runner is slower
STOP_GRACE_S = 10.0
SERVER_ENV = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "PYTHONUNBUFFERED": "1",
}


class MlflowUnavailable(RuntimeError):
    """mlflow (with its server) is not installed, or the server did not come up."""


def ci_requires_mlflow() -> bool:
    """In CI a missing mlflow is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_mlflow() -> None:
    """Raise ``MlflowUnavailable`` unless ``mlflow server`` can run in this interpreter."""
    for module in ("mlflow", "mlflow.server", "uvicorn", "sqlalchemy"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MlflowUnavailable(
                f"Python module {module!r} is not importable (pip install 'amlport[mlflow]')"
            )


@dataclass
class MlflowServer:
    process: subprocess.Popen[bytes]
    uri: str  # http://127.0.0.1:<port>
    root: Path  # mlflow.db, artifacts/, server.log

    @property
    def log(self) -> Path:
        return self.root / "server.log"

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            with urllib.request.urlopen(f"{self.uri}/health", timeout=timeout) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Terminate the whole process group; kill it if it does not go in time."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=grace)
        _signal_group(self.process.pid, signal.SIGKILL)  # stragglers of the group, if any
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=grace)

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)  # the server is its own group leader (start_new_session)


def start_mlflow_server(root: Path, *, timeout: float = START_TIMEOUT_S) -> MlflowServer:
    """Start a server in ``root`` and wait for ``/health``; ``MlflowUnavailable`` if it fails."""
    root.mkdir(parents=True, exist_ok=True)
    for _attempt in range(2):  # the free port may be taken between probing and binding
        server = _spawn(root, free_port())
        atexit.register(server.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and server.process.poll() is None:
            if server.healthy():
                return server
            time.sleep(0.25)
        server.stop()
        if "address already in use" not in server.log_tail(40).lower():
            break
    raise MlflowUnavailable(
        f"mlflow server did not answer /health within {timeout:.0f} s "
        f"(exit code {server.process.poll()}); last lines of {server.log}:\n{server.log_tail()}"
    )


def _spawn(root: Path, port: int) -> MlflowServer:
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", f"sqlite:///{(root / 'mlflow.db').resolve()}",
        "--artifacts-destination", str((root / "artifacts").resolve()),
        "--host", "127.0.0.1",
        "--port", str(port),
        "--workers", "1",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(SERVER_ENV)
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen(
            cmd,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    return MlflowServer(process, f"http://127.0.0.1:{port}", root)
