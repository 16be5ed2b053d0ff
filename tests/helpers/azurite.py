"""Azurite for the test session: start/stop the emulator, load workspaces, mint SAS tokens.

The emulator comes from the repository's pinned ``package.json``/``package-lock.json``
(``npm ci``). One process serves several accounts on one port, path-style
(``http://127.0.0.1:<port>/<account>``); each session gets a fresh ``--location`` because
Azurite slows down as it fills.

Nothing here is a pytest fixture (see ``tests/conftest.py``): these helpers are plain
functions so that other suites (import, reliability, benchmarks) can reuse them.
"""

from __future__ import annotations

import atexit
import base64
import contextlib
import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml
from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import (
    AccountSasPermissions,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = REPO_ROOT / "node_modules" / ".bin" / "azurite-blob"
FIXTURE_WORKSPACES = REPO_ROOT / "fixtures" / "workspaces"
DESCRIPTOR_FILE = "workspace.yaml"

SOURCE_ACCOUNT = "amlsrc"
TARGET_ACCOUNT = "amldst"
_ACCOUNT_NAME = re.compile(r"^[a-z0-9]{3,24}$")
START_TIMEOUT_S = 30.0

# Blob names a listing must give back exactly (the listing tests of the SDK path and of
# amlport's own client, storage/azure_list.py): markup, dots, controls the service
# answers Encoded="true", bidi, query characters, 1,024 characters.
HOSTILE_BLOB_NAMES = [
    "x[/]y.txt",
    "[bold]red[/bold]",
    "a..b/..c/d",
    "a//b.txt",
    "a/..b/c..",  # (a whole ``..`` or ``.`` segment: the SDK's URL handling cannot send it)
    "tab\there",
    "cr\rlf\nx",
    "del\x7fx",
    "c1\x85\x9b",
    "bidi\u202eevil",
    "<&>'\".xml",
    "q?x=1&y#z%2F%",
    "plus+space name",
    "é/ü/ß",
    "L" * 1024,
    "d/" + "n" * 1021,
]


class AzuriteUnavailable(RuntimeError):
    """The emulator is not installed (``npm ci`` was not run) or node is missing."""


@dataclass(frozen=True)
class AzuriteAccount:
    """One emulated storage account. ``key`` is a secret: never print it in a test id."""

    name: str
    key: str
    endpoint: str  # http://127.0.0.1:<port>

    @property
    def url(self) -> str:
        """The account URL, path-style as Azurite serves it."""
        return f"{self.endpoint}/{self.name}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.name};"
            f"AccountKey={self.key};BlobEndpoint={self.url};"
        )

    def service_client(self) -> BlobServiceClient:
        """An admin client (full key): for loading data and checking what a test did."""
        return BlobServiceClient.from_connection_string(self.connection_string)

    def __repr__(self) -> str:  # keep the key out of pytest output
        return f"AzuriteAccount({self.name!r}, {self.url!r})"


@dataclass
class Azurite:
    """A running emulator. ``accounts`` maps account name to its credentials."""

    host: str
    port: int
    location: Path
    process: subprocess.Popen[bytes]
    accounts: dict[str, AzuriteAccount] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def source(self) -> AzuriteAccount:
        """The account tests read from (empty at start; tests load what they need)."""
        return self.accounts[SOURCE_ACCOUNT]

    @property
    def target(self) -> AzuriteAccount:
        """The account import/restore tests write to."""
        return self.accounts[TARGET_ACCOUNT]

    def account(self, name: str) -> AzuriteAccount:
        return self.accounts[name]

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the node process (SIGTERM), then kill it if it does not exit."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=timeout)

    def log_tail(self, lines: int = 20) -> str:
        log = self.location / "azurite.log"
        if not log.is_file():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


# --- starting and stopping -------------------------------------------------------------------


def ci_requires_azurite() -> bool:
    """In CI a missing emulator is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_azurite() -> None:
    """Skip the calling test or fixture when the emulator is not installed (fail it in CI)."""
    import pytest  # here, not at the top: bench/ imports this module without a test session

    try:
        find_azurite()
    except AzuriteUnavailable as exc:
        if ci_requires_azurite():
            pytest.fail(f"Azurite is required in CI: {exc}", pytrace=False)
        pytest.skip(f"Azurite not available: {exc}")


def find_azurite(binary: Path = AZURITE_BIN) -> tuple[str, Path]:
    """(node executable, azurite-blob script) or :class:`AzuriteUnavailable`."""
    if not binary.exists():
        raise AzuriteUnavailable(f"{binary} is missing: run `npm ci` in {REPO_ROOT}")
    node = shutil.which("node")
    if node is None:
        raise AzuriteUnavailable("node is not on PATH: install Node.js to run Azurite")
    return node, binary.resolve()


def new_account_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_azurite(
    location: Path,
    account_names: Iterable[str] = (SOURCE_ACCOUNT, TARGET_ACCOUNT),
    *,
    host: str = "127.0.0.1",
    binary: Path = AZURITE_BIN,
    attempts: int = 3,
) -> Azurite:
    """Start ``azurite-blob`` serving ``account_names`` on a free port under ``location``.

    The port is picked by binding to 0 and releasing it, so another process can take it in
    between: a start that dies early is retried on a new port.
    """
    node, script = find_azurite(binary)
    names = list(dict.fromkeys(account_names))
    last_error = ""
    for attempt in range(attempts):
        port = free_port(host)
        loc = location / f"run{attempt}"
        loc.mkdir(parents=True, exist_ok=False)
        accounts = {n: AzuriteAccount(n, new_account_key(), f"http://{host}:{port}") for n in names}
        process = _spawn(node, script, host, port, loc, accounts.values())
        azurite = Azurite(host, port, loc, process, accounts)
        if _wait_until_listening(azurite):
            atexit.register(azurite.stop)
            return azurite
        azurite.stop()
        last_error = azurite.log_tail()
    raise RuntimeError(f"Azurite did not start after {attempts} attempts:\n{last_error}")


def _spawn(
    node: str, script: Path, host: str, port: int, loc: Path, accounts: Iterable[AzuriteAccount]
) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["AZURITE_ACCOUNTS"] = ";".join(f"{a.name}:{a.key}" for a in accounts)
    args = [
        node,
        str(script),
        "--blobHost", host,
        "--blobPort", str(port),
        "--location", str(loc),
        "--silent",
        "--loose",
        "--skipApiVersionCheck",
        "--disableTelemetry",
    ]  # fmt: skip
    log = (loc / "azurite.log").open("wb")
    try:
        # node runs the script itself, so Popen.pid is the node PID we must stop.
        return subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
    finally:
        log.close()


def _wait_until_listening(azurite: Azurite) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if azurite.process.poll() is not None:
            return False
        try:
            socket.create_connection((azurite.host, azurite.port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
        else:
            return True
    return False


# --- fixture workspaces ----------------------------------------------------------------------


def fixture_workspace_dirs(root: Path = FIXTURE_WORKSPACES) -> list[Path]:
    """Every fixture workspace (a folder holding ``workspace.yaml``), sorted by name."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if (p / DESCRIPTOR_FILE).is_file())


def workspace_account_names(dirs: Iterable[Path], taken: Iterable[str] = ()) -> dict[str, str]:
    """Map fixture folder name to the Azurite account that holds it.

    Each workspace gets its own account, because every classic workspace has a container
    named ``azureml`` and they would collide in one account. The account is the one named in
    ``workspace.yaml`` when it is a valid, unused account name (so discovery finds the same
    account as the descriptor); otherwise one derived from the folder name.
    """
    used = set(taken)
    out: dict[str, str] = {}
    for d in dirs:
        name = _descriptor_account(d)
        if not name or not _ACCOUNT_NAME.match(name) or name in used:
            stem = re.sub(r"[^a-z0-9]", "", d.name.lower())[:18] or "ws"
            name = f"fx{stem}"
            n = 1
            while name in used or len(name) < 3:
                name, n = f"fx{stem[:16]}{n}", n + 1
        used.add(name)
        out[d.name] = name
    return out


def _descriptor_account(workspace_dir: Path) -> str | None:
    try:
        data = yaml.safe_load((workspace_dir / DESCRIPTOR_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    account = data.get("account") if isinstance(data, dict) else None
    return str(account) if account else None


def local_files(local_dir: Path) -> Iterator[tuple[str, str, Path]]:
    """(container, blob name, path) for every regular file of a local workspace copy.

    Mirrors ``LocalSource``: one folder per container, symlinks are not blobs, and the
    top-level ``workspace.yaml`` is the descriptor, not data.
    """
    for container_dir in sorted(p for p in local_dir.iterdir() if p.is_dir()):
        for dirpath, dirnames, filenames in os.walk(container_dir):
            dirnames.sort()
            for fname in sorted(filenames):
                path = Path(dirpath) / fname
                if path.is_symlink() or not path.is_file():
                    continue
                yield container_dir.name, path.relative_to(container_dir).as_posix(), path


@dataclass(frozen=True)
class LoadedWorkspace:
    """A fixture workspace copied into its own Azurite account."""

    name: str  # the fixture folder name, e.g. "designer-autoprice"
    local_dir: Path  # fixtures/workspaces/<name>: the local copy to compare with
    account: AzuriteAccount  # holds exactly this workspace's containers
    containers: tuple[str, ...]  # the containers created (one per sub-folder)

    @property
    def descriptor_file(self) -> Path:
        return self.local_dir / DESCRIPTOR_FILE

    @property
    def url(self) -> str:
        """The account URL (no credential): discovery finds the containers."""
        return self.account.url


def load_workspaces(
    emulator: Azurite, dirs: Iterable[Path], account_names: dict[str, str]
) -> dict[str, LoadedWorkspace]:
    """Upload each workspace folder into its account (``account_names``: folder -> account)."""
    loaded: dict[str, LoadedWorkspace] = {}
    for local_dir in dirs:
        account = emulator.account(account_names[local_dir.name])
        containers = upload_workspace(account.connection_string, local_dir)
        loaded[local_dir.name] = LoadedWorkspace(
            local_dir.name, local_dir, account, tuple(containers)
        )
    return loaded


def upload_workspace(conn_str: str, local_dir: Path, *, workers: int = 8) -> list[str]:
    """Create one container per sub-folder of ``local_dir`` and upload its files.

    Returns the container names. Uploads run in parallel; small files go up in one shot so
    that the service computes their Content-MD5, as it does for real single-put uploads.
    """
    service = BlobServiceClient.from_connection_string(conn_str, max_single_put_size=64 << 20)
    containers = sorted(p.name for p in local_dir.iterdir() if p.is_dir())
    clients: dict[str, ContainerClient] = {}
    for name in containers:
        clients[name] = service.get_container_client(name)
        with contextlib.suppress(ResourceExistsError):
            clients[name].create_container()

    def put(item: tuple[str, str, Path]) -> None:
        container, blob, path = item
        with path.open("rb") as fh:
            clients[container].upload_blob(blob, fh, overwrite=True)

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="azurite-load") as pool:
        for _ in pool.map(put, local_files(local_dir)):
            pass
    service.close()
    return containers


def upload_renamed_workspace(
    account: AzuriteAccount, workspace: Path, root: Path, prefix: str
) -> tuple[Path, str, str]:
    """Copy a fixture workspace to ``root/ws`` with its two containers renamed
    ``<prefix>-store`` and ``<prefix>-runs`` (unique per test), upload it into ``account`` and
    write the matching descriptor to ``root/workspace.yaml``: (descriptor, store, runs)."""
    store, runs = f"{prefix}-store", f"{prefix}-runs"
    local = root / "ws"
    shutil.copytree(workspace, local)
    desc = yaml.safe_load((local / DESCRIPTOR_FILE).read_text(encoding="utf-8"))
    (local / desc["containers"]["blobstore"]).rename(local / store)
    (local / desc["containers"]["artifacts"]).rename(local / runs)
    (local / DESCRIPTOR_FILE).unlink()
    desc["account"] = account.name
    desc["containers"] = {"blobstore": store, "artifacts": runs}
    desc["datastores"] = {"workspaceblobstore": store, "workspaceartifactstore": runs}
    descriptor = root / DESCRIPTOR_FILE
    descriptor.write_text(yaml.safe_dump(desc), encoding="utf-8")
    assert upload_workspace(account.connection_string, local) == sorted([store, runs])
    return descriptor, store, runs


# --- SAS tokens ------------------------------------------------------------------------------


def _window(expires_in: timedelta) -> tuple[datetime, datetime]:
    now = datetime.now(timezone.utc)
    # A start in the past tolerates clock skew; an expired token has its expiry in the past.
    start = min(now, now + expires_in) - timedelta(minutes=15)
    return start, now + expires_in


def read_list_account_sas(
    account: AzuriteAccount, *, expires_in: timedelta = timedelta(hours=2)
) -> str:
    """An account SAS allowing only read + list (blob service; service/container/object)."""
    start, expiry = _window(expires_in)
    return generate_account_sas(
        account.name,
        account.key,
        resource_types=ResourceTypes(service=True, container=True, object=True),
        permission=AccountSasPermissions(read=True, list=True),
        expiry=expiry,
        start=start,
    )


def read_list_container_sas(
    account: AzuriteAccount, container: str, *, expires_in: timedelta = timedelta(hours=2)
) -> str:
    """A service SAS for one container allowing only read + list."""
    start, expiry = _window(expires_in)
    return generate_container_sas(
        account.name,
        container,
        account_key=account.key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=expiry,
        start=start,
    )
