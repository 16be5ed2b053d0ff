"""Repository format 2: what a snapshot costs, how its pieces are cut, and hostile pieces."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import zstandard
from helpers.bundle import (
    SOURCE,
    at,
    manifest,
    new_repo,
    object_span,
    plain_only,
    sha,
    snapshot,
)
from helpers.encrypted_mode import stored_contents
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.bundle import Repository, envelope, trees
from amlport.bundle.codec import META_DOMAIN, PLAIN
from amlport.errors import AmlportError, ExitCode, IntegrityError
from amlport.model.manifest import AssetEntry, FileEntry, Manifest


def big_manifest(repo: Repository, n: int, *, changed: int | None = None, created: str) -> Manifest:
    """``n`` files (one stored object each); file ``changed`` gets other bytes."""
    files = []
    with repo.store.synced_together():  # one fsync per folder, not per object
        for i in range(n):
            data = f"file {i}{' v2' if i == changed else ''}".encode()
            digest = repo.put_bytes(data)
            path = f"files/workspaceblobstore/azureml/run{i // 50:04d}/outputs/f{i:05d}.txt"
            files.append(FileEntry(path, digest, len(data)))
    runs = sorted({f.path.rsplit("/", 2)[0] for f in files})
    assets = [
        AssetEntry(kind="run", name=r.rsplit("/", 1)[1], id=f"run:{r.rsplit('/', 1)[1]}",
                   files=[f.path for f in files if f.path.startswith(r + "/")])
        for r in runs
    ]  # fmt: skip
    return Manifest(source=dict(SOURCE), files=files, assets=assets, created=created)


def stored_sizes(repo: Repository) -> dict[str, int]:
    return {d: repo.objects.size(d) or 0 for d in repo.objects.iter_digests()}


def root_size(repo: Repository, sid: str) -> int:
    return (repo.path / "snapshots" / sid).stat().st_size


def test_an_unchanged_snapshot_adds_one_small_root_and_no_object(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    first = repo.write_snapshot(big_manifest(repo, 5000, created=at(0)))
    before = stored_sizes(repo)
    second = repo.write_snapshot(big_manifest(repo, 5000, created=at(1)))
    assert second != first
    assert stored_sizes(repo) == before  # every piece and data object is shared
    assert root_size(repo, second) < 16 * 1024
    assert repo.snapshots.pieces(first)[1] == repo.snapshots.pieces(second)[1]
    assert repo.load_snapshot(second).files == repo.load_snapshot(first).files


def test_one_changed_file_adds_its_chunks_and_nodes_only(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    repo.write_snapshot(big_manifest(repo, 5000, created=at(0)))
    before = stored_sizes(repo)
    sid = repo.write_snapshot(big_manifest(repo, 5000, changed=2500, created=at(1)))
    added = {d: s for d, s in stored_sizes(repo).items() if d not in before}
    data = {sha(b"file 2500 v2")}
    pieces = set(added) - data
    assert set(added) >= data
    # the files chunk and node, the run's asset chunk and node: at most a few pieces
    assert 1 <= len(pieces) <= 6, sorted(pieces)
    assert sum(added[p] for p in pieces) < 64 * 1024
    loaded = repo.load_snapshot(sid)
    assert loaded.file("files/workspaceblobstore/azureml/run0050/outputs/f02500.txt").digest == sha(
        b"file 2500 v2"
    )  # type: ignore[union-attr]


def test_listing_reads_roots_only(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = repo.write_snapshot(big_manifest(repo, 300, created=at(0)))
    _, pieces = repo.snapshots.pieces(sid)
    for path in {object_span(repo, piece)[0] for piece in pieces}:
        path.unlink()  # without its pieces (their files or packs) it still lists, with totals
    [info] = repo.list_snapshots()
    assert (info.id, info.files, info.assets, info.counts) == (sid, 300, 6, {"run": 6})
    with pytest.raises(IntegrityError, match="missing"):
        repo.load_snapshot(sid)
    assert not repo.verify().ok


@settings(max_examples=40, deadline=None)
@given(
    paths=st.lists(st.text("abcdef/", min_size=1, max_size=12), min_size=1, max_size=400,
                   unique=True),
    insert=st.text("abcdefgh/", min_size=1, max_size=12),
)  # fmt: skip
def test_a_change_touches_at_most_two_chunks(paths: list[str], insert: str) -> None:
    """Cuts are made by the entries' own keys: adding one entry leaves every other chunk as
    it was, except the one it lands in (which may merge with its neighbour)."""

    def chunks(keys: list[str]) -> list[str]:
        out: list[list[str]] = [[]]
        for key in sorted(keys):
            out[-1].append(key)
            if trees._ends_chunk("files", {"path": key}, 16):
                out.append([])
        return ["\n".join(c) for c in out if c]

    before = chunks(paths)
    after = chunks([*paths, insert]) if insert not in paths else before
    assert len(set(after) - set(before)) <= 2


def test_piece_names_live_apart_from_data(tmp_path: Path) -> None:
    """A workspace file whose bytes equal a piece never shares the piece's name."""
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"a"})
    for piece in repo.snapshots.pieces(sid)[1]:
        plain = repo.objects.get_meta(piece, where="test")
        assert repo.put_bytes(plain) != piece
        assert repo.codec.meta_name(plain) == piece.split(":")[1]  # keyed when encrypted
    assert repo.verify().ok and repo.load_snapshot(sid).files[0].path == "files/a"


def test_pieces_are_compressed_and_record_their_codec(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = repo.write_snapshot(big_manifest(repo, 2000, created=at(0)))
    _, pieces = repo.snapshots.pieces(sid)
    spans = {p: object_span(repo, p) for p in pieces}  # packed (the default) or loose
    stored = sum(length for _, _, length in spans.values())
    plain = sum(len(repo.objects.get_meta(p, where="t")) for p in pieces)
    assert stored * 3 < plain  # manifest JSON compresses well
    for path, offset, length in spans.values():
        header = envelope.parse_header(path.read_bytes()[offset : offset + length], where="t")
        assert header.codec == envelope.CODEC_ZSTD and header.sealed == repo.encrypted


# --- hostile pieces -----------------------------------------------------------------------


def plant_piece(repo: Repository, stored: bytes, name: str) -> None:
    path = repo.object_path(f"sha256:{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(stored)


def test_a_decompression_bomb_is_refused_before_it_grows(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (200 << 20))  # 200 MiB of zeros
    name = "ab" * 32
    for length in (100, 200 << 20):  # a small lie, and a truthful length over the limit
        plant_piece(repo, envelope.Header(envelope.CODEC_ZSTD, False, length).pack() + bomb, name)
        with pytest.raises(IntegrityError) as err:
            repo.objects.get_meta(f"sha256:{name}", where="test")
        assert err.value.exit_code == ExitCode.INTEGRITY


@pytest.mark.parametrize(
    "stored, says",
    [
        (b"not an envelope at all", "not an amlport object envelope"),
        (envelope.MAGIC + bytes([9, 0, 0]) + b"\0" * 8, "not known"),  # future version
        (envelope.MAGIC + bytes([1, 7, 0]) + b"\0" * 8, "not known"),  # unknown codec
        # plain pieces planted in a repository that expects sealed ones fail otherwise
        pytest.param(
            envelope.Header(0, False, 10).pack() + b"short", "envelope says 10", marks=plain_only
        ),
        (envelope.Header(1, False, 10).pack() + b"\x28\xb5\x2f\xfdjunk", "damaged"),
        pytest.param(envelope.Header(0, True, 4).pack() + b"abcd", "encrypted", marks=plain_only),
    ],
)
def test_malformed_envelopes_are_named(tmp_path: Path, stored: bytes, says: str) -> None:
    repo = new_repo(tmp_path)
    plant_piece(repo, stored, "cd" * 32)
    with pytest.raises(IntegrityError, match=says):
        repo.objects.get_meta("sha256:" + "cd" * 32, where="test")


def plant_root(repo: Repository, root: object) -> str:
    plain = json.dumps(root).encode()
    sid = PLAIN.meta_name(plain)
    (repo.path / "snapshots" / sid).write_bytes(envelope.wrap(plain, compressed=True))
    return sid


def hostile_roots(repo: Repository) -> dict[str, object]:
    good = json.loads(
        envelope.unwrap(
            (repo.path / "snapshots" / snapshot(repo, {"files/a": b"a"})).read_bytes(),
            where="t",
            limit=1 << 20,
        )
    )
    deep: object = []
    for _ in range(200):  # deeper than any parser of amlport accepts
        deep = [deep]
    return {
        "not-a-root": {"format": "amlport.chunk/2"},
        "no-lists": {"format": trees.ROOT_FORMAT, "manifest": good["manifest"]},
        "bad-totals": {**good, "lists": {**good["lists"], "files": {
            **good["lists"]["files"], "count": "many"}}},
        "node-not-a-digest": {**good, "lists": {**good["lists"], "files": {"node": "../x"}}},
        "deep": {**good, "lineage": {"graph": deep}},
        "count-lies": {**good, "lists": {**good["lists"], "files": {
            **good["lists"]["files"], "count": 7}}},
    }  # fmt: skip


@plain_only  # the roots are planted in the plain codec; sealed ones: test_crypto_objects.py
def test_hostile_roots_are_integrity_errors_never_tracebacks(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    for name, root in hostile_roots(repo).items():
        sid = plant_root(repo, root)
        with pytest.raises(IntegrityError):
            repo.load_snapshot(sid)
        with pytest.raises(IntegrityError):
            repo.snapshots.pieces(sid)
        report = repo.verify(sid)
        assert not report.ok, name
        (repo.path / "snapshots" / sid).unlink()


def test_a_root_named_for_other_bytes_is_damaged(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"a"})
    other = snapshot(repo, {"files/b": b"b"}, created=at(1))
    (repo.path / "snapshots" / sid).write_bytes((repo.path / "snapshots" / other).read_bytes())
    with pytest.raises(IntegrityError, match="damaged"):
        repo.load_snapshot(sid)
    assert META_DOMAIN.startswith(b"amlport.meta/2")


def test_hostile_names_round_trip_in_pieces(tmp_path: Path) -> None:
    """Paths with brackets, '..' inside a segment, control characters and 1,024 characters
    survive the pieces exactly (the path checks are the manifest's, unchanged)."""
    repo = new_repo(tmp_path)
    names = {
        "files/ws/a[1]/b]": b"1",
        "files/ws/x..y/z": b"2",
        "files/ws/ctl\x01\x1b[31m/f": b"3",
        "files/ws/" + "n" * 1015: b"4",
        "files/ws/back\\slash//empty": b"5",
    }
    sid = snapshot(repo, names)
    assert sorted(f.path for f in repo.load_snapshot(sid).files) == sorted(names)
    m = manifest(repo, {"files/ws/../escape": b"6"})
    with pytest.raises(IntegrityError, match="not a safe bundle path"):
        repo.write_snapshot(m)


def test_long_lists_get_sub_nodes_and_a_node_loop_is_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = repo.write_snapshot(big_manifest(repo, 5000, created=at(0)))
    root = repo.snapshots.read_root(sid)
    top = json.loads(repo.objects.get_meta(root["lists"]["files"]["node"], where="t"))
    assert "nodes" in top and len(top["nodes"]) <= trees.FANOUT  # chunks grouped below it
    assert len(repo.load_snapshot(sid).files) == 5000
    # a node that names itself (or nests without end) stops at MAX_DEPTH, as an error
    looped = {"format": trees.NODE_FORMAT, "list": "files", "count": 5000}
    plain = json.dumps(looped).encode()  # completed below with its own name
    name = PLAIN.meta_name(plain)
    for _ in range(3):  # a fixed point is out of reach: chain nodes instead
        node = {**looped, "nodes": [[f"sha256:{name}", 5000]]}
        plain = json.dumps(node).encode()
        name = PLAIN.meta_name(plain)
        plant_piece(repo, envelope.wrap(plain, compressed=True), name)
    bad = {**root, "lists": {**root["lists"], "files": {**root["lists"]["files"],
                                                         "node": f"sha256:{name}"}}}  # fmt: skip
    with pytest.raises(IntegrityError):
        repo.load_snapshot(plant_root(repo, bad))


def test_the_prune_estimate_of_a_dry_run_equals_what_prune_removes(tmp_path: Path) -> None:
    """forget --dry-run --prune once counted every piece of the kept snapshots as garbage."""
    from amlport.backup.forget import estimate_prune

    repo = new_repo(tmp_path)
    snapshot(repo, {"files/a": b"old", "files/b": b"same"}, created=at(0))
    kept = snapshot(repo, {"files/a": b"new", "files/b": b"same"}, created=at(1))
    plan = repo.forget(keep_last=1, dry_run=True)
    estimate = estimate_prune(repo, plan)
    assert not set(estimate.removed) & repo.snapshots.pieces(kept)[1]
    repo.forget(keep_last=1)
    actual = repo.prune()
    assert sorted(estimate.removed) == sorted(actual.removed)
    assert sha(b"old") in actual.removed and repo.verify().ok


@pytest.mark.parametrize("where", ["graph", "node", "warning", "selection"])
def test_a_secret_anywhere_in_a_snapshot_stops_the_write(tmp_path: Path, where: str) -> None:
    """Every piece and the root pass the one secret detector before anything is stored."""
    signature = (
        "https://acct.blob.core.windows.net/c/b?sv=2022&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
    )
    repo = new_repo(tmp_path)
    m = manifest(repo, {"files/a": b"a"})
    m.lineage = {"directed": True, "multigraph": True, "graph": {}, "nodes": [], "links": []}
    if where == "graph":
        m.lineage["graph"] = {"note": signature}
    elif where == "node":
        m.lineage["nodes"] = [{"id": "data:x", "uri": signature}]
    elif where == "warning":
        m.warnings = [f"could not read {signature}"]
    else:
        m.selection = {"select": [signature] + [f"run:{i}" for i in range(500)]}
    with pytest.raises(AmlportError, match="secret"):
        repo.write_snapshot(m)
    assert repo.list_snapshots() == []  # no root; no piece holds the value either
    if repo.encrypted:  # every object and piece decrypted
        assert not [p for p in stored_contents(repo.path) if b"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA" in p]
        return
    for path in (repo.path / "objects").rglob("*"):
        if path.is_file() and envelope.has_magic(path.read_bytes()):
            plain = envelope.unwrap(path.read_bytes(), where="t", limit=1 << 26)
            assert b"Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA" not in plain
