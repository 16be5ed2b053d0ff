"""Export to a bundle repository: closure, rewriting, secrets, incremental, verify, pack."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers.cliutil import amlport

from amlport.bundle import Repository
from amlport.export import ExportRequest, complete_previous, run_export
from amlport.secrets import has_secret
from amlport.storage.local import LocalSource

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
SOURCE_NAMES = ("azmlfromscratchstr", "azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97")


def _export(name: str, repo: Path, **kw: object) -> object:
    return run_export(LocalSource(WS / name), repo, ExportRequest(**kw))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def designer_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("bundle") / "repo"
    res = amlport("export", str(WS / "designer-autoprice"), "--to", str(repo), "--json")
    assert res.returncode in (0, 1), res.stderr
    return repo


def test_designer_export_then_deep_verify_passes(designer_repo: Path) -> None:
    res = amlport("verify", str(designer_repo), "--deep", "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(res.stdout)
    # two v2 documents: the trained model's and its environment's (the untrained learner is
    # no model since issue 20, so its v2 model YAML is gone)
    assert doc["ok"] and doc["deep"]["checked"] >= 2 and not doc["deep"]["problems"]


def test_designer_bundle_carries_the_trained_model_with_its_closure(designer_repo: Path) -> None:
    repo = Repository.open(designer_repo)
    [info] = repo.list_snapshots()
    manifest = repo.load_snapshot(info.id)
    [model] = [a for a in manifest.assets if a.kind == "model" and "Trained_model" in a.name]
    assert not model.portable and model.attrs["format"] == "ilearner"
    names = {f.rsplit("/", 1)[-1] for f in model.files}
    assert {
        "data.ilearner",
        "data_type.json",
        "Trained_model",
        "score.py",
        "conda_env.yaml",
    } <= names
    assert any(r.startswith("environment:") for r in model.requires)
    assert f"run:{TRAIN}" in model.requires
    kinds = {a.kind for a in manifest.assets}
    assert {"model", "environment", "pipeline", "run"} <= kinds
    pipeline = next(a for a in manifest.assets if a.kind == "pipeline")
    description = repo.read_file(manifest, pipeline.attrs["description"]).decode()
    assert "train_generic_model" in description and "Trained_model" in description


def test_pointer_is_neutral_and_no_source_identity_in_rewritten_files(designer_repo: Path) -> None:
    repo = Repository.open(designer_repo)
    manifest = repo.load_snapshot(repo.list_snapshots()[0].id)
    pointer = next(f for f in manifest.files if f.path.endswith(f"dcid.{TRAIN}/Trained_model"))
    doc = json.loads(repo.read_file(manifest, pointer.path))
    assert doc["Uri"].startswith("azureml://datastores/workspaceblobstore/paths/azureml/")
    assert doc["Account"] is None and doc["Container"] is None and doc["SasToken"] is None
    assert any(r.file == pointer.path for r in manifest.rewrites)
    for entry in manifest.files:
        if entry.rewritten and not entry.path.endswith((".txt", ".log")):
            text = repo.read_file(manifest, entry.path).decode("utf-8", "replace")
            assert not any(n in text for n in SOURCE_NAMES), entry.path


def test_second_export_of_unchanged_source_moves_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    first = _export("sdk-bikeshare", repo)
    second = _export("sdk-bikeshare", repo)
    assert first.stats.new_objects > 0  # type: ignore[attr-defined]
    assert second.stats.new_objects == 0 and second.stats.read_bytes == 0  # type: ignore[attr-defined]
    assert second.parent == first.snapshot_id  # type: ignore[attr-defined]
    snaps = Repository.open(repo).list_snapshots()
    assert len(snaps) == 2
    # The unchanged files' entries are the previous snapshot's own objects (held once).
    before = {id(f) for f in second.previous.files}  # type: ignore[attr-defined]
    now = second.manifest.files  # type: ignore[attr-defined]
    assert now and all(id(f) in before for f in now if not f.path.startswith("assets/"))
    # The transfer read what it carries over, not the assets and lineage (memory); a
    # comparison reads them back, sharing the file list already in memory.
    previous = second.previous  # type: ignore[attr-defined]
    assert previous.assets == [] and previous.lineage == {}
    # … and its paths are the plan's own strings, which the new assets' file lists hold (an
    # asset that lists a file another asset planned first may hold its own copy).
    held: dict[str, set[int]] = {}
    for asset in second.manifest.assets:  # type: ignore[attr-defined]
        for path in asset.files:
            held.setdefault(path, set()).add(id(path))
    shared = [f.path for f in previous.files if f.path in held]
    assert shared and all(id(path) in held[path] for path in shared)
    whole = Repository.open(repo).load_snapshot(first.snapshot_id)  # type: ignore[attr-defined]
    with Repository.open(repo) as store:
        done = complete_previous(store, previous)
    assert done.files is previous.files
    assert done.to_json_bytes() == whole.to_json_bytes()


def test_messy_bundle_holds_no_secret(tmp_path: Path) -> None:
    repo = tmp_path / "messy"
    res = amlport(
        "export",
        str(WS / "messy"),
        "--to",
        str(repo),
        "--include",
        "models,pipelines,environments,runs,data",
    )
    assert res.returncode in (0, 1), res.stderr
    assert "sig=" not in res.stdout + res.stderr
    store = Repository.open(repo)
    manifest = store.load_snapshot(store.list_snapshots()[0].id)
    kinds = {r.kind for r in manifest.redactions}
    assert kinds & {"sas_token", "account_key", "connection_string", "sas_signature"}
    assert not has_secret(manifest.to_json_bytes().decode("utf-8"))  # format 2: compressed
    for path in repo.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("utf-8", "replace")
            assert not has_secret(text), path


def test_dry_run_writes_nothing(tmp_path: Path) -> None:
    repo = tmp_path / "none"
    res = amlport("export", str(WS / "v2-lendingclub"), "--to", str(repo), "--dry-run", "--json")
    assert res.returncode in (0, 1), res.stderr
    assert not repo.exists()
    doc = json.loads(res.stdout)
    assert doc["snapshot"] is None and doc["planned"]["files"] > 0


def test_corrupt_object_makes_verify_exit_4(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    _export("sdk-bikeshare", repo)
    stored = [*(repo / "objects").rglob("*"), *(repo / "packs").glob("??/*")]  # loose, packs
    victim = next(p for p in stored if p.is_file())  # an object file or a pack file
    data = bytearray(victim.read_bytes())
    data[0] ^= 0xFF
    victim.write_bytes(bytes(data))
    res = amlport("verify", str(repo))
    assert res.returncode == 4
    assert victim.name in res.stderr and "Traceback" not in res.stderr


def test_select_one_mlflow_model_brings_its_run_and_environment(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    res = _export(
        "sdk-bikeshare",
        repo,
        select=["model:dcid.gentle_koala_6tq1mw8dx3/model"],
        include=frozenset({"models"}),
    )
    kinds = sorted(a.kind for a in res.assets)  # type: ignore[attr-defined]
    assert kinds.count("model") == 1 and "run" in kinds and "environment" in kinds


def test_pack_unpack_round_trip(designer_repo: Path, tmp_path: Path) -> None:
    sid = Repository.open(designer_repo).list_snapshots()[0].id
    archive = tmp_path / "b.tar.gz"
    assert (
        amlport("pack", str(designer_repo), "--snapshot", sid[:12], "-o", str(archive)).returncode
        == 0
    )
    res = amlport("unpack", str(archive), "--to", str(tmp_path / "copy"))
    assert res.returncode == 0, res.stderr
    assert amlport("verify", str(tmp_path / "copy")).returncode == 0


def test_walk_and_graph_are_gone_before_the_transfer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The inventory and the lineage graph are reference cycles: the export collects them
    once planning is over, so the transfer (the high-water mark at 100k blobs) runs without
    them."""
    import weakref

    from amlport.export import engine
    from amlport.export.writer import BundleWriter

    built: list[weakref.ref[object]] = []
    alive_at_transfer: list[bool] = []
    walk, graph, transfer = engine.walk_with_listing, engine.build_graph, BundleWriter.transfer

    def walk_and_watch(*args: object, **kw: object) -> object:
        inv, listing = walk(*args, **kw)  # type: ignore[arg-type]
        built.append(weakref.ref(inv))
        return inv, listing

    def graph_and_watch(inv: object) -> object:
        lg = graph(inv)  # type: ignore[arg-type]
        built.append(weakref.ref(lg.g))
        return lg

    def transfer_and_check(self: BundleWriter, *args: object, **kw: object) -> object:
        alive_at_transfer.extend(ref() is not None for ref in built)
        return transfer(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(engine, "walk_with_listing", walk_and_watch)
    monkeypatch.setattr(engine, "build_graph", graph_and_watch)
    monkeypatch.setattr(BundleWriter, "transfer", transfer_and_check)
    _export("designer-autoprice", tmp_path / "r")
    assert alive_at_transfer == [False, False]


def test_a_re_export_shares_the_plans_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 100k blobs every string counts twice if it is read again: the index rows of an
    unchanged re-export are keyed by the planned files' own path objects and hold their
    blobs' etag (a local copy's as an int) and MD5 objects, the index and the previous
    snapshot's entries hold one object per digest, and the previous snapshot's asset file
    lists hold its entries' path objects."""
    from amlport.export.writer import BundleWriter

    _export("designer-autoprice", tmp_path / "r")
    seen: list[tuple[str, bool, bool]] = []
    one_digest: list[bool] = []
    transfer = BundleWriter.transfer

    def transfer_and_check(
        self: BundleWriter, repo: Repository, index: object, *a: object, **kw: object
    ) -> object:
        paths = {p: p for p in self.blobs}
        for space, rows in index._entries.items():  # type: ignore[attr-defined]
            for key, row in rows.items():  # a container, or its rewritten forms' space
                blob = self.blobs.get(key)  # keyed by the file's bundle path
                if blob is not None:
                    # a local copy's etag is held as an int (its mtime), any other as the
                    # blob's own string
                    etag = isinstance(row.tag, int) and row.etag == blob.etag
                    seen.append((space, key is paths[key], etag or row.tag is blob.etag))
        previous = a[0]
        rows = [r for rows in index._entries.values() for r in rows.values()]  # type: ignore[attr-defined]
        digests = {r.digest: r.digest for r in rows}
        entries = [e for e in previous.files if e.digest in digests]  # type: ignore[attr-defined]
        one_digest.extend(e.digest is digests[e.digest] for e in entries)
        return transfer(self, repo, index, *a, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(BundleWriter, "transfer", transfer_and_check)
    result = _export("designer-autoprice", tmp_path / "r")
    assert len(seen) > 20 and all(same_name and same_etag for _, same_name, same_etag in seen)
    assert len(one_digest) > 20 and all(one_digest)  # index rows and entries: one string
    previous = complete_previous(Repository.open(tmp_path / "r"), result.previous)  # type: ignore[attr-defined]
    by_path = {f.path: f.path for f in previous.files}
    shared = [p for a in previous.assets for p in a.files]
    assert shared and all(p is by_path[p] for p in shared)


def test_files_of_equal_bytes_share_one_digest_string(tmp_path: Path) -> None:
    """Equal bytes recur in a workspace (half the blobs of the scaled benchmark share a
    digest): the entries of a first export hold one string per digest."""
    result = _export("designer-autoprice", tmp_path / "r")
    entries = result.manifest.files  # type: ignore[attr-defined]
    first: dict[str, str] = {}
    shared = [e.digest is first.setdefault(e.digest, e.digest) for e in entries]
    assert len(first) < len(entries) and all(shared)


def test_rewrite_records_of_equal_text_share_one_string(tmp_path: Path) -> None:
    """Rewrite records repeat their texts (a scaled workspace's 39k records hold 7
    locations, 2 rules and one URI in many files): a first export's records hold one string
    per equal location, value and rule, as its entries do per digest."""
    result = _export("designer-autoprice", tmp_path / "r")
    records = result.manifest.rewrites  # type: ignore[attr-defined]
    assert len(records) > 10
    texts = [t for r in records for t in (r.location, r.before, r.after, r.rule)]
    first: dict[str, str] = {}
    assert len({*texts}) < len(texts)
    assert all(t is first.setdefault(t, t) for t in texts)
