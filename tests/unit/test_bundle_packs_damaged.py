"""Prune and a damaged pack (``bundle/garbage.py``, docs/bundle-format.md "Pack files"): a
pack the index names that is missing, cut short or whose bytes do not hash to its name goes,
with its index entries, once every live object it held has a sound copy (loose, in a sound
pack, or its own bytes salvaged into a new pack); while one has none it stays and prune says
so. A prune killed at any step leaves every live object readable. Hostile index pieces: two
naming one pack, a piece naming a pack of another repository, stray names under ``packs/``.

Runs plain and, with ``AMLPORT_TEST_ENCRYPT=1``, encrypted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.bundle import object_span, sha
from helpers.packing import keep_only, packed_snapshot, prune_killed_at, reopen, stored_in_two_packs

from amlport.bundle import Repository, packs
from amlport.bundle.packs import PackEntries
from amlport.bundle.repository import KeySource
from amlport.bundle.verification import CORRUPT_PACK, MISSING_PACK
from amlport.errors import IntegrityError

CONTENTS = {f"files/f{i:03d}.txt": f"file {i}\n".encode() * (i + 1) for i in range(40)}
PACK_KINDS = {CORRUPT_PACK, MISSING_PACK}


@pytest.fixture
def packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    monkeypatch.setenv("AMLPORT_PACKS", "1")
    return Repository.init(tmp_path / "repo")


def data_pack(repo: Repository) -> Path:
    """The pack holding the data objects of ``CONTENTS``."""
    path, _, _ = object_span(repo, sha(CONTENTS["files/f005.txt"]))
    assert "packs" in path.parts
    return path


def damage(pack: Path, how: str, keep: int | None = None) -> None:
    raw = pack.read_bytes()
    if how == "missing":
        pack.unlink()
    elif how == "cut":
        pack.write_bytes(raw[: len(raw) // 2 if keep is None else keep])
    else:  # a flipped byte, same size
        at = len(raw) // 2 if keep is None else keep
        pack.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :])


def reads_every_file(repo: Repository, sid: str) -> None:
    for entry in repo.load_snapshot(sid).files:
        assert repo.objects.get_bytes(entry.digest, entry.size) is not None


def only_pack_problems(repo: Repository, pack: Path) -> None:
    """verify names the damaged pack and nothing else (its objects read elsewhere)."""
    problems = repo.verify().problems
    assert problems, "the damaged pack is named"
    assert all(p.kind in PACK_KINDS and pack.name in p.message for p in problems), problems


# --- the rule -------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["missing", "cut"])
def test_a_damaged_pack_whose_objects_were_stored_again_is_dropped(
    packed: Repository, how: str
) -> None:
    first = packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    damage(pack, how)
    again = reopen(packed)
    second = packed_snapshot(again, CONTENTS)  # a backup stores its objects again, loose
    assert again.objects.location(sha(CONTENTS["files/f039.txt"])).startswith("objects/")
    reads_every_file(reopen(packed), second)
    only_pack_problems(reopen(packed), pack)
    warnings: list[str] = []
    report = reopen(packed, warnings).prune()
    key = pack.relative_to(packed.path).as_posix()
    assert report.to_dict()["damaged_packs_removed"] == [key]
    assert report.to_dict()["damaged_packs_kept"] == [] and not warnings
    assert report.pack_lines() == [
        f"dropped damaged pack {key} ({report.damaged_packs[0].problem}"
        "): every object of it a snapshot uses has a sound copy"
    ]
    assert not pack.exists()
    after = reopen(packed)
    assert after.verify().ok
    reads_every_file(after, first)
    index = after.objects.pack_index()
    assert pack.name not in index.packs and not index.problems


@pytest.mark.parametrize("how", ["missing", "cut"])
def test_a_damaged_pack_holding_the_only_copy_stays_and_prune_says_so(
    packed: Repository, how: str
) -> None:
    sid = packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    damage(pack, how)
    warnings: list[str] = []
    report = reopen(packed, warnings).prune()
    (kept,) = report.to_dict()["damaged_packs_kept"]
    assert kept["pack"] == pack.relative_to(packed.path).as_posix()
    assert kept["only_copies"] and len(warnings) == 1
    assert pack.name in warnings[0] and "only copy" in warnings[0] and "keeps it" in warnings[0]
    assert report.pack_lines()[0].startswith(f"kept damaged pack {kept['pack']}")
    if how == "cut":  # what lies before the cut is readable: salvaged into a new pack
        assert kept["salvaged"] > 0 and pack.exists()
        first = sha(CONTENTS["files/f000.txt"])
        assert (
            not reopen(packed)
            .objects.location(first)
            .startswith(str(pack.relative_to(packed.path)))
        )
    else:
        assert kept["salvaged"] == 0
    survivor = reopen(packed)
    assert sha(CONTENTS["files/f039.txt"]) in kept["only_copies"]
    assert pack.name in str(survivor.objects.pack_index().packs)  # its entries are kept
    only_pack_problems_or_missing = {p.kind for p in survivor.verify().problems}
    assert only_pack_problems_or_missing <= PACK_KINDS | {"missing_object", "corrupt_object"}
    assert reopen(packed).prune().to_dict()["damaged_packs_kept"]  # again: still kept
    # a backup stores the lost objects again: the next prune drops the pack
    packed_snapshot(reopen(packed), CONTENTS)
    assert reopen(packed).prune().to_dict()["damaged_packs_removed"]
    after = reopen(packed)
    assert after.verify().ok and not pack.exists()
    reads_every_file(after, sid)


def test_a_flipped_byte_keeps_the_pack_until_its_object_is_forgotten(packed: Repository) -> None:
    """A same-size pack whose bytes do not hash to its name: prune hashes every pack (as
    verify does), salvages the live objects whose bytes check, keeps the pack for the one
    whose bytes are damaged, and drops it once no snapshot uses that object."""
    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    victim = sha(CONTENTS["files/f020.txt"])
    _, offset, length = object_span(packed, victim)
    damage(pack, "flip", keep=offset + length // 2)
    warnings: list[str] = []
    report = reopen(packed, warnings).prune()
    (kept,) = report.to_dict()["damaged_packs_kept"]
    assert kept["only_copies"] == [victim] and kept["salvaged"] == len(CONTENTS) - 1
    assert "hash" in kept["problem"]
    assert "forget the snapshots" in warnings[0] and "next backup" not in warnings[0]
    without = {k: v for k, v in CONTENTS.items() if k != "files/f020.txt"}
    final = packed_snapshot(reopen(packed), without)
    keep_only(packed, final)
    report = reopen(packed).prune()  # it holds nothing live now: it goes (not even hashed)
    assert report.packs_removed >= 1
    after = reopen(packed)
    assert after.verify().ok and not pack.exists()
    reads_every_file(after, final)


def test_a_flipped_byte_in_a_forgotten_object_salvages_the_rest(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    victim = sha(CONTENTS["files/f020.txt"])
    without = {k: v for k, v in CONTENTS.items() if k != "files/f020.txt"}
    final = packed_snapshot(reopen(packed), without)
    keep_only(packed, final)
    _, offset, length = object_span(packed, victim)
    damage(pack, "flip", keep=offset + length // 2)
    report = reopen(packed).prune()
    assert report.to_dict()["damaged_packs_removed"] == [pack.relative_to(packed.path).as_posix()]
    assert report.damaged_packs[0].salvaged == len(without) and report.packs_written == 1
    after = reopen(packed)
    assert after.verify().ok and not pack.exists()
    reads_every_file(after, final)


def test_a_dry_run_reports_the_damaged_pack_and_changes_nothing(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    damage(pack, "missing")
    before = sorted(p.relative_to(packed.path) for p in packed.path.rglob("*"))
    report = reopen(packed).prune(dry_run=True)
    assert report.to_dict()["damaged_packs_kept"]
    assert sorted(p.relative_to(packed.path) for p in packed.path.rglob("*")) == before


def test_the_forget_estimate_names_the_damaged_pack_a_real_prune_drops(
    packed: Repository,
) -> None:
    """``forget --dry-run --prune`` once estimated from the object list alone: it named no
    damaged pack (nor unreadable index piece) that the real prune then dropped."""
    from amlport.backup.forget import estimate_prune

    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    damage(pack, "missing")
    packed_snapshot(reopen(packed), CONTENTS)  # its objects stored again, loose
    repo = reopen(packed)
    plan = repo.forget(keep_last=1, dry_run=True)
    before = sorted(p.relative_to(packed.path) for p in packed.path.rglob("*"))
    estimate = estimate_prune(repo, plan).to_dict()
    assert sorted(p.relative_to(packed.path) for p in packed.path.rglob("*")) == before
    key = pack.relative_to(packed.path).as_posix()
    assert estimate["damaged_packs_removed"] == [key]
    repo = reopen(packed)
    repo.forget(keep_last=1)
    actual = repo.prune().to_dict()
    assert {k: v for k, v in estimate.items() if k not in ("dry_run", "packs_written")} == {
        k: v for k, v in actual.items() if k not in ("dry_run", "packs_written")
    }
    assert reopen(packed).verify().ok


# --- crash safety ---------------------------------------------------------------------------


@pytest.mark.parametrize("stop_at", [0, 1, 2, 3, 4])  # before the new index; each delete
def test_a_prune_dropping_a_damaged_pack_killed_anywhere_keeps_every_object_readable(
    packed: Repository, monkeypatch: pytest.MonkeyPatch, stop_at: int
) -> None:
    """The pack is cut short where only a forgotten object lay: the live ones are salvaged
    into a new pack (durable), the new index piece names it (durable), the old pieces go,
    then the damaged pack. Killed between any two steps, every live object reads (a copy in
    a sound pack is read before one in the damaged pack) and verify names at most the pack."""
    packed_snapshot(packed, CONTENTS)
    offsets = {k: object_span(packed, sha(v))[1] for k, v in CONTENTS.items()}
    last = max(offsets, key=offsets.__getitem__)
    final = packed_snapshot(reopen(packed), {k: v for k, v in CONTENTS.items() if k != last})
    keep_only(packed, final)
    pack = data_pack(packed)
    damage(pack, "cut", keep=offsets[last])
    repo = reopen(packed)
    prune_killed_at(repo, monkeypatch, stop_at)
    between = reopen(packed)
    reads_every_file(between, final)
    problems = between.verify().problems
    assert all(p.kind in PACK_KINDS and pack.name in p.message for p in problems), problems
    reopen(packed).prune()  # a second run finishes it
    after = reopen(packed)
    assert after.verify().ok and not pack.exists()
    reads_every_file(after, final)


# --- hostile index pieces -------------------------------------------------------------------


def test_two_index_pieces_naming_one_damaged_pack(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    table = [p for p in reopen(packed).objects.pack_index().packs if p == pack.name]
    assert table
    index = reopen(packed).objects
    piece = next(
        e for n in packed.store.list(packs.INDEX_FOLDER) for e in index.read_index_piece(n)
        if e.pack == pack.name
    )  # fmt: skip
    # a second piece naming the same pack with half its entries (as a second run could)
    index.write_index_piece(packs.encode_index([PackEntries(piece.pack, piece.size,
                                                            piece.entries[::2])]))  # fmt: skip
    damage(pack, "missing")
    packed_snapshot(reopen(packed), CONTENTS)  # stored again, loose
    report = reopen(packed).prune()
    assert report.to_dict()["damaged_packs_removed"] == [pack.relative_to(packed.path).as_posix()]
    after = reopen(packed)
    assert after.verify().ok
    assert len(list(after.store.list(packs.INDEX_FOLDER))) == 1


def test_two_index_pieces_disagreeing_on_a_packs_size_stop_prune(packed: Repository) -> None:
    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    repo = reopen(packed)
    repo.objects.write_index_piece(packs.encode_index([PackEntries(pack.name, 10**6, [])]))
    before = sorted(p.name for p in packed.path.rglob("*"))
    with pytest.raises(IntegrityError, match="disagree"):
        reopen(packed).prune()
    assert sorted(p.name for p in packed.path.rglob("*")) == before


def test_an_index_piece_of_another_repository(
    packed: Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A piece copied from another repository names a pack that is not here (and objects no
    snapshot here uses): in a plain repository the piece is well formed (a piece's name is
    its content's hash), so prune drops the foreign entries and verify is clean again; in an
    encrypted one it does not open under this repository's key: an unreadable piece, which
    prune removes as every object a snapshot here uses has a copy elsewhere (session 7)."""
    sid = packed_snapshot(packed, CONTENTS)
    if packed.encrypted:  # the other repository has a master key of its own
        monkeypatch.setattr(KeySource, "test_master", None)
    other = Repository.init(tmp_path / "other")
    packed_snapshot(other, {"files/x.bin": b"another repository's object " * 9})
    foreign = [n for n in other.store.list(packs.INDEX_FOLDER)]
    for name in foreign:
        (packed.path / packs.index_key(name)).write_bytes(
            (other.path / packs.index_key(name)).read_bytes()
        )
    report = reopen(packed).prune()
    if packed.encrypted:
        removed = report.to_dict()["unreadable_index_pieces"]
        assert removed == [packs.index_key(n) for n in foreign]
    else:
        assert len(report.to_dict()["damaged_packs_removed"]) >= 1
    after = reopen(packed)
    assert after.verify().ok
    reads_every_file(after, sid)
    assert not set(foreign) & set(after.store.list(packs.INDEX_FOLDER))


def test_stray_names_under_packs_are_neither_read_nor_deleted(packed: Repository) -> None:
    """Only ``packs/<2 hex>/<64 hex>`` is a pack: a name with ``..`` or of another shape
    under ``packs/`` is no pack (prune neither trusts nor deletes it), and nothing outside
    ``packs/`` is touched by a pack's removal."""
    packed_snapshot(packed, CONTENTS)
    pack = data_pack(packed)
    strays = [
        packed.path / "packs" / pack.parent.name / f"{pack.name}..",
        packed.path / "packs" / pack.parent.name / "..hidden",
        packed.path / "packs" / "zz" / ("zz" * 32),
    ]
    for stray in strays:
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"not a pack")
    damage(pack, "missing")
    packed_snapshot(reopen(packed), CONTENTS)
    reopen(packed).prune()
    after = reopen(packed)
    assert after.verify().ok
    assert all(s.read_bytes() == b"not a pack" for s in strays)
    assert (packed.path / "config.json").is_file()


def test_the_index_reads_a_copy_in_a_sound_pack_before_one_in_a_damaged_pack() -> None:
    index = packs.PackIndex()
    index.add_pieces("a", [PackEntries("aa" * 32, 100, [("11" * 32, 0, 10)])])
    index.add_pieces("b", [PackEntries("bb" * 32, 100, [("11" * 32, 20, 10)])])
    assert index.find("11" * 32) == ("aa" * 32, 0, 10)
    assert index.find("11" * 32, frozenset({"aa" * 32})) == ("bb" * 32, 20, 10)
    assert index.find("11" * 32, lambda: frozenset({"aa" * 32, "bb" * 32}))[0] == "aa" * 32
    assert index.copies() == 1 and len(index) == 1
    table = packs.encode_index([PackEntries("cc" * 32, 100, [("11" * 32, 50, 10)])])
    index.add_table("c", table)
    assert index.find("11" * 32, frozenset({"aa" * 32, "bb" * 32})) == ("cc" * 32, 50, 10)


def test_an_object_in_two_packs_reads_from_the_sound_one(packed: Repository) -> None:
    """Whichever copy the index lists first, a damaged pack's copy is read only when no
    sound pack holds the object (the state a prune killed after its new index leaves)."""
    data = b"stored twice " * 40
    stored_in_two_packs(packed, data)
    digest = sha(data)
    primary, offset, _ = reopen(packed).objects.pack_index().find(digest.split(":")[1]) or (
        "",
        0,
        0,
    )
    path = packed.path / packs.pack_key(primary)
    path.write_bytes(path.read_bytes()[:offset])  # the first copy's pack is cut short
    third = reopen(packed)
    assert third.objects.has(digest)
    assert third.get_bytes(digest) == data
    assert not third.objects.location(digest).startswith(packs.pack_key(primary))


def test_a_stray_name_among_the_index_pieces_stops_prune_naming_it(packed: Repository) -> None:
    """``packs/index/`` holds pieces named by their hash only: another name (``..`` in it)
    is no piece prune may rewrite away, so it stops before deleting anything."""
    packed_snapshot(packed, CONTENTS)
    stray = packed.path / "packs" / "index" / "..evil"
    stray.write_bytes(b"not a piece")
    damage(data_pack(packed), "missing")
    before = sorted(p.name for p in packed.path.rglob("*"))
    with pytest.raises(IntegrityError, match="not named like a pack index"):
        reopen(packed).prune()
    assert sorted(p.name for p in packed.path.rglob("*")) == before
