"""Overlay compaction over a long series of nightly backups (docs/design/0007, *Overlay
compaction (D, session 5)*): each night changes a different 1 % of the files; the
repository's growth of every night stays within 2 x the bytes that changed + 64 KiB (issue
18's target), every snapshot reads back as the manifest that was written, and a prune after
forgetting any subset keeps every kept snapshot whole.

A simulation over ``bundle/trees.py`` through the repository (real pieces, real objects;
sizes in bytes, no time). Before the rule, the overlay carried every change since its base
until a full write of every chunk changed since then: night 23 of this series grew by
~291 KB against a bound of ~139 KB."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from helpers.bundle import SOURCE, at, new_repo

from amlport.bundle import Repository, trees
from amlport.model.manifest import AssetEntry, FileEntry, Manifest, RewriteRecord

FILES = 5000
NIGHTS = 30
SHARE = 0.01  # of the files changed each night, a different share each night
RUN = 50  # files per run folder


def _content(i: int, version: int) -> bytes:
    """File ``i``'s bytes at ``version``: 200-1,100 bytes that do not compress."""
    return random.Random(i * 1000 + version).randbytes(200 + (i * 37) % 900)


def _path(i: int) -> str:
    return f"files/workspaceblobstore/azureml/run{i // RUN:05d}/outputs/f{i:07d}.txt"


def _manifest(fs: list[FileEntry], created: str, parent: str | None) -> Manifest:
    runs: dict[str, list[str]] = {}
    for f in fs:
        runs.setdefault(f.path.rsplit("/", 2)[0], []).append(f.path)
    assets = [
        AssetEntry(kind="run", name=r.rsplit("/", 1)[1], id=f"run:{r.rsplit('/', 1)[1]}",
                   files=paths)
        for r, paths in sorted(runs.items())
    ]  # fmt: skip
    rewrites = [RewriteRecord(f.path, "/uri", "azureml://" + f.digest, "y", "uri") for f in fs[::7]]
    warnings = [f"warn {f.path} {f.digest[:16]}" for f in fs[::50]]
    return Manifest(source=dict(SOURCE), files=fs, assets=assets, created=created, parent=parent,
                    rewrites=rewrites, warnings=warnings)  # fmt: skip


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _same(a: Manifest, b: Manifest) -> bool:
    skip = ("snapshot_id", "created")
    return {k: v for k, v in a.to_dict().items() if k not in skip} == {
        k: v for k, v in b.to_dict().items() if k not in skip
    }


@pytest.fixture(scope="module")
def series(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], list[Manifest]]:
    """A repository after a first backup and NIGHTS nightly ones, each night's growth
    checked against the bound as it is written."""
    root = tmp_path_factory.mktemp("compaction")
    repo = new_repo(root)
    versions = [0] * FILES
    entries = []
    for i in range(FILES):
        data = _content(i, 0)
        entries.append(FileEntry(_path(i), repo.put_bytes(data), len(data)))
    wanted = [_manifest(list(entries), at(0), None)]
    ids = [repo.write_snapshot(wanted[0])]
    order = list(range(FILES))
    random.Random(1).shuffle(order)  # each night a different share, spread over the runs
    share = int(FILES * SHARE)
    growth: list[tuple[int, int, int, bool]] = []
    for night in range(1, NIGHTS + 1):
        before = _size(root / "repo")
        changed = 0
        for i in order[(night - 1) * share % FILES :][:share]:
            versions[i] += 1
            data = _content(i, versions[i])
            entries[i] = FileEntry(_path(i), repo.put_bytes(data), len(data))
            changed += len(data)
        manifest = _manifest(list(entries), at(night), ids[-1])
        ids.append(repo.write_snapshot(manifest))
        wanted.append(manifest)
        grown = _size(root / "repo") - before
        overlaid = trees.is_overlay(repo.snapshots.read_root(ids[-1])["lists"]["files"])
        growth.append((night, grown, 2 * changed + (64 << 10), overlaid))
    over = [g for g in growth if g[1] > g[2]]
    assert not over, f"nights over 2 x changed + 64 KiB (night, growth, bound, overlay): {over}"
    assert sum(g[3] for g in growth) >= NIGHTS // 2  # overlays still carry most nights
    return root / "repo", ids, wanted


def test_every_night_grows_at_most_twice_the_changed_bytes_plus_64_kib(
    series: tuple[Path, list[str], list[Manifest]],
) -> None:
    path, ids, wanted = series
    repo = Repository.open(path)
    for sid, manifest in zip(ids, wanted, strict=True):
        assert _same(repo.load_snapshot(sid), manifest)  # what a full write would hold
    roots = [repo.snapshots.read_root(sid)["lists"]["files"] for sid in ids[1:]]
    bases = {r["base"] for r in roots if trees.is_overlay(r)}
    heads = {repo.snapshots.read_root(sid)["lists"]["files"].get("node") for sid in ids}
    assert bases - heads  # some bases are folded lists, no snapshot's own list
    assert repo.verify().ok


@pytest.mark.parametrize(
    "forget",
    [
        pytest.param(lambda n: set(range(0, n, 2)), id="every-other"),
        pytest.param(lambda n: set(range(n // 2)), id="oldest-half"),
        pytest.param(lambda n: set(random.Random(7).sample(range(n), n * 2 // 3)), id="random"),
        pytest.param(lambda n: set(range(n - 1)), id="all-but-the-last"),
    ],
)
def test_a_prune_after_forgetting_any_subset_keeps_every_kept_snapshot_whole(
    series: tuple[Path, list[str], list[Manifest]], tmp_path: Path, forget: object
) -> None:
    path, ids, wanted = series
    shutil.copytree(path, tmp_path / "repo")
    repo = Repository.open(tmp_path / "repo")
    gone = forget(len(ids))  # type: ignore[operator]
    for k in gone:
        repo.snapshots.delete(ids[k])
    report = repo.prune()
    assert report.removed  # the old objects of the changed files at least
    assert repo.verify().ok
    for k, sid in enumerate(ids):
        if k not in gone:
            assert _same(repo.load_snapshot(sid), wanted[k])
    assert repo.prune().removed == []  # a second prune finds nothing more


def test_prune_reads_each_files_chunk_of_a_base_once(tmp_path: Path) -> None:
    """The base of an overlay files list that is also a kept snapshot's own list: its
    chunks are read once by prune (before: once by each), but the one chunk holding the
    entry the overlay removed, which the full list must still read whole."""
    repo = new_repo(tmp_path)
    entries = []
    for i in range(3000):
        data = _content(i, 0)
        entries.append(FileEntry(_path(i), repo.put_bytes(data), len(data)))
    first = repo.write_snapshot(_manifest(list(entries), at(0), None))
    data = _content(10, 1)
    entries[10] = FileEntry(_path(10), repo.put_bytes(data), len(data))
    second = repo.write_snapshot(_manifest(list(entries), at(1), first))
    ref = repo.snapshots.read_root(second)["lists"]["files"]
    assert trees.is_overlay(ref)
    base = {
        "node": ref["base"],
        "count": repo.snapshots.read_root(first)["lists"]["files"]["count"],
    }
    chunks = {d for d, _ in trees.TreeReader(repo.objects).node(base, "files", "t")}
    reads: dict[str, int] = {}
    get_meta = repo.objects.get_meta

    def counted(digest: str, *args: object, **kw: object) -> bytes:
        reads[digest] = reads.get(digest, 0) + 1
        return get_meta(digest, *args, **kw)  # type: ignore[arg-type]

    repo.objects.get_meta = counted  # type: ignore[method-assign]
    repo.prune()
    again = sorted(reads.get(d, 0) for d in chunks)
    assert again[:-1] == [1] * (len(chunks) - 1) and again[-1] <= 2, again
