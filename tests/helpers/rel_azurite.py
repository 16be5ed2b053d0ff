"""A private Azurite for the reliability suite: stopped and restarted by the tests (same port,
same ``--location``, same account keys), with ``--debug`` so that every request that reached
the emulator can be checked (method and URL).

The shared session emulator (``tests/conftest.py``) is never stopped here: tests that take
storage away from amlport use one of these.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from helpers import azurite as az

START_TIMEOUT_S = 30.0
_REQUEST = re.compile(r"RequestMethod=(?P<method>[A-Z]+) RequestURL=(?P<url>\S+)")


@dataclass
class PrivateAzurite:
    """One emulator process at a time on a fixed port and location."""

    location: Path
    accounts: dict[str, az.AzuriteAccount]
    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    starts: int = 0

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def debug_log(self) -> Path:
        return self.location / "debug.log"

    def account(self, name: str) -> az.AzuriteAccount:
        return self.accounts[name]

    def start(self) -> None:
        """Start (or restart) on the same port and location; data written before is kept."""
        if self.running:
            return
        node, script = az.find_azurite()
        keys = ";".join(f"{a.name}:{a.key}" for a in self.accounts.values())
        env = {**os.environ, "AZURITE_ACCOUNTS": keys}
        args = [
            node, str(script),
            "--blobHost", self.host, "--blobPort", str(self.port),
            "--location", str(self.location),
            "--silent", "--loose", "--skipApiVersionCheck", "--disableTelemetry",
            "--debug", str(self.debug_log),
        ]  # fmt: skip
        self.starts += 1
        with (self.location / f"azurite-{self.starts}.log").open("wb") as log:
            self.process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Azurite exited at start (code {self.process.returncode})")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("Azurite did not start listening in time")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Azurite saves its metadata and closes), then wait for the port to free."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)

    def requests(self) -> list[tuple[str, str]]:
        """(method, URL) of every request the emulator received, in order."""
        if not self.debug_log.is_file():
            return []
        text = self.debug_log.read_text(encoding="utf-8", errors="replace")
        return [(m["method"], m["url"]) for m in _REQUEST.finditer(text)]

    def mark(self) -> int:
        """A position in the request log: ``requests_since(mark)`` reads what came after.

        The emulator writes its log asynchronously, so a marker request is sent and waited
        for: everything received before it is in the log by then.
        """
        return self._marker()

    def requests_since(self, mark: int) -> list[tuple[str, str]]:
        end = self._marker()
        return self.requests()[mark + 1 : end]

    def _marker(self, timeout: float = 15.0) -> int:
        token = f"amlport-mark-{uuid.uuid4().hex}"
        account = next(iter(self.accounts))
        with contextlib.suppress(urllib.error.URLError):
            urllib.request.urlopen(f"{self.endpoint}/{account}/{token}", timeout=5).close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for i, (_, url) in enumerate(self.requests()):
                if token in url:
                    return i
            time.sleep(0.05)
        raise AssertionError("the emulator did not log the marker request")


def start_private(location: Path, account_names: list[str]) -> PrivateAzurite:
    location.mkdir(parents=True, exist_ok=True)
    accounts = {n: az.AzuriteAccount(n, az.new_account_key(), "") for n in account_names}
    emulator = PrivateAzurite(location, {}, az.free_port())
    emulator.accounts = {
        n: az.AzuriteAccount(n, a.key, emulator.endpoint) for n, a in accounts.items()
    }
    emulator.start()
    return emulator
