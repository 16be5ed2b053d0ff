"""The repository contract against both stores: a local folder and an Azure container.

Each contract test runs twice (``place`` is a fresh local folder, or a fresh container of the
``amldst`` Azurite account with the repository under a prefix). Azure-only tests cover what has
no local counterpart: write-once enforced by the service, bounded memory for large objects,
URLs and credentials, and the CLI end to end (``amlport backup --repo <container URL>``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
import tracemalloc
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import azurite as az
import pytest
from azure.storage.blob import ContainerClient, ContainerSasPermissions, generate_container_sas
from encrypted_mode import ENCRYPTED, sha
from test_backup_support import MAPS, WS, cli

from amlport.backup import BackupRequest, run_backup
from amlport.bundle import Repository, RepositoryLocked
from amlport.bundle.azure_store import AzureStore
from amlport.bundle.verification import CORRUPT_OBJECT, MISSING_OBJECT
from amlport.errors import AccessDenied, IntegrityError, SourceNotFound, UsageError
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, format_time
from amlport.storage.local import LocalSource
from amlport.storage.opener import StorageAuth

pytestmark = pytest.mark.azurite

MIB = 1 << 20
SOURCE = {
    "account": "azmlautoprice5241",
    "endpoint": "core.windows.net",
    "workspace": "autoprice-dev",
    "containers": {"blobstore": "azureml-blobstore-bfe051f9", "artifacts": "azureml"},
    "datastores": {"workspaceblobstore": "azureml-blobstore-bfe051f9"},
}
plain_only = pytest.mark.skipif(
    ENCRYPTED, reason="about the stored bytes of an unencrypted repository"
)
T0 = datetime(2024, 3, 1, 2, 0, tzinfo=timezone.utc)


def object_key(digest: str) -> str:
    hexd = digest.split(":", 1)[1]
    return f"objects/sha256/{hexd[:2]}/{hexd}"


@dataclass
class Place:
    """Where a test repository lives, with an admin's view of its files."""

    kind: str
    location: str
    auth: StorageAuth | None = None
    root: Path | None = None  # local
    container: ContainerClient | None = None  # azure (admin client, full key)
    prefix: str = ""

    def init(self, **kw: object) -> Repository:
        return Repository.init(self.location, auth=self.auth, **kw)  # type: ignore[arg-type]

    def open(self, **kw: object) -> Repository:
        return Repository.open(self.location, auth=self.auth, **kw)  # type: ignore[arg-type]

    def keys(self, folder: str) -> set[str]:
        if self.root is not None:
            base = self.root / folder
            if base.is_file():
                return {folder}
            return {p.relative_to(self.root).as_posix() for p in base.rglob("*") if p.is_file()}
        assert self.container is not None
        names = self.container.list_blob_names(name_starts_with=self.prefix + folder)
        return {n[len(self.prefix) :] for n in names}

    def read(self, key: str) -> bytes:
        if self.root is not None:
            return (self.root / key).read_bytes()
        assert self.container is not None
        return self.container.download_blob(self.prefix + key).readall()

    def overwrite(self, key: str, data: bytes) -> None:
        """What damage (or an attacker with the account key) does."""
        if self.root is not None:
            (self.root / key).parent.mkdir(parents=True, exist_ok=True)
            (self.root / key).write_bytes(data)
            return
        assert self.container is not None
        self.container.upload_blob(self.prefix + key, data, overwrite=True)

    def remove(self, key: str) -> None:
        if self.root is not None:
            (self.root / key).unlink()
        else:
            assert self.container is not None
            self.container.delete_blob(self.prefix + key)

    def version(self, key: str) -> str:
        if self.root is not None:
            st = (self.root / key).stat()
            return f"{st.st_ino}-{st.st_mtime_ns}"
        assert self.container is not None
        return str(self.container.get_blob_client(self.prefix + key).get_blob_properties().etag)


def azure_place(azurite: az.Azurite, prefix: str = "backups/nightly") -> Place:
    acct = azurite.target
    container = f"repo-{uuid.uuid4().hex[:16]}"
    admin = acct.service_client().get_container_client(container)
    url = f"{acct.url}/{container}" + (f"/{prefix}" if prefix else "")
    auth = StorageAuth(connection_string=acct.connection_string)
    return Place("azure", url, auth, container=admin, prefix=f"{prefix}/" if prefix else "")


@pytest.fixture(params=["local", "azure"])
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    if request.param == "local":
        return Place("local", str(tmp_path / "repo"), root=tmp_path / "repo")
    return azure_place(request.getfixturevalue("azurite"))


def manifest(repo: Repository, contents: dict[str, bytes], *, created: str = "") -> Manifest:
    files = []
    for path, data in contents.items():
        files.append(FileEntry(path, repo.put_bytes(data), len(data), original={"path": path}))
    assets = [AssetEntry("model", "m", "model:m", files=[files[0].path])] if files else []
    return Manifest(source=dict(SOURCE), created=created, assets=assets, files=files)


def snapshot(repo: Repository, contents: dict[str, bytes], **kw: str) -> str:
    with repo.lock(exclusive=False):
        return repo.write_snapshot(manifest(repo, contents, **kw))


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


# --- the contract, on both stores ------------------------------------------------------------


def test_init_open_and_the_layout(place: Place) -> None:
    with pytest.raises(SourceNotFound, match="no repository"):
        place.open()
    repo = place.init()
    assert place.keys("config.json") == {"config.json"}
    config = json.loads(place.read("config.json"))
    assert config["format"] == "amlport.repository" and config["id"] == repo.id
    assert place.open().id == repo.id
    assert Repository.open_or_init(place.location, auth=place.auth).id == repo.id
    with pytest.raises(UsageError, match="already"):
        place.init()
    assert repo.is_local is (place.kind == "local")
    assert place.location.rstrip("/").endswith(repo.location.rsplit("/", 2)[-1])


@plain_only
def test_put_get_dedupe_and_write_once(place: Place) -> None:
    repo = place.init()
    digest = repo.put_bytes(b"hello")
    assert digest == sha(b"hello") and repo.has_object(digest)
    assert place.keys("objects/") == {object_key(digest)}
    before = place.version(object_key(digest))
    assert repo.put_bytes(b"hello") == digest
    assert repo.add_bytes(b"hello") == (digest, False)  # present: not stored again
    assert repo.add_bytes(b"hello, new") == (sha(b"hello, new"), True)
    assert repo.put_stream(io.BytesIO(b"hello")) == (digest, 5)
    assert place.version(object_key(digest)) == before  # never rewritten
    assert repo.get_bytes(digest) == b"hello"
    assert repo.object_size(digest) == 5
    with repo.open_object(digest) as fh:
        assert fh.read() == b"hello"
    big = Pattern(9 * MIB + 3)  # several blocks
    big_digest, size = repo.put_stream(big)
    assert (big_digest, size) == (f"sha256:{big.sha.hexdigest()}", 9 * MIB + 3)
    assert repo.put_stream(Pattern(9 * MIB + 3)) == (big_digest, size)
    assert len(place.keys("objects/")) == 3
    with repo.open_object(big_digest) as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == big.sha.hexdigest()
    with pytest.raises(IntegrityError, match="MD5 mismatch"):
        repo.put_stream(io.BytesIO(b"other"), expected_md5=hashlib.md5(b"x").hexdigest())
    with pytest.raises(IntegrityError, match="corrupt"):
        repo.put_stream(Pattern(5 * MIB), expected_digest=sha(b"something else"))
    assert not repo.has_object(sha(b"other")) and len(place.keys("objects/")) == 3
    with pytest.raises(IntegrityError, match="missing"):
        repo.get_bytes(sha(b"never stored"))


def test_a_known_digest_is_streamed_and_checked(place: Place) -> None:
    repo = place.init()
    data = os.urandom(6 * MIB + 11)
    assert repo.objects.put_stream(io.BytesIO(data), expected_digest=sha(data)) == (
        sha(data),
        len(data),
    )
    assert repo.get_bytes(sha(data)) == data


def test_a_stream_failing_midway_stores_nothing(place: Place) -> None:
    repo = place.init()

    class Dropping(Pattern):
        def read(self, size: int = -1) -> bytes:
            if self.left < 3 * MIB:
                raise ConnectionResetError("source dropped")
            return super().read(size)

    for hint in (None, sha(b"whatever")):
        with pytest.raises(ConnectionResetError):
            repo.objects.put_stream(Dropping(10 * MIB), expected_digest=hint)
    assert place.keys("objects/") == set()


@pytest.mark.parametrize("version", [1, 2], ids=["format1", "format2"])
def test_snapshots_write_list_load_and_prefix(place: Place, version: int) -> None:
    repo = place.init(version=version)
    first = snapshot(repo, {"files/a": b"a", "files/b": b"b"}, created=format_time(T0))
    later = format_time(T0 + timedelta(days=1))
    second = snapshot(repo, {"files/a": b"a", "files/c": b"c"}, created=later)
    ext = ".json" if version == 1 else ""  # format 2: a root per snapshot, pieces in objects/
    assert place.keys("snapshots/") == {f"snapshots/{first}{ext}", f"snapshots/{second}{ext}"}
    assert [s.id for s in repo.list_snapshots()] == [first, second]
    reader = place.open()
    assert reader.load_snapshot(second[:10]).snapshot_id == second
    assert reader.read_file(reader.load_snapshot(first), "files/b") == b"b"
    assert reader.latest_snapshot(repo.list_snapshots()[0].source_key).snapshot_id == second
    with pytest.raises(UsageError, match="no snapshot"):
        reader.load_snapshot("ffff")
    m = manifest(repo, {"files/x": b"x"})
    m.files.append(FileEntry("files/ghost", sha(b"not stored"), 10))
    with pytest.raises(IntegrityError, match="not stored"), repo.lock(exclusive=False):
        repo.write_snapshot(m)
    assert len(reader.list_snapshots()) == 2
    # A snapshot is write-once: its blob is never replaced by a second write.
    key = f"snapshots/{first}{ext}"
    before = place.version(key)
    if version == 1:
        assert repo.snapshots.import_raw(first, place.read(key)) is False
    else:
        assert repo.store.create(key, place.read(key)) is False
        assert repo.snapshots.write(repo.load_snapshot(first)) == first  # same root, same name
    assert place.version(key) == before


def test_a_snapshot_of_many_files_checks_presence_in_bulk(place: Place) -> None:
    """Past LISTING_THRESHOLD files a remote store answers with one listing, not a request
    per file; the answer must be the same."""
    repo = place.init()
    contents = {f"files/f{i:04d}": f"content {i}".encode() for i in range(300)}
    m = manifest(repo, contents)
    place.remove(object_key(sha(b"content 7")))
    with pytest.raises(IntegrityError, match=r"1 file.*files/f0007"), repo.lock(exclusive=False):
        repo.write_snapshot(m)
    repo.put_bytes(b"content 7")
    with repo.lock(exclusive=False):
        sid = repo.write_snapshot(m)
    has = repo.objects.presence()
    assert has(sha(b"content 299")) and not has(sha(b"never stored"))
    assert has(repo.put_bytes(b"stored after the listing"))
    assert place.open().verify(sid).objects_checked == 300


@plain_only
def test_verify_detects_a_corrupted_and_a_missing_object(place: Place) -> None:
    repo = place.init()
    sid = snapshot(repo, {"files/weights": b"w" * 1000, "files/deps": b"d" * 100})
    assert repo.verify().ok
    place.overwrite(object_key(sha(b"w" * 1000)), b"x" * 1000)  # same size, other bytes
    place.remove(object_key(sha(b"d" * 100)))
    report = place.open().verify()
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == sorted([CORRUPT_OBJECT, MISSING_OBJECT])
    assert all(p.paths and p.paths[0].startswith(sid[:16]) for p in report.problems)
    with pytest.raises(IntegrityError, match="corrupt"):
        repo.get_bytes(sha(b"w" * 1000))


@plain_only
def test_forget_and_prune_free_exactly_the_unreferenced_objects(place: Place) -> None:
    repo = place.init()
    days = [format_time(T0 + timedelta(days=d)) for d in range(4)]
    for day, text in zip(days, ("one", "two", "three", "four"), strict=True):
        snapshot(repo, {"files/shared": b"shared", f"files/{text}": text.encode()}, created=day)
    repo.put_bytes(b"orphan of a crashed run")
    pieces_of = {i.id: repo.snapshots.pieces(i.id)[1] for i in repo.list_snapshots()}
    plan = repo.forget(keep_last=2)
    assert len(plan.keep) == 2 and len(plan.remove) == 2
    live: set[str] = set()  # data objects
    live_pieces: set[str] = set()  # format 2: the kept snapshots' list nodes and chunks
    for info in repo.list_snapshots():
        data, pieces = repo.snapshots.pieces(info.id)
        assert data == repo.load_snapshot(info.id).digests()
        live |= data
        live_pieces |= pieces
    assert live_pieces and not live & live_pieces
    # The forgotten snapshots' pieces that no kept snapshot shares go with them.
    gone_pieces = set().union(*(pieces_of[i.id] for i in plan.remove)) - live_pieces
    assert gone_pieces  # each forgotten snapshot had a files chunk of its own
    piece_bytes = sum(len(place.read(object_key(d))) for d in gone_pieces)
    before = {f"sha256:{k.rsplit('/', 1)[1]}" for k in place.keys("objects/")}
    dry = repo.prune(dry_run=True)
    report = repo.prune()
    assert sorted(report.removed) == sorted(before - live - live_pieces) == sorted(dry.removed)
    removed_data = set(report.removed) - gone_pieces
    assert removed_data == {sha(b"one"), sha(b"two"), sha(b"orphan of a crashed run")}
    assert gone_pieces <= set(report.removed)
    freed = len(b"one" + b"two" + b"orphan of a crashed run")
    assert report.bytes_freed == dry.bytes_freed == freed + piece_bytes
    after = {f"sha256:{k.rsplit('/', 1)[1]}" for k in place.keys("objects/")}
    assert after == live | live_pieces
    assert repo.verify().ok


def plant_lock(place: Place, *, host: str, age: timedelta, exclusive: bool = True) -> str:
    when = format_time(datetime.now(timezone.utc) - age)
    data = {"exclusive": exclusive, "pid": 4242, "hostname": host, "created": when,
            "refreshed": when}  # fmt: skip
    place.overwrite("locks/planted.json", json.dumps(data).encode())
    return "locks/planted.json"


def test_lock_conflict_and_stale_takeover(place: Place) -> None:
    warnings: list[str] = []
    repo = place.init(on_warning=warnings.append)
    other = place.open()
    with repo.lock(exclusive=False):
        with other.lock(exclusive=False):
            assert len(place.keys("locks/")) == 2  # readers and writers share
        with pytest.raises(RepositoryLocked, match="shared lock") as err, other.lock():
            pass
    assert repo.location in str(err.value)
    assert place.keys("locks/") == set()  # released, and the failed attempt left nothing
    plant_lock(place, host="backup-vm-7", age=timedelta(minutes=5))
    with pytest.raises(RepositoryLocked, match="backup-vm-7"), repo.lock(exclusive=False):
        pass
    plant_lock(place, host="backup-vm-7", age=timedelta(hours=2))
    with repo.lock(exclusive=True):
        assert "locks/planted.json" not in place.keys("locks/")
    assert "stale" in warnings[0] and "backup-vm-7" in warnings[0]
    assert repo.locks() == []


def test_a_lock_taken_over_as_stale_stops_the_writer(place: Place) -> None:
    warnings: list[str] = []
    repo = place.init(on_warning=warnings.append)
    m = manifest(repo, {"files/a": b"a"})
    with repo.lock(exclusive=False) as held:
        place.remove(held.key)  # what another process does to a lock it judged stale
        held.refresh()
        assert held.lost and "removed by another process" in warnings[-1]
        assert held.key not in place.keys("locks/")  # the refresh did not bring it back
        with pytest.raises(RepositoryLocked, match="lost"):
            repo.write_snapshot(m)
    assert repo.list_snapshots() == []


def test_a_long_run_keeps_its_lock_fresh(place: Place) -> None:
    holder = place.init()
    other = place.open()
    short = timedelta(seconds=1)
    with holder.lock(exclusive=False, stale_after=short):
        time.sleep(2.5)  # several stale periods: only the background refresh saves it
        with pytest.raises(RepositoryLocked), other.lock(exclusive=True, stale_after=short):
            pass


def test_concurrent_writers_and_a_reader(place: Place) -> None:
    """Writers race on the same object names (incl. a multi-block one); a reader sees only
    complete snapshots all along."""
    place.init()
    errors: list[BaseException] = []
    done = threading.Event()
    shared_big = os.urandom(5 * MIB)

    def write(worker: int) -> None:
        try:
            with place.open() as repo, repo.lock(exclusive=False):
                for i in range(4):
                    repo.put_stream(io.BytesIO(shared_big))
                    contents = {"files/shared": b"common", "files/mine": f"{worker}-{i}".encode()}
                    repo.write_snapshot(manifest(repo, contents))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        try:
            with place.open() as reader:
                while not done.is_set():
                    for info in reader.list_snapshots():
                        m = reader.load_snapshot(info.id)
                        assert reader.objects.missing(f.digest for f in m.files) == []
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
    reader = threading.Thread(target=read)
    reader.start()
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    reader.join()
    assert errors == []
    repo = place.open()
    assert len(repo.list_snapshots()) == 12
    assert repo.verify().ok and repo.locks() == []
    assert repo.get_bytes(sha(shared_big)) == shared_big


@plain_only
def test_pack_and_unpack_across_stores(place: Place, tmp_path: Path) -> None:
    repo = place.init()
    big = os.urandom(5 * MIB + 1)
    first = snapshot(repo, {"files/a": b"a", "files/big": big})
    snapshot(repo, {"files/other": b"not in the pack"})
    # Format 2: the pack carries the snapshot's pieces too (counted apart from its data).
    data, pieces = repo.snapshots.pieces(first)
    assert data == {sha(b"a"), sha(big)} and pieces and not data & pieces
    piece_bytes = sum(len(place.read(object_key(d))) for d in pieces)
    report = repo.pack(first[:12], tmp_path / "out" / "first.tar.gz")
    assert report.objects == 2 and report.pieces == len(pieces)
    assert report.bytes == 1 + len(big) + piece_bytes
    local = tmp_path / "unpacked"
    unpacked = Repository.unpack(tmp_path / "out" / "first.tar.gz", local)
    assert unpacked.snapshots == [first] and unpacked.objects_added == 2 + len(pieces)
    assert unpacked.bytes_added == 1 + len(big) + piece_bytes
    dst = Repository.open(local)
    assert dst.verify().ok and dst.read_file(dst.load_snapshot(first), "files/big") == big
    # And back into a repository of this kind (the objects are already there).
    again = Repository.unpack(tmp_path / "out" / "first.tar.gz", place.location, auth=place.auth)
    assert again.objects_present == 2 + len(pieces) and again.objects_added == 0


# --- Azure only ------------------------------------------------------------------------------


@plain_only
def test_an_azure_repository_unpacks_streaming_with_the_digest_known(
    azurite: az.Azurite, tmp_path: Path
) -> None:
    src = Repository.init(tmp_path / "src")
    big = os.urandom(9 * MIB)
    sid = snapshot(src, {"files/big": big, "files/small": b"s"})
    src.pack(sid, tmp_path / "p.tar.gz")
    data, pieces = src.snapshots.pieces(sid)  # format 2: the pieces travel with the data
    assert data == {sha(big), sha(b"s")} and pieces
    piece_bytes = sum(src.object_path(d).stat().st_size for d in pieces)
    dst = azure_place(azurite, prefix="")
    report = Repository.unpack(tmp_path / "p.tar.gz", dst.location, auth=dst.auth)
    assert report.objects_added == 2 + len(pieces)
    assert report.bytes_added == len(big) + 1 + piece_bytes
    assert dst.read(object_key(sha(big))) == big
    assert dst.open().verify().ok


def test_large_objects_use_bounded_memory(azurite: az.Azurite) -> None:
    """Writing holds one block (plus the hash state); reading one ranged GET at a time. The
    SDK's own transient for one GET is ~32 MiB here, whatever the object's size."""
    place = azure_place(azurite)
    repo = place.init()
    size = 64 * MIB
    tracemalloc.start()
    try:
        digest, _ = repo.put_stream(Pattern(size, seed=3))
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with repo.open_object(digest) as fh:
            while fh.read(1 << 20):
                pass
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert put_peak < 20 * MIB, f"writing peaked at {put_peak / MIB:.1f} MiB"
    assert read_peak < 56 * MIB, f"reading peaked at {read_peak / MIB:.1f} MiB"


@plain_only
def test_write_once_is_enforced_by_the_service(azurite: az.Azurite) -> None:
    place = azure_place(azurite)
    repo = place.init()
    assert isinstance(repo.store, AzureStore)
    digest = repo.put_bytes(b"original")
    # A racing writer that checked before we wrote: its conditional write must not land.
    assert repo.store.create(object_key(digest), b"tampered") is False
    assert place.read(object_key(digest)) == b"original"
    assert repo.store.create("config.json", b"{}") is False


def test_repository_urls_and_credentials(azurite: az.Azurite) -> None:
    acct = azurite.target
    container = f"repo-{uuid.uuid4().hex[:16]}"
    conn = StorageAuth(connection_string=acct.connection_string)
    repo = Repository.init(f"az://{container}/team-a", auth=conn)
    assert repo.location == f"{acct.url}/{container}/team-a"
    key = StorageAuth(account_key=acct.key)
    assert Repository.open(f"{acct.url}/{container}/team-a/", auth=key).id == repo.id
    # Path() mangles URLs (az:/c): such a location is still taken as the URL it was.
    assert Repository.open(Path(f"az://{container}/team-a"), auth=conn).id == repo.id
    with pytest.raises(UsageError, match="not an amlport repository"):
        Repository.open(f"az://{container}/team-b", auth=conn)
    with pytest.raises(UsageError, match="not an amlport repository"):
        Repository.init(f"az://{container}", auth=conn)  # holds blobs: needs a prefix
    with pytest.raises(UsageError, match="prefix"):
        Repository.open(f"az://{container}/../x", auth=conn)
    with pytest.raises(UsageError, match="local folder"):
        Repository.open("/tmp/somewhere", auth=conn)
    with pytest.raises(UsageError, match="which storage account"):
        Repository.open(f"az://{container}/team-a")
    with pytest.raises(UsageError, match="not a local folder"):
        _ = repo.path
    assert "AccountKey" not in repr(repo.store) and acct.key not in repo.location


def test_a_container_sas_is_enough_and_read_list_only_lists(azurite: az.Azurite) -> None:
    """The usual off-site setup: an admin creates the container, the job gets a SAS for it."""
    acct = azurite.target
    place = azure_place(azurite)
    assert place.container is not None
    place.container.create_container()
    start = datetime.now(timezone.utc) - timedelta(minutes=15)
    sas = generate_container_sas(
        acct.name, place.container.container_name, account_key=acct.key, start=start,
        expiry=start + timedelta(hours=2),
        permission=ContainerSasPermissions(read=True, add=True, create=True, write=True,
                                           delete=True, list=True),
    )  # fmt: skip
    writer = StorageAuth(sas_token=sas)
    result = run_backup(
        LocalSource(WS / "sdk-bikeshare"), place.location, BackupRequest(), repo_auth=writer
    )
    reader = StorageAuth(sas_token=az.read_list_container_sas(acct, place.container.container_name))
    warnings: list[str] = []
    with Repository.open(place.location, auth=reader, on_warning=warnings.append) as repo:
        assert [s.id for s in repo.list_snapshots()] == [result.snapshot_id]
        # A reader on a read-only credential reads without a lock blob (bundle/lock.py) ...
        assert repo.verify().ok and repo.locks() == []
        assert any("read-only to this credential" in w for w in warnings)
        # ... a writer's exclusive lock still needs write access.
        with pytest.raises(AccessDenied, match="access denied") as err, repo.lock():
            pass
        assert "racwdl" in (err.value.hint or "")
    with Repository.open(place.location, auth=writer) as repo:
        assert repo.verify().ok and repo.locks() == []


def test_cli_backup_twice_then_verify_and_snapshots(azurite: az.Azurite) -> None:
    place = azure_place(azurite)
    repo_args = ["--repo", place.location]
    assert place.auth is not None and place.auth.connection_string is not None
    creds = ["--repo-connection-string", place.auth.connection_string]
    ws = str(WS / "sdk-bikeshare")
    first = cli("backup", ws, *repo_args, *creds, "--json")
    assert first.returncode in (0, 1), first.stderr
    doc1 = json.loads(first.stdout)
    assert doc1["transfer"]["new_bytes"] > 0
    objects_after_first = place.keys("objects/")
    second = cli("backup", ws, *repo_args, *creds, "--json")
    assert second.returncode in (0, 1), second.stderr
    doc2 = json.loads(second.stdout)
    assert doc2["parent"] == doc1["snapshot"]
    assert doc2["transfer"]["new_bytes"] == 0 and doc2["transfer"]["read_bytes"] == 0
    assert doc2["changes"]["different"] is False
    assert place.keys("objects/") == objects_after_first
    env = {"AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string}
    verify = cli("verify", place.location, env=env)
    assert verify.returncode == 0, verify.stderr
    assert "verified 2 snapshot(s)" in verify.stdout
    snaps = cli("snapshots", place.location, "--json", *creds)
    assert snaps.returncode == 0, snaps.stderr
    listed = json.loads(snaps.stdout)["snapshots"]
    assert [s["id"] for s in listed] == [doc1["snapshot"], doc2["snapshot"]]
    assert place.auth.connection_string not in snaps.stdout + snaps.stderr
    # No credential: a clear error, not a traceback.
    bare = cli("snapshots", place.location, env={"AMLPORT_REPO_CONNECTION_STRING": ""})
    assert bare.returncode != 0 and "Traceback" not in bare.stderr


def test_cli_restore_check_and_forget_prune_from_a_container(
    azurite: az.Azurite, tmp_path: Path
) -> None:
    place = azure_place(azurite)
    assert place.auth is not None and place.auth.connection_string is not None
    env = {"AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string}
    for _ in range(2):
        done = cli("backup", str(WS / "designer-autoprice"), "--repo", place.location, env=env)
        assert done.returncode in (0, 1), done.stderr
    target = tmp_path / "target"
    args = (
        "restore",
        place.location,
        "latest",
        "--to",
        str(target),
        "--map",
        str(MAPS / "qa.yaml"),
    )
    restored = cli(*args, "--check", env=env)
    assert restored.returncode == 0 and "check: PASSED" in restored.stdout, restored.stderr
    pruned = cli("forget", place.location, "--keep-last", "1", "--prune", "--json", env=env)
    assert pruned.returncode == 0, pruned.stderr
    doc = json.loads(pruned.stdout)
    assert len(doc["keep"]) == 1 and len(doc["remove"]) == 1
    assert doc["prune"]["objects_referenced"] == len(place.keys("objects/"))
    assert place.keys("locks/") == set()


def test_library_backup_into_a_container(azurite: az.Azurite) -> None:
    place = azure_place(azurite)
    result = run_backup(
        LocalSource(WS / "sdk-bikeshare"), place.location, BackupRequest(), repo_auth=place.auth
    )
    assert result.snapshot_id is not None
    with place.open() as repo:
        assert repo.verify().ok and [s.id for s in repo.list_snapshots()] == [result.snapshot_id]
