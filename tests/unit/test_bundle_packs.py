"""Pack files (``bundle/packs.py``, docs/bundle-format.md "Pack files"): small objects of a
batch in packs, read, verified and pruned as loose ones are; hostile index pieces refused.

Runs plain and, with ``AMLPORT_TEST_ENCRYPT=1``, encrypted (the objects sealed one by one,
the index sealed as metadata).
"""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import pytest
from helpers.bundle import index_pieces, manifest, pack_files, sha
from helpers.packing import keep_only, packed_snapshot, prune_killed_at, reopen

from amlport.bundle import Repository, packs
from amlport.bundle.config import RepositoryConfig
from amlport.bundle.packs import MAGIC, PackEntries, decode_index, encode_index
from amlport.bundle.verification import CORRUPT_PACK, CORRUPT_PACK_INDEX, MISSING_PACK
from amlport.errors import IntegrityError

CONTENTS = {f"files/f{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(40)}


@pytest.fixture
def packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    monkeypatch.setenv("AMLPORT_PACKS", "1")
    return Repository.init(tmp_path / "repo")


def pack_of(repo: Repository, data: bytes) -> Path:
    """The pack file holding a data object."""
    return repo.path / repo.objects.location(sha(data)).split("@", 1)[0]


# --- writing and reading -------------------------------------------------------------------


def test_a_batch_packs_small_objects_and_every_read_finds_them(packed: Repository) -> None:
    sid = packed_snapshot(packed, CONTENTS)
    assert b'"packs"' in (packed.path / "config.json").read_bytes()
    assert not any(packed.objects.path(sha(d)).exists() for d in CONTENTS.values())  # packed
    # one pack of data objects (the transfer's batch), one of the snapshot's pieces
    assert len(pack_files(packed)) == 2 and len(index_pieces(packed)) == 2
    assert len({pack_of(packed, d) for d in CONTENTS.values()}) == 1
    assert not list((packed.path / "objects" / "sha256").glob("??/*"))  # not even a piece
    again = reopen(packed)
    for data in CONTENTS.values():
        digest = sha(data)
        assert again.objects.has(digest)
        assert again.objects.size(digest) == again.objects.stored_size(len(data))
        assert again.get_bytes(digest) == data
        with again.open_object(digest) as fh:
            assert fh.read() == data
        assert again.objects.measure(digest, len(data)) == (len(data), None)
        assert again.objects.location(digest).startswith("packs/")
    assert set(again.objects.iter_digests()) >= {sha(d) for d in CONTENTS.values()}
    assert again.objects.missing([sha(b"file 0\n")]) == []
    report = again.verify()
    assert report.ok, report.problems
    assert report.packs_checked == 2
    assert again.load_snapshot(sid).file("files/f003.txt") is not None


def test_objects_of_the_batch_are_readable_before_the_batch_ends(packed: Repository) -> None:
    with packed.objects.batch():
        digest, new = packed.add_bytes(b"in memory")
        assert new and packed.add_bytes(b"in memory") == (digest, False)
        assert packed.get_bytes(digest) == b"in memory"
        assert packed.objects.location(digest) == packed.objects.key(digest)  # not yet packed
    assert packed.objects.location(digest).startswith("packs/")


def test_large_objects_and_objects_outside_a_batch_stay_loose(packed: Repository) -> None:
    big = b"x" * packs.PACK_BELOW
    with packed.objects.batch():
        big_digest = packed.put_bytes(big)
    outside = packed.put_bytes(b"outside a batch")
    assert packed.objects.path(big_digest).is_file()
    assert packed.objects.path(outside).is_file()
    assert not pack_files(packed)


def test_a_full_pack_is_written_and_the_batch_continues(
    packed: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(packs, "PACK_TARGET", 300)
    with packed.objects.batch():
        digests = [packed.put_bytes(b"%d" % i * 40) for i in range(20)]
    assert len(pack_files(packed)) >= 3 and len(index_pieces(packed)) == 1
    again = reopen(packed)
    assert [again.get_bytes(d) for d in digests] == [b"%d" % i * 40 for i in range(20)]


def test_workers_add_concurrently(packed: Repository) -> None:
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        for i in range(50):
            found = packed.add_bytes(b"shared %d" % (i % 25))
            with lock:
                results.append(found)

    with packed.objects.batch():
        threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(new for _, new in results) == 25  # each stored once
    again = reopen(packed)
    assert all(again.get_bytes(sha(b"shared %d" % i)) == b"shared %d" % i for i in range(25))


def test_a_batch_that_raises_still_indexes_what_it_packed(packed: Repository) -> None:
    with pytest.raises(RuntimeError), packed.objects.batch():
        digest = packed.put_bytes(b"kept for the next run")
        raise RuntimeError("interrupted")
    assert reopen(packed).get_bytes(digest) == b"kept for the next run"


def test_a_repository_without_packs_writes_loose_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLPORT_PACKS", "0")
    repo = Repository.init(tmp_path / "repo")
    with repo.objects.batch():
        digest = repo.put_bytes(b"loose")
    assert repo.objects.path(digest).is_file()
    assert not (tmp_path / "repo" / "packs").exists()
    assert b"packs" not in (tmp_path / "repo" / "config.json").read_bytes()


def test_an_amlport_that_does_not_know_packs_refuses_the_repository_by_name(
    packed: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlport.bundle import config

    raw = (packed.path / "config.json").read_bytes()
    monkeypatch.setattr(config, "_KEYS", config._KEYS - {"packs"})  # an older amlport
    with pytest.raises(IntegrityError, match="unknown key\\(s\\) 'packs'"):
        RepositoryConfig.from_bytes(raw, where="repository")


def test_config_refuses_another_packs_version_and_packs_in_format_1() -> None:
    base = RepositoryConfig.new(packs=True)
    assert base.packs and RepositoryConfig.from_bytes(base.to_bytes(), where="r").packs
    other = base.to_bytes().replace(b'"version": 1\n', b'"version": 2\n', 1)
    with pytest.raises(IntegrityError, match=r"packs\.version"):
        RepositoryConfig.from_bytes(other, where="r")
    assert not RepositoryConfig.new(version=1, packs=True).packs


# --- verify ------------------------------------------------------------------------------


def test_verify_names_a_damaged_pack_and_its_objects(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = pack_of(packed, CONTENTS["files/f005.txt"])
    raw = bytearray(pack.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    pack.write_bytes(bytes(raw))
    report = reopen(packed).verify()
    kinds = {p.kind for p in report.problems}
    assert CORRUPT_PACK in kinds and "corrupt_object" in kinds
    assert any(pack.name in p.message for p in report.problems if p.kind == CORRUPT_PACK)


def test_verify_names_a_missing_and_a_truncated_pack(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = pack_of(packed, CONTENTS["files/f005.txt"])
    raw = pack.read_bytes()
    pack.write_bytes(raw[: len(raw) // 2])
    again = reopen(packed)
    report = again.verify()
    assert any(p.kind == CORRUPT_PACK and pack.name in p.message for p in report.problems)
    last = sha(list(CONTENTS.values())[-1])
    with pytest.raises(IntegrityError, match="cut short"):
        again.get_bytes(last)
    pack.unlink()
    report = reopen(packed).verify()
    assert any(p.kind == MISSING_PACK and pack.name in p.message for p in report.problems)
    assert any(p.kind == "missing_object" for p in report.problems)
    with pytest.raises(IntegrityError, match="missing"):
        reopen(packed).get_bytes(last)


def test_verify_names_a_damaged_index_piece(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    index = index_pieces(packed)[0]
    index.write_bytes(index.read_bytes()[:-3])
    report = reopen(packed).verify()
    assert any(p.kind == CORRUPT_PACK_INDEX and index.name in p.message for p in report.problems)
    # its objects are unreachable: the data objects, or the snapshot's pieces
    assert any(p.kind in ("missing_object", "corrupt_snapshot") for p in report.problems)


def test_a_pack_whose_bytes_do_not_hash_to_its_name_is_reported(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = pack_of(packed, CONTENTS["files/f005.txt"])
    other = pack.with_name("ab" * 32)
    pack.rename(other)  # its bytes, under a name that is not theirs (and the index's gone)
    report = reopen(packed).verify()
    assert any(p.kind == MISSING_PACK for p in report.problems)


# --- hostile index pieces ----------------------------------------------------------------


def _table(pack_size: int, entries: list[tuple[str, int, int]]) -> bytes:
    return encode_index([PackEntries("cd" * 32, pack_size, entries)])


@pytest.mark.parametrize(
    ("plain", "why"),
    [
        (_table(100, [("11" * 32, 90, 20)]), "outside pack"),
        (_table(100, [("11" * 32, 0, 50), ("22" * 32, 40, 10)]), "overlaps"),
        (_table(1 << 29, [("11" * 32, 0, packs.MAX_ENTRY_BYTES + 1)]), "claims"),
        (_table(packs.MAX_PACK_BYTES + 1, []), "more than"),
        (b"not a table at all", "not an amlport.packs/1"),
        (_table(100, [("11" * 32, 0, 10)]) + b"\0", "after the last pack"),
        (MAGIC + struct.pack(">I", 1) + bytes(32) + struct.pack(">QI", 100, 10**9), "entries"),
        (MAGIC + struct.pack(">I", 10**9), "inside a pack header"),
        (_table(100, [("11" * 32, 0, 10), ("11" * 32, 10, 10)]), "listed twice"),
        (MAGIC + struct.pack(">I", 2) + _table(100, [])[len(MAGIC) + 4 :] * 2, "twice"),
    ],
)
def test_hostile_index_tables_are_refused(plain: bytes, why: str) -> None:
    with pytest.raises(IntegrityError, match=why):
        decode_index(plain, where="packs/index/x")


def test_an_index_bomb_is_refused_before_it_is_decompressed(packed: Repository) -> None:
    packed_snapshot(packed, {"files/a": b"a"})
    bomb = b"\0" * (packs.MAX_INDEX_BYTES + 1)
    name = packed.codec.meta_name(bomb)
    stored = packed.codec.pack_meta(bomb, name)
    (packed.path / "packs" / "index" / name).write_bytes(stored)
    report = reopen(packed).verify()
    assert any(p.kind == CORRUPT_PACK_INDEX and name in p.message for p in report.problems)


def test_an_index_naming_a_missing_pack_and_duplicates_in_two_packs(packed: Repository) -> None:
    packed_snapshot(packed, {"files/a": b"first"})
    before = len(pack_files(packed))
    # A second batch storing the same bytes again (as a concurrent backup could) and more.
    again = reopen(packed)
    with again.objects.batch():
        again.objects._index = packs.PackIndex()  # it did not see the first batch's index
        again.put_bytes(b"first")
        again.put_bytes(b"second")
    assert len(pack_files(packed)) == before + 1
    third = reopen(packed)
    assert third.get_bytes(sha(b"first")) == b"first"
    assert third.verify().ok
    # prune keeps one copy and one index piece
    with third.lock(exclusive=False):
        third.write_snapshot(manifest(third, {"files/a": b"first", "files/b": b"second"}))
    third.prune()
    fourth = reopen(packed)
    assert len(index_pieces(fourth)) == 1
    assert fourth.verify().ok
    assert fourth.get_bytes(sha(b"first")) == b"first"


# --- prune -------------------------------------------------------------------------------


def test_prune_deletes_dead_packs_repacks_mostly_dead_ones_and_sweeps_unindexed(
    packed: Repository, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = {"files/keep.txt": b"kept " * 10}
    dead = {f"files/dead{i}.txt": b"dead %d " % i * 50 for i in range(10)}
    packed_snapshot(packed, {**keep, **dead})  # one pack, mostly what will die
    only_dead = {f"files/gone{i}.txt": b"gone %d " % i * 5 for i in range(5)}
    packed_snapshot(packed, only_dead)
    orphan_pack = packed.path / "packs" / "ee" / ("ee" * 32)  # a crashed run's pack
    orphan_pack.parent.mkdir(parents=True, exist_ok=True)
    orphan_pack.write_bytes(b"never indexed")
    final = packed_snapshot(packed, keep)
    keep_only(packed, final)
    repo = reopen(packed)
    report = repo.prune()
    assert report.packs_removed >= 2 and report.packs_written == 1
    assert not orphan_pack.exists()
    assert len(index_pieces(repo)) == 1
    after = reopen(packed)
    assert after.verify().ok
    assert after.get_bytes(sha(b"kept " * 10)) == b"kept " * 10
    assert not after.objects.has(sha(b"dead 1 " * 50))
    assert reopen(packed).prune().packs_removed == 0  # nothing left to do


def test_prune_keeps_empty_objects_beside_others_at_the_same_offset(packed: Repository) -> None:
    contents = {f"files/e{i}": b"" if i % 2 else b"x%d" % i for i in range(12)}
    packed_snapshot(packed, contents)
    final = packed_snapshot(packed, {"files/e1": b"", "files/e2": b"x2"})
    keep_only(packed, final)
    reopen(packed).prune()
    after = reopen(packed)
    assert not after.objects.pack_index().problems
    assert after.verify().ok
    assert after.get_bytes(sha(b"")) == b""


def test_prune_stops_on_a_damaged_index_before_deleting_anything(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    orphan = packed.put_bytes(b"loose orphan")
    index = index_pieces(packed)[0]
    index.write_bytes(b"garbage")
    with pytest.raises(IntegrityError):
        reopen(packed).prune()
    assert packed.objects.path(orphan).is_file()
    assert pack_files(packed)


@pytest.mark.parametrize("stop_at", [0, 1, 2])  # before the new index; each delete
def test_a_prune_killed_anywhere_leaves_a_readable_repository(
    packed: Repository, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    keep = {"files/keep.txt": b"kept " * 10}
    packed_snapshot(packed, {**keep, **{f"files/d{i}": b"d%d" % i * 80 for i in range(8)}})
    final = packed_snapshot(packed, keep)
    keep_only(packed, final)
    repo = reopen(packed)
    prune_killed_at(repo, monkeypatch, stop_at)
    after = reopen(packed)
    assert after.verify().ok
    assert after.get_bytes(sha(b"kept " * 10)) == b"kept " * 10
    after.prune()  # a second run finishes it
    assert reopen(packed).verify().ok


# --- archives and memory -----------------------------------------------------------------


def test_pack_and_unpack_carry_packed_objects_loose(packed: Repository, tmp_path: Path) -> None:
    sid = packed_snapshot(packed, CONTENTS)
    archive = tmp_path / "snap.tar.gz"
    packed.pack(sid, archive)
    Repository.unpack(archive, tmp_path / "copy")
    copy = Repository.open(tmp_path / "copy")
    assert copy.verify().ok
    assert copy.get_bytes(sha(b"file 3\n" * 4)) == b"file 3\n" * 4


def test_the_index_stays_compact() -> None:
    index = packs.PackIndex()
    entries = [(f"{i:064x}", i * 100, 100) for i in range(20000)]
    index.add_pieces("k", [PackEntries("ab" * 32, 20000 * 100, entries)])
    assert index.find(f"{123:064x}") == ("ab" * 32, 12300, 100)
    assert index.find("ff" * 32) is None
    assert len(index) == 20000


def test_the_compact_index_finds_every_copy_across_many_packs_and_tables() -> None:
    """The open-addressing table (design 0007, B session 7): every object of many packs is
    found after the table grew many times, from pieces and from checked tables alike; a
    second copy in another pack is read only when the first one's pack is damaged; names
    that differ in their last byte only, or share their first eight, stay apart; what is
    not 32 bytes of hex is not found."""
    names = [bytes([n % 7] * 8) + n.to_bytes(24, "big") for n in range(5000)]
    pack_a = PackEntries("aa" * 32, 10**6, [(nm.hex(), i * 10, 10) for i, nm in enumerate(names)])
    twins = [(names[n].hex(), n, 1) for n in range(0, 5000, 1000)]  # 5 copies elsewhere
    pack_b = PackEntries("bb" * 32, 10**6, twins)
    from_pieces, from_table = packs.PackIndex(), packs.PackIndex()
    from_pieces.add_pieces("k", [pack_a, pack_b])
    from_table.add_table("k", encode_index([pack_a, pack_b]))
    for index in (from_pieces, from_table):
        assert len(index) == 5000 and index.copies() == 5 and index.rows == 5005
        for i, nm in enumerate(names):
            assert index.find(nm.hex()) == ("aa" * 32, i * 10, 10)
        assert index.find(names[1000].hex(), frozenset({"aa" * 32})) == ("bb" * 32, 1000, 1)
        assert index.find(names[1001].hex(), frozenset({"aa" * 32})) == ("aa" * 32, 10010, 10)
        last = bytearray(names[42])
        last[-1] ^= 1
        assert index.find(bytes(last).hex()) is None
        for odd in ("", "ab", "zz" * 32, "aa" * 31, "aa" * 33):
            assert index.find(odd) is None
        assert sorted(index.items()) == sorted((nm.hex(), 10) for nm in names)


def test_a_batchs_index_piece_lists_its_packs_in_the_order_they_were_written() -> None:
    """The batch encodes its index piece from its compact index at the end (no table held
    while it runs): the same bytes as the packs' entries encoded one by one."""
    written: dict[str, bytes] = {}
    packer = packs.Packer(lambda key, data: written.setdefault(key, data), target=40)
    for n in range(50):
        assert packer.add(f"{n:064x}", bytes([n]) * (n % 9))
    assert not packer.add(f"{7:064x}", b"again")  # once per batch
    packer.flush()
    plain = packer.index_plain()
    assert plain is not None and packer.packs == len(written) > 3
    listed = decode_index(plain, where="piece")
    assert [packs.pack_key(p.pack) for p in listed] == list(written)  # in write order
    found = {e[0]: (p.pack, e[1], e[2]) for p in listed for e in p.entries}
    assert len(found) == 50
    for hexd, (pack, offset, length) in found.items():
        n = int(hexd, 16)
        assert written[packs.pack_key(pack)][offset : offset + length] == bytes([n]) * (n % 9)
        assert packer.find(hexd) == (pack, offset, length)


@pytest.mark.parametrize("scheme", ["fsspec+memory://packs-test-", "fsspec+file://"])
def test_packs_work_in_an_fsspec_repository(
    scheme: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLPORT_PACKS", "1")
    where = f"{scheme}{tmp_path.name}" if "memory" in scheme else f"{scheme}{tmp_path}/r"
    repo = Repository.init(where)
    sid = packed_snapshot(repo, CONTENTS)
    again = Repository.open(where)
    assert again.objects.location(sha(b"file 0\n")).startswith("packs/")
    assert again.get_bytes(sha(b"file 2\n" * 3)) == b"file 2\n" * 3
    assert again.verify().ok
    assert again.load_snapshot(sid).file("files/f001.txt") is not None


def test_a_pack_is_written_without_a_second_copy_of_its_bytes() -> None:
    """The batch's high-water mark is one pack, not two: the bytes handed to ``write`` are
    the buffer's own (``bytes(bytearray)`` held every pack twice while it was written)."""
    import tracemalloc

    target = 2 << 20
    chunks = [bytes([n]) * (64 << 10) for n in range(40)]  # 2.5 MiB: one pack, then some
    sizes: list[int] = []
    packer = packs.Packer(lambda key, data: sizes.append(len(data)), target=target)
    tracemalloc.start()
    try:
        for n, chunk in enumerate(chunks):
            assert packer.add(f"{n:064x}", chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sizes == [target]
    assert peak < 1.5 * target  # 2 x before


def test_a_pack_whose_write_failed_is_written_by_the_next_flush() -> None:
    """A failed write keeps the pack in memory (readable, still growing); the next flush
    writes it whole."""
    written: dict[str, bytes] = {}
    fail = [True]

    def write(key: str, data: bytes) -> None:
        if fail[0]:
            fail[0] = False
            raise OSError("disk full")
        written[key] = data

    packer = packs.Packer(write, target=100)
    assert packer.add("a" * 64, b"x" * 60)
    with pytest.raises(OSError):
        packer.add("b" * 64, b"y" * 60)  # reaches the target: the write fails
    assert packer.find("b" * 64) == (None, 60, 60)
    assert packer.buffered(60, 60) == b"y" * 60
    assert packer.add("c" * 64, b"z" * 10)  # a read of the buffer does not block a write
    packer.flush()
    (data,) = written.values()
    assert data == b"x" * 60 + b"y" * 60 + b"z" * 10
    pack, offset, length = packer.find("c" * 64) or ("", 0, 0)
    assert written[packs.pack_key(pack)][offset : offset + length] == b"z" * 10
