"""The repository-store contract: every store the repository runs on passes the same suite.

Each test runs once per backend of ``BACKENDS`` (``tests/helpers/stores.py``): a fresh local
folder (always, no emulator needed) and a fresh container of the session Azurite account with
the repository under a prefix (marked ``azurite``). What has no counterpart on every store
(write-once enforced by the service, bounded memory, URLs and credentials, the CLI against a
container) stays in ``tests/integration/test_bundle_azure.py``. A new store adds its ``Place``
to ``tests/helpers/stores.py`` and one ``pytest.param`` below.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from helpers.bundle import T0, manifest, plain_only, snapshot
from helpers.encrypted_mode import sha
from helpers.stores import (
    Pattern,
    Place,
    azure_place,
    fsspec_place,
    local_place,
    object_key,
    plant_lock,
)

from amlport.bundle import Repository, RepositoryLocked
from amlport.bundle.verification import (
    CORRUPT_OBJECT,
    CORRUPT_PACK,
    MISSING_OBJECT,
    MISSING_PACK,
)
from amlport.errors import IntegrityError, SourceNotFound, UsageError
from amlport.model.manifest import FileEntry, format_time

MIB = 1 << 20


def _local(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    return local_place(tmp_path)


def _azure(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    return azure_place(request.getfixturevalue("azurite"))


def _fsspec_memory(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    return fsspec_place("memory", tmp_path)


def _fsspec_file(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    return fsspec_place("file", tmp_path)


# Every repository store: (factory, id, marks). The local store runs everywhere.
BACKENDS: list[object] = [
    pytest.param(_local, id="local"),
    pytest.param(_azure, id="azure", marks=pytest.mark.azurite),
    pytest.param(_fsspec_memory, id="fsspec-memory"),
    pytest.param(_fsspec_file, id="fsspec-file"),
]


@pytest.fixture(params=BACKENDS)
def place(request: pytest.FixtureRequest, tmp_path: Path) -> Place:
    factory: Callable[[pytest.FixtureRequest, Path], Place] = request.param
    return factory(request, tmp_path)


def _stored_size(repo: Repository, digest: str) -> int:
    """The stored bytes of an object, loose or packed (what an archive carries of it)."""
    size = repo.objects.size(digest)
    assert size is not None, f"{digest} is not stored"
    return size


def _held_bytes(place: Place) -> int:
    """Bytes of every file holding objects: loose object files and pack files (not the pack
    index pieces): what a prune's ``bytes_freed`` takes away."""
    keys = place.keys("objects/") | place.keys("packs/")
    return sum(len(place.read(k)) for k in keys if not k.startswith("packs/index/"))


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
def test_verify_detects_a_damaged_and_a_missing_pack(
    place: Place, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same in pack files (the default), on every store: a byte changed inside a pack,
    which keeps its indexed size (only the hashes can tell), and a pack removed."""
    monkeypatch.setenv("AMLPORT_PACKS", "1")  # whatever the environment says
    repo = place.init()
    assert repo.objects.packing
    weights, deps = b"w" * 1000, b"d" * 100
    for data in (weights, deps):  # a pack each, as a backup writes them
        with repo.objects.batch():
            repo.put_bytes(data)
    sid = snapshot(repo, {"files/weights": weights, "files/deps": deps})
    assert repo.verify().ok
    spans: dict[bytes, tuple[str, int]] = {}  # contents -> (its pack, its offset)
    for data in (weights, deps):
        where, _, span = repo.objects.location(sha(data)).partition("@")
        assert where.startswith("packs/") and span, where
        spans[data] = (where, int(span.split("+")[0]))
    key, offset = spans[weights]
    stored = bytearray(place.read(key))
    stored[offset] ^= 1
    place.overwrite(key, bytes(stored))
    place.remove(spans[deps][0])
    report = place.open().verify()
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == sorted([CORRUPT_PACK, CORRUPT_OBJECT, MISSING_PACK, MISSING_OBJECT])
    named = [p for p in report.problems if p.kind in (CORRUPT_OBJECT, MISSING_OBJECT)]
    assert all(p.paths and p.paths[0].startswith(sid[:16]) for p in named)
    with pytest.raises(IntegrityError, match="corrupt"):
        place.open().get_bytes(sha(weights))
    with pytest.raises(IntegrityError, match="missing"):
        place.open().get_bytes(sha(deps))


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
    piece_bytes = sum(_stored_size(repo, d) for d in gone_pieces)
    before = set(place.open().objects.iter_digests())  # loose and packed (the pieces)
    held = _held_bytes(place)
    dry = repo.prune(dry_run=True)
    report = repo.prune()
    assert sorted(report.removed) == sorted(before - live - live_pieces) == sorted(dry.removed)
    removed_data = set(report.removed) - gone_pieces
    assert removed_data == {sha(b"one"), sha(b"two"), sha(b"orphan of a crashed run")}
    assert gone_pieces <= set(report.removed)
    # What the store holds less, wherever the objects were: their own files, or packs (each
    # snapshot's pieces are a pack: deleted when all are gone, else repacked or kept).
    assert report.bytes_freed == dry.bytes_freed == held - _held_bytes(place)
    if not repo.objects.packing:  # AMLPORT_PACKS=0: exactly the objects' own files
        freed = len(b"one" + b"two" + b"orphan of a crashed run")
        assert report.bytes_freed == freed + piece_bytes
    after = set(place.open().objects.iter_digests())  # the pack index names the live only
    assert after == live | live_pieces
    assert repo.verify().ok


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
    piece_bytes = sum(_stored_size(repo, d) for d in pieces)  # packed (the default) or not
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
