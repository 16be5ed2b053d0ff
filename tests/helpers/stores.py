"""Where a test repository lives, with an admin's view of its stored files.

The repository-store contract (``tests/contract/test_repository_store.py``) runs every test
over each backend of its ``BACKENDS`` list; a backend is a factory returning a ``Place``.
A ``Place`` opens the repository through the product (``Repository.init``/``open`` with its
location and credentials) and reads, damages or removes stored files *around* the product,
as an admin (or an attacker with the key) would. A new store adds a ``Place`` subclass here
and one line to ``BACKENDS``.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from amlport.bundle import Repository
from amlport.model.manifest import format_time
from amlport.storage.opener import StorageAuth

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

    from helpers.azurite import Azurite


def object_key(digest: str) -> str:
    """Where a plain repository stores the object of ``digest``."""
    hexd = digest.split(":", 1)[1]
    return f"objects/sha256/{hexd[:2]}/{hexd}"


@dataclass
class Place:
    """A repository location and the admin view every backend provides."""

    kind: str
    location: str
    auth: StorageAuth | None = None

    def init(self, **kw: object) -> Repository:
        return Repository.init(self.location, auth=self.auth, **kw)  # type: ignore[arg-type]

    def open(self, **kw: object) -> Repository:
        return Repository.open(self.location, auth=self.auth, **kw)  # type: ignore[arg-type]

    def keys(self, folder: str) -> set[str]:
        """Every stored key under ``folder`` (or ``{folder}`` when it is one file)."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        raise NotImplementedError

    def overwrite(self, key: str, data: bytes) -> None:
        """What damage (or an attacker with the account key) does."""
        raise NotImplementedError

    def remove(self, key: str) -> None:
        raise NotImplementedError

    def version(self, key: str) -> str:
        """Changes whenever the stored file is rewritten."""
        raise NotImplementedError


@dataclass
class LocalPlace(Place):
    root: Path = Path()

    def keys(self, folder: str) -> set[str]:
        base = self.root / folder
        if base.is_file():
            return {folder}
        return {p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()}

    def read(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def overwrite(self, key: str, data: bytes) -> None:
        (self.root / key).parent.mkdir(parents=True, exist_ok=True)
        (self.root / key).write_bytes(data)

    def remove(self, key: str) -> None:
        (self.root / key).unlink()

    def version(self, key: str) -> str:
        st = (self.root / key).stat()
        return f"{st.st_ino}-{st.st_mtime_ns}"


@dataclass
class AzurePlace(Place):
    container: ContainerClient | None = None  # admin client (full key)
    prefix: str = ""

    @property
    def admin(self) -> ContainerClient:
        assert self.container is not None
        return self.container

    def keys(self, folder: str) -> set[str]:
        names = self.admin.list_blob_names(name_starts_with=self.prefix + folder)
        return {n[len(self.prefix) :] for n in names}

    def read(self, key: str) -> bytes:
        return self.admin.download_blob(self.prefix + key).readall()

    def overwrite(self, key: str, data: bytes) -> None:
        self.admin.upload_blob(self.prefix + key, data, overwrite=True)

    def remove(self, key: str) -> None:
        self.admin.delete_blob(self.prefix + key)

    def version(self, key: str) -> str:
        return str(self.admin.get_blob_client(self.prefix + key).get_blob_properties().etag)


@dataclass
class FsspecPlace(Place):
    """A repository on an fsspec filesystem (``fsspec+<protocol>://``), seen through fsspec."""

    fs: Any = None
    root: str = ""

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def keys(self, folder: str) -> set[str]:
        base = self._path(folder).rstrip("/")
        if self.fs.isfile(base):
            return {folder}
        return {p[len(self.root) + 1 :] for p in self.fs.find(base)}

    def read(self, key: str) -> bytes:
        return bytes(self.fs.cat_file(self._path(key)))

    def overwrite(self, key: str, data: bytes) -> None:
        self.fs.makedirs(self._path(key).rsplit("/", 1)[0], exist_ok=True)
        self.fs.pipe_file(self._path(key), data)

    def remove(self, key: str) -> None:
        self.fs.rm_file(self._path(key))

    def version(self, key: str) -> str:
        info = self.fs.info(self._path(key))
        return f"{info.get('ino')}-{info.get('mtime') or info.get('created')}"


def fsspec_place(protocol: str, tmp_path: Path) -> FsspecPlace:
    """A repository on fsspec's ``memory`` (a fresh folder of the process-wide memory
    filesystem) or ``file`` filesystem (a fresh local folder)."""
    import fsspec

    fs = fsspec.filesystem(protocol)
    if protocol == "memory":
        root = f"/amlport-{uuid.uuid4().hex[:12]}/repo"
        return FsspecPlace("fsspec-memory", f"fsspec+memory:/{root}", fs=fs, root=root)
    root = (tmp_path / "repo").as_posix()
    return FsspecPlace("fsspec-file", f"fsspec+file://{root}", fs=fs, root=root)


def local_place(tmp_path: Path) -> LocalPlace:
    """A repository in a fresh local folder (not created yet)."""
    return LocalPlace("local", str(tmp_path / "repo"), root=tmp_path / "repo")


def azure_place(azurite: Azurite, prefix: str = "backups/nightly") -> AzurePlace:
    """A repository in a fresh container of the session emulator's ``amldst`` account, under
    ``prefix``; the container name is random, so tests (and xdist workers) never share one."""
    acct = azurite.target
    container = f"repo-{uuid.uuid4().hex[:16]}"
    admin = acct.service_client().get_container_client(container)
    url = f"{acct.url}/{container}" + (f"/{prefix}" if prefix else "")
    auth = StorageAuth(connection_string=acct.connection_string)
    return AzurePlace("azure", url, auth, container=admin, prefix=f"{prefix}/" if prefix else "")


def writable_container_sas(azurite: Azurite, place: AzurePlace) -> str:
    """Create ``place``'s container and return a SAS that may read, write and list it."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    acct = azurite.target
    assert place.container is not None
    place.container.create_container()
    start = datetime.now(timezone.utc) - timedelta(minutes=15)
    return generate_container_sas(
        acct.name, place.container.container_name, account_key=acct.key, start=start,
        expiry=start + timedelta(hours=2),
        permission=ContainerSasPermissions(read=True, add=True, create=True, write=True,
                                           delete=True, list=True),
    )  # fmt: skip


def plant_lock(
    place: Place,
    *,
    host: str,
    age: timedelta,
    exclusive: bool = True,
    pid: int = 4242,
    machine: str | None = None,
) -> str:
    """A lock file as another process (``pid`` on ``host``, on ``machine`` when given) would
    have left it ``age`` ago; returns its key."""
    when = format_time(datetime.now(timezone.utc) - age)
    data: dict[str, object] = {"exclusive": exclusive, "pid": pid, "hostname": host,
                               "created": when, "refreshed": when}  # fmt: skip
    if machine is not None:
        data["machine"] = machine
    place.overwrite("locks/planted.json", json.dumps(data).encode())
    return "locks/planted.json"


def place_of(repo: Repository) -> LocalPlace:
    """The admin view of an already open local repository."""
    return LocalPlace("local", str(repo.path), root=repo.path)


class Pattern(io.RawIOBase):
    """``size`` pseudo-random bytes made on demand (no big buffer in the test itself)."""

    def __init__(self, size: int, seed: int = 7) -> None:
        self.left = size
        self.block = hashlib.sha256(str(seed).encode()).digest() * 2048  # 64 KiB
        self.sha = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        n = self.left if size < 0 else min(size, self.left)
        out = (self.block * (n // len(self.block) + 1))[:n]
        self.left -= n
        self.sha.update(out)
        return out
