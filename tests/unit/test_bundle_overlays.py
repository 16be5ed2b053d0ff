"""Format 2.1: a list stored as its parent's full list plus an overlay of what changed
(docs/design/0007, "Overlays"): the merge, the writer's choice, readers, prune, pack and
hostile overlays."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import SOURCE, at, new_repo
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.bundle import Repository, trees
from amlport.errors import IntegrityError
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, RewriteRecord

# --- the merge: pure -------------------------------------------------------------------------

entries = st.lists(st.sampled_from("abcdefgh"), max_size=40)


@given(old=entries, new=entries)
@settings(max_examples=300, deadline=None)
def test_applying_the_diff_of_two_lists_gives_the_second(old: list[str], new: list[str]) -> None:
    edits = trees.diff_edits(old, new, new)
    assert trees.check_edits([list(e) for e in edits], len(old), "t") == edits
    assert list(trees.apply_edits(old, edits)) == new


@given(old=entries, data=st.data())
@settings(max_examples=200, deadline=None)
def test_a_diff_counted_from_an_offset_applies_there(old: list[str], data: Any) -> None:
    cut = data.draw(st.integers(0, len(old)))
    new_tail = data.draw(entries)
    edits = trees.diff_edits(old[cut:], new_tail, new_tail, at=cut)
    assert list(trees.apply_edits(old, edits)) == old[:cut] + new_tail


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("nope", "not a list"),
        ([[0, 1]], "malformed edit"),
        ([[0, -1, []]], "malformed edit"),
        ([[True, 0, ["x"]]], "malformed edit"),
        ([[0, 1, "x"]], "malformed edit"),
        ([[3, 0, ["x"]], [1, 0, ["y"]]], "out of order"),
        ([[1, 0, ["x"]], [1, 0, ["y"]]], "out of order"),  # two edits at one place
        ([[0, 3, []], [2, 0, ["y"]]], "overlap"),  # inside what the first removed
        ([[4, 2, []]], "outside its base"),
        ([[2, 0, []]], "empty"),
    ],
)
def test_hostile_edits_are_refused(raw: Any, says: str) -> None:
    with pytest.raises(IntegrityError, match=says):
        trees.check_edits(raw, 5, "overlay")


# --- the writer's choice and the reader's merge ----------------------------------------------


def files(repo: Repository, n: int, changed: set[int] = frozenset(), gone: set[int] = frozenset(),
          added: int = 0) -> list[FileEntry]:  # fmt: skip
    out = []
    for i in [*range(n), *range(10**6, 10**6 + added)]:
        if i in gone:
            continue
        data = f"file {i}{' v2' if i in changed else ''}".encode()
        path = f"files/workspaceblobstore/azureml/run{i // 50:05d}/outputs/f{i:07d}.txt"
        out.append(FileEntry(path, repo.put_bytes(data), len(data)))
    return sorted(out, key=lambda f: f.path)


def synthetic_manifest(fs: list[FileEntry], created: str, parent: str | None = None) -> Manifest:
    runs = sorted({f.path.rsplit("/", 2)[0] for f in fs})
    assets = [
        AssetEntry(kind="run", name=r.rsplit("/", 1)[1], id=f"run:{r.rsplit('/', 1)[1]}",
                   files=[f.path for f in fs if f.path.startswith(r + "/")])
        for r in runs
    ]  # fmt: skip
    rewrites = [RewriteRecord(f.path, "/uri", "azureml://" + "x" * 40, "y", "uri") for f in fs[::7]]
    return Manifest(source=dict(SOURCE), files=fs, assets=assets, created=created, parent=parent,
                    rewrites=rewrites, warnings=[f"warn {f.path}" for f in fs[::50]])  # fmt: skip


def stored(repo: Repository) -> dict[str, int]:
    return {d: repo.objects.size(d) or 0 for d in repo.objects.iter_digests()}


def same(a: Manifest, b: Manifest) -> bool:
    skip = ("snapshot_id", "created", "parent")
    return {k: v for k, v in a.to_dict().items() if k not in skip} == {
        k: v for k, v in b.to_dict().items() if k not in skip
    }


def test_a_small_change_is_an_overlay_that_reads_as_the_full_list(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 5000), at(0)))
    before = stored(repo)
    changed = synthetic_manifest(
        files(repo, 5000, changed={7, 2500, 4999}, gone={100}, added=2), at(1)
    )
    changed.parent = first
    second = repo.write_snapshot(changed)
    root = repo.snapshots.read_root(second)
    assert root["format"] == trees.ROOT_FORMAT_OVERLAYS
    for key in ("files", "assets", "rewrites", "warnings"):
        ref = root["lists"][key]
        assert trees.is_overlay(ref), key
        assert ref["base"] == repo.snapshots.read_root(first)["lists"][key]["node"]
    assert same(repo.load_snapshot(second), changed)
    new = {d: s for d, s in stored(repo).items() if d not in before}
    data = {f.digest for f in changed.files} - set(before)
    assert len(data) == 5
    assert len(set(new) - data) == 4  # one overlay per changed list: no chunk, no node
    assert sum(s for d, s in new.items() if d not in data) < 4096
    assert repo.verify().ok


def test_an_unchanged_list_keeps_its_node_and_an_unchanged_overlay_adds_nothing(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 2000), at(0)))
    second = repo.write_snapshot(synthetic_manifest(files(repo, 2000, changed={5}), at(1), first))
    before = stored(repo)
    third = repo.write_snapshot(synthetic_manifest(files(repo, 2000, changed={5}), at(2), second))
    assert stored(repo) == before  # the same overlays: only a root
    lists1, lists3 = (repo.snapshots.read_root(s)["lists"] for s in (first, third))
    assert lists3["files"] == repo.snapshots.read_root(second)["lists"]["files"]
    assert lists3["redactions"] == lists1["redactions"]  # not an overlay: the same node


def test_the_base_is_always_a_full_list(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 2000), at(0)))
    second = repo.write_snapshot(synthetic_manifest(files(repo, 2000, changed={5}), at(1), first))
    wanted = synthetic_manifest(files(repo, 2000, changed={5, 1500}), at(2), second)
    third = repo.write_snapshot(wanted)
    base = repo.snapshots.read_root(first)["lists"]["files"]["node"]
    assert repo.snapshots.read_root(third)["lists"]["files"]["base"] == base  # never the overlay
    assert same(repo.load_snapshot(third), wanted)


@pytest.mark.parametrize("seed", range(6))
def test_random_edits_of_every_list_read_back_exactly(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    repo = new_repo(tmp_path)
    n = rng.randrange(200, 3000)
    parent = repo.write_snapshot(synthetic_manifest(files(repo, n), at(0)))
    for day in range(1, 4):
        changed = {rng.randrange(n) for _ in range(rng.randrange(0, 30))}
        gone = {rng.randrange(n) for _ in range(rng.randrange(0, 10))}
        wanted = synthetic_manifest(
            files(repo, n, changed, gone, rng.randrange(0, 5)), at(day), parent
        )
        parent = repo.write_snapshot(wanted)
        assert same(repo.load_snapshot(parent), wanted)
    assert repo.verify().ok


def test_an_overlay_larger_than_its_chunks_or_the_cap_is_a_full_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 2000), at(0)))
    every = synthetic_manifest(files(repo, 2000, changed=set(range(2000))), at(1), first)
    root = repo.snapshots.read_root(repo.write_snapshot(every))
    assert not trees.is_overlay(root["lists"]["files"])  # every chunk changed: compacted
    monkeypatch.setattr(trees, "MAX_OVERLAY_TEXT", 100)
    small = synthetic_manifest(files(repo, 2000, changed={3}), at(2), first)
    root = repo.snapshots.read_root(repo.write_snapshot(small))
    assert root["format"] == trees.ROOT_FORMAT and not trees.is_overlay(root["lists"]["files"])


# --- prune, forget, pack ---------------------------------------------------------------------


def test_pruning_the_base_snapshot_keeps_what_the_overlay_needs(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 3000), at(0)))
    old = {f.path: f.digest for f in repo.load_snapshot(first).files}
    wanted = synthetic_manifest(files(repo, 3000, changed={10}, gone={20}), at(1), first)
    second = repo.write_snapshot(wanted)
    base = repo.snapshots.read_root(second)["lists"]["files"]["base"]
    repo.snapshots.delete(first)
    report = repo.prune()
    assert repo.objects.has(base)
    # the old objects of the changed and the removed file are garbage, nothing else
    p10, p20 = (next(p for p in old if p.endswith(f"f{i:07d}.txt")) for i in (10, 20))
    assert sorted(report.removed) == sorted({old[p10], old[p20]})
    assert same(repo.load_snapshot(second), wanted)
    assert repo.verify().ok
    assert repo.prune().removed == []  # a second prune finds nothing more


def test_the_prune_estimate_of_a_forget_counts_the_bases(tmp_path: Path) -> None:
    from amlport.backup.forget import estimate_prune

    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 1000), at(0)))
    repo.write_snapshot(synthetic_manifest(files(repo, 1000, changed={1}), at(1), first))
    plan = repo.forget(keep_last=1, dry_run=True)
    estimate = estimate_prune(repo, plan)
    repo.forget(keep_last=1)
    assert sorted(repo.prune().removed) == sorted(estimate.removed)
    assert len(estimate.removed) == 1  # the changed file's old object
    assert repo.verify().ok


def test_a_pack_of_an_overlay_snapshot_carries_its_base(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(synthetic_manifest(files(repo, 1500), at(0)))
    wanted = synthetic_manifest(files(repo, 1500, changed={2}), at(1), first)
    second = repo.write_snapshot(wanted)
    report = repo.pack(second, tmp_path / "p.tar.gz")
    assert report.pieces > 4
    Repository.unpack(tmp_path / "p.tar.gz", tmp_path / "copy")
    copy = Repository.open(tmp_path / "copy")
    assert same(copy.load_snapshot(second), wanted)
    assert copy.verify().ok


# --- hostile overlays -----------------------------------------------------------------------


def forged(repo: Repository, edit: Any = None, fmt: str | None = None) -> str:
    """An overlay snapshot whose overlay piece and root's list are edited (``edit(piece,
    ref)``), each stored under its own name: a "valid" forgery that only the overlay's
    checks can refuse."""
    first = repo.write_snapshot(synthetic_manifest(files(repo, 800), at(0)))
    second = repo.write_snapshot(synthetic_manifest(files(repo, 800, changed={3}), at(1), first))
    root = repo.snapshots.read_root(second)
    ref = dict(root["lists"]["files"])
    piece = trees.parse_piece(repo.objects.get_meta(ref["overlay"], where="t"),
                              trees.OVERLAY_FORMAT, "t")  # fmt: skip
    if edit is not None:
        edit(piece, ref)
        ref["overlay"] = repo.objects.put_meta(trees.dumps(piece).encode())[0]
    root["lists"]["files"] = ref
    if fmt is not None:
        root["format"] = fmt
    plain = trees.dumps(root).encode()
    codec = repo.objects.codec
    sid = codec.meta_name(plain)
    repo.store.create(repo.snapshots.root_key(sid), codec.pack_meta(plain, sid))
    repo.snapshots.delete(second)
    return sid


def _set(key: str, value: Any) -> Any:
    return lambda piece, ref: piece.__setitem__(key, value)


def _base_is_an_overlay(piece: dict[str, Any], ref: dict[str, Any]) -> None:
    piece["base"] = ref["base"] = ref["overlay"]  # the genuine overlay: a chain of two


def _base_is_missing(piece: dict[str, Any], ref: dict[str, Any]) -> None:
    piece["base"] = ref["base"] = "sha256:" + "0" * 64


def _twice(piece: dict[str, Any], ref: dict[str, Any]) -> None:
    at_, removed, put = piece["edits"][0]
    piece["edits"] = [[at_, removed, put * 2]]  # the changed file's entry, twice
    piece["count"] += len(put)
    ref["count"] += len(put)


def _huge(piece: dict[str, Any], ref: dict[str, Any]) -> None:
    piece["pad"] = "x" * (trees.MAX_OVERLAY_BYTES + 1)


@pytest.mark.parametrize(
    ("edit", "fmt", "says"),
    [
        (_base_is_an_overlay, None, "expected a amlport.list/2 piece, found 'amlport.overlay/2'"),
        (_base_is_missing, None, "missing"),
        (_set("count", 801), None, "counts disagree"),
        (_set("base_count", 799), None, "counts disagree"),
        (_set("list", "assets"), None, "not an overlay of list 'files'"),
        (_set("base", "sha256:" + "1" * 64), None, "not an overlay of list"),
        (_set("edits", [[0, 0, []]]), None, "empty"),
        (_set("edits", [[799, 2, []]]), None, "outside its base"),
        (_set("format", "amlport.overlay/3"), None, "expected a amlport.overlay/2"),
        (_twice, None, "more than once"),
        (_huge, None, "more than"),
        (None, trees.ROOT_FORMAT, "holds an overlay list"),
    ],
)
def test_hostile_overlays_are_integrity_errors(
    tmp_path: Path, edit: Any, fmt: str | None, says: str
) -> None:
    repo = new_repo(tmp_path)
    sid = forged(repo, edit, fmt)
    with pytest.raises(IntegrityError, match=says):
        repo.load_snapshot(sid)
    assert not repo.verify().ok
    if edit is not _twice:  # a well-formed list whose entries disagree: the readers refuse it
        with pytest.raises(IntegrityError):
            repo.prune(dry_run=True)  # prune stops rather than guess what the snapshot needs
