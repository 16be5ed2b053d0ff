"""The bundle manifest: round trip, determinism, schema versions and validation."""

from __future__ import annotations

import copy
import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.errors import ExitCode, IntegrityError
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import (
    ASSET_KINDS,
    SCHEMA,
    AssetEntry,
    FileEntry,
    Manifest,
    RedactionRecord,
    RewriteRecord,
    check_bundle_path,
    parse_schema,
    source_key,
)

DIGEST = "sha256:" + "ab" * 32
SOURCE = {"account": "acct", "endpoint": "core.windows.net", "containers": {"blobstore": "b"}}


def full_manifest() -> Manifest:
    return Manifest(
        source=dict(SOURCE),
        created="2024-03-01T02:00:00.000000Z",
        parent="f" * 64,
        tags=["nightly"],
        selection={"select": ["model:price"], "include": ["models"]},
        assets=[
            AssetEntry(
                "model",
                "price",
                "model:price",
                files=["files/workspaceblobstore/azureml/r1/Trained_model/data.ilearner"],
                v2_yaml="assets/model/price.yaml",
                portable=False,
                requires=["environment:env"],
                attrs={"format": "ilearner"},
            ),
            AssetEntry("environment", "env", "environment:env"),
        ],
        files=[
            FileEntry(
                "files/workspaceblobstore/azureml/r1/Trained_model/data.ilearner",
                DIGEST,
                10,
                original={
                    "datastore": "workspaceblobstore",
                    "path": "azureml/r1/x",
                    "container": "c",
                },
                rewritten=True,
                original_digest="sha256:" + "cd" * 32,
            ),
            FileEntry("assets/model/price.yaml", "sha256:" + "01" * 32, 3),
        ],
        lineage={
            "directed": True,
            "multigraph": True,
            "nodes": [{"id": "model:price"}],
            "links": [],
        },
        rewrites=[
            RewriteRecord("assets/model/price.yaml", "/path", "wasbs://a", "azureml://b", "r")
        ],
        redactions=[RedactionRecord("logs/70_driver_log.txt", "sas_signature", 2)],
        warnings=["unclassified URI in logs/x: foo://bar"],
        stats={"files": 2, "bytes": 13},
    )


def test_round_trip_through_json_is_identity() -> None:
    m = full_manifest()
    again = Manifest.from_json_bytes(m.to_json_bytes())
    assert again.to_dict() == m.to_dict()  # equal up to the canonical order of lists
    assert again.file(m.files[0].path) == m.files[0]
    assert again.to_json_bytes() == m.to_json_bytes()


def test_to_dict_is_deterministic_whatever_the_insertion_order() -> None:
    a, b = full_manifest(), full_manifest()
    b.files.reverse()
    b.assets.reverse()
    assert a.to_json_bytes() == b.to_json_bytes()


def test_snapshot_id_is_not_part_of_the_stored_bytes() -> None:
    m = full_manifest()
    before = m.to_json_bytes()
    m.snapshot_id = "e" * 64
    assert m.to_json_bytes() == before
    assert m.to_dict()["snapshot_id"] == "e" * 64


@pytest.fixture(params=["from_dict", "read"])
def load(request: pytest.FixtureRequest) -> Any:
    """Both readers: of a dict, and of the stored bytes entry by entry (``Manifest.read``)."""
    if request.param == "from_dict":
        return lambda data, where="manifest": Manifest.from_dict(data, where=where)
    return lambda data, where="manifest": Manifest.from_json_bytes(
        json.dumps(data).encode(), where=where
    )


def test_unknown_major_is_refused_naming_snapshot_and_supported_versions(load: Any) -> None:
    data = full_manifest().to_dict()
    data["schema"] = "amlport.bundle/2"
    with pytest.raises(IntegrityError) as err:
        load(data, where="snapshot 0123abcd")
    text = str(err.value)
    assert "snapshot 0123abcd" in text and "amlport.bundle/2" in text
    assert "amlport.bundle/1" in text
    assert err.value.exit_code == ExitCode.INTEGRITY


def test_major_is_checked_before_anything_else(load: Any) -> None:
    # A v2 manifest may look nothing like v1: the reader must say "unsupported schema",
    # not "field 'files' is missing".
    with pytest.raises(IntegrityError, match=r"amlport\.bundle/9"):
        load({"schema": "amlport.bundle/9", "objects": {}})
    # Nor "bad entry" when its entries (stored before "schema") are of another shape.
    with pytest.raises(IntegrityError, match=r"amlport\.bundle/9"):
        load({"assets": [{"shape": "v9"}], "files": [7], "schema": "amlport.bundle/9"})


@pytest.mark.parametrize("schema", ["amlport.bundle", "other/1", "amlport.bundle/x", ""])
def test_foreign_schema_is_refused(schema: str) -> None:
    with pytest.raises(IntegrityError, match="schema"):
        parse_schema(schema)


def test_newer_minor_with_unknown_fields_is_accepted_and_kept(load: Any) -> None:
    data = full_manifest().to_dict()
    data["schema"] = "amlport.bundle/1.4"
    data["signatures"] = [{"by": "ci"}]
    data["files"][0]["chunks"] = ["x"]  # unknown nested field: ignored
    data["assets"][0]["kind"] = "endpoint"  # a kind a newer minor may add
    m = load(data)
    assert m.extra == {"signatures": [{"by": "ci"}]}
    assert m.assets[0].kind == "endpoint"
    assert json.loads(m.to_json_bytes())["signatures"] == [{"by": "ci"}]


def test_unknown_asset_kind_is_refused_in_the_minor_we_know(load: Any) -> None:
    data = full_manifest().to_dict()
    data["assets"][1]["kind"] = "endpoint"
    with pytest.raises(IntegrityError, match=r"assets\[1\].*unknown asset kind"):
        load(data)
    assert set(ASSET_KINDS) >= {"model", "environment", "pipeline", "spec"}


@pytest.mark.parametrize("field", ["schema", "tool_version", "created", "source", "files"])
def test_missing_required_field_is_named(field: str, load: Any) -> None:
    data = full_manifest().to_dict()
    del data[field]
    with pytest.raises(IntegrityError, match=f"'{field}'"):
        load(data, where="snapshot abc")


@pytest.mark.parametrize(
    ("path", "value", "named"),
    [
        (("files", 0, "size"), "10", "size"),
        (("files", 0, "size"), True, "size"),  # a bool is not a size
        (("files", 0, "size"), -1, "size"),
        (("files", 1, "digest"), "md5:abc", "digest"),
        (("files", 1, "path"), "../../etc/passwd", "safe bundle path"),
        (("files", 1, "path"), "/abs", "safe bundle path"),
        (("assets", 0, "v2_yaml"), "a/./b", "safe bundle path"),
        (("assets", 0, "requires"), "environment:env", "requires"),
        (("assets", 0, "portable"), "no", "portable"),
        (("redactions", 0, "count"), "2", "count"),
        (("tags",), "nightly", "tags"),
        (("tags",), [1], r"tags\[0\]"),
        (("created",), "yesterday", "created"),
        (("created",), "2024-03-01T02:00:00", "created"),  # no offset
        (("source",), ["acct"], "source"),
    ],
)
def test_mistyped_field_is_named(path: tuple[Any, ...], value: Any, named: str, load: Any) -> None:
    data = full_manifest().to_dict()
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(IntegrityError, match=named):
        load(data)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"\xff\xfe not utf-8",
        b"[1, 2]",
        b"[" * 100_000 + b"]" * 100_000,  # deeply nested: no RecursionError escapes
    ],
)
def test_unreadable_json_is_an_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError):
        Manifest.from_json_bytes(raw, where="snapshot 1234")


def test_read_stores_equal_strings_once() -> None:
    m = full_manifest()
    back = Manifest.from_json_bytes(m.to_json_bytes())
    by_path = {f.path: f for f in back.files}
    shared = [p for a in back.assets for p in a.files]
    assert shared and all(p is by_path[p].path for p in shared)
    assert back.to_dict() == Manifest.from_dict(json.loads(m.to_json_bytes())).to_dict()
    m.lineage = _long_lineage()
    lineage = Manifest.from_json_bytes(m.to_json_bytes()).lineage
    ids = {n["id"]: n["id"] for n in lineage["nodes"]}
    assert all(link["source"] is ids[link["source"]] for link in lineage["links"])
    # Each node is decoded on its own (no ~12 MB text at 100k blobs): keys are shared too.
    assert len({id(key) for node in lineage["nodes"] for key in node if key == "id"}) == 1


def test_truncated_manifest_is_an_integrity_error() -> None:
    raw = full_manifest().to_json_bytes()
    with pytest.raises(IntegrityError, match="snapshot 42"):
        Manifest.from_json_bytes(raw[: len(raw) // 2], where="snapshot 42")


@pytest.mark.parametrize(
    "ok",
    [
        "files/a b/c%20d.txt",
        "files/ünï/çødé",
        "a" * 1024,
        "x/.hidden",
        "a\\b",
        "a\\..\\b",
        "files/ws/a//b.txt",  # an empty segment is legal in a blob name (a backup exited 4)
        "files/ws/dir/",
    ],
)
def test_bundle_paths_with_odd_but_safe_names_pass(ok: str) -> None:
    assert check_bundle_path(ok) == ok


@pytest.mark.parametrize("bad", ["", "/a", "a/../b", "..", "./a", "a\x00b", "a/./b"])
def test_unsafe_bundle_paths_are_refused(bad: str) -> None:
    with pytest.raises(IntegrityError):
        check_bundle_path(bad)


def test_source_key_is_stable_and_file_name_safe() -> None:
    key = source_key(SOURCE)
    assert key == source_key(copy.deepcopy(SOURCE))
    assert key.startswith("acct-") and key.replace("-", "").isalnum()
    assert source_key({**SOURCE, "account": "other"}) != key
    assert source_key({**SOURCE, "account": "../../x y"}).startswith("-x-y-")
    assert Manifest(source=SOURCE).source_key == key


def test_redaction_records_hold_no_value_field() -> None:
    assert set(RedactionRecord("f", "sas_token", 1).to_dict()) == {"file", "kind", "count"}


# --- property: any well-formed manifest survives a round trip ---------------------------

_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=20)
_segment = st.text("abcxyz019 ._-%ü", min_size=1, max_size=8).filter(lambda s: s not in {".", ".."})
_path = st.lists(_segment, min_size=1, max_size=4).map("/".join)
_digest = st.binary(min_size=32, max_size=32).map(lambda b: "sha256:" + b.hex())
_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
_files = st.builds(
    FileEntry,
    path=_path,
    digest=_digest,
    size=st.integers(0, 2**40),
    original=st.none() | st.dictionaries(_text, _text, max_size=3),
    rewritten=st.booleans(),
    original_digest=st.none() | _digest,
)
_assets = st.builds(
    AssetEntry,
    kind=st.sampled_from(ASSET_KINDS),
    name=_text,
    id=_text,
    files=st.lists(_path, max_size=3),
    v2_yaml=st.none() | _path,
    portable=st.booleans(),
    requires=st.lists(_text, max_size=3),
    attrs=st.dictionaries(_text, _json, max_size=3),
)


@settings(max_examples=60, deadline=None)
@given(
    files=st.lists(_files, max_size=5, unique_by=lambda f: f.path),
    assets=st.lists(_assets, max_size=4, unique_by=lambda a: (a.kind, a.id)),
    tags=st.lists(_text, max_size=3),
    warnings=st.lists(_text, max_size=3),
    stats=st.dictionaries(_text, _json, max_size=3),
)
def test_any_manifest_round_trips(
    files: list[FileEntry],
    assets: list[AssetEntry],
    tags: list[str],
    warnings: list[str],
    stats: dict[str, Any],
) -> None:
    paths = {f.path for f in files}
    for asset in assets:  # a manifest's assets name its files only (check_references)
        asset.files = [p for p in asset.files if p in paths]
        asset.v2_yaml = asset.v2_yaml if asset.v2_yaml in paths else None
    m = Manifest(
        source=dict(SOURCE),
        created="2024-03-01T02:00:00.000000Z",
        files=files,
        assets=assets,
        tags=tags,
        warnings=warnings,
        stats=stats,
    )
    raw = m.to_json_bytes()
    again = Manifest.from_json_bytes(raw)
    assert again.to_json_bytes() == raw
    assert sorted(f.path for f in again.files) == sorted(f.path for f in files)
    assert again.schema == SCHEMA


# --- streamed writing ------------------------------------------------------------------------


def _long_lineage() -> dict[str, Any]:
    """Node-link lineage with lists longer than manifest.STREAM_MIN, and one empty list."""
    nodes = [{"id": f"run:{n}", "kind": "run", "attrs": {"tags": ["a", "é"]}} for n in range(80)]
    links = [{"source": f"run:{n}", "target": f"run:{n + 1}", "kind": "next"} for n in range(79)]
    return {"directed": True, "graph": {}, "multigraph": True, "nodes": nodes, "links": links}


def _canonical(m: Manifest) -> bytes:
    """The stored form as one json.dumps call: what iter_json must reproduce byte for byte."""
    data = m.to_dict()
    data.pop("snapshot_id", None)
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


@pytest.mark.parametrize(
    "make",
    [
        full_manifest,
        lambda: Manifest(source=dict(SOURCE), created="2024-03-01T02:00:00.000000Z"),
        lambda: Manifest(
            source=dict(SOURCE),
            created="2024-03-01T02:00:00.000000Z",
            provenance=[{"account": "dev", "snapshot": "a" * 64}],
            extra={"zz_newer": {"nested": ["é", "line\nbreak", {"k": []}]}, "aa": 1},
        ),
        lambda: Manifest(
            source=dict(SOURCE),
            created="2024-03-01T02:00:00.000000Z",
            lineage=_long_lineage(),
            extra={"zz": [[{"a": list(range(70))}] * 2] * 70, "yy": {"b": list(range(70))}},
        ),
    ],
    ids=["full", "empty-lists", "extra-and-provenance", "long-nested-lists"],
)
def test_streamed_json_is_the_canonical_dump(make: Any) -> None:
    m = make()
    m.snapshot_id = "f" * 64  # never part of the stored bytes
    assert m.to_json_bytes() == _canonical(m)
    assert "".join(m.iter_json()).encode() == _canonical(m)
    back = Manifest.from_json_bytes(m.to_json_bytes())
    back.snapshot_id = m.snapshot_id
    assert back.to_dict() == m.to_dict()


def test_iter_json_hands_every_list_entry_to_the_check_on_its_own() -> None:
    m = full_manifest()
    seen: list[tuple[str, Any]] = []
    chunks = list(m.iter_json(lambda key, value: seen.append((key, value))))
    files = [v for k, v in seen if k == "files"]
    assert [f["path"] for f in files] == sorted(f.path for f in m.files)
    assert [v["id"] for k, v in seen if k == "assets"] == ["environment:env", "model:price"]
    assert ("stats", m.stats) in seen and ("lineage", m.lineage) in seen
    # one chunk per list entry: memory follows the largest entry, not the manifest
    assert len(chunks) > len(m.files) + len(m.assets) + len(m.rewrites)


def test_iter_json_writes_a_long_lineage_a_node_at_a_time() -> None:
    m = Manifest(source=dict(SOURCE), created="2024-03-01T02:00:00.000000Z")
    m.lineage = _long_lineage()
    chunks = list(m.iter_json())
    assert max(map(len, chunks)) < 200  # no chunk holds the lineage's whole text
    assert "".join(chunks).encode() == _canonical(m)
    m.extra = {"zz": {10: list(range(70)), 9: []}}  # json.dumps sorts 9 before 10
    assert "".join(m.iter_json()).encode() == _canonical(m)


# --- the compact origin of a file entry ---------------------------------------------------


def _entry(path: str, original: dict[str, Any] | None) -> FileEntry:
    return FileEntry(path, DIGEST, 1, original=original)


def test_origin_of_the_default_layout_round_trips_and_is_shared() -> None:
    """A bundle path files/<datastore>/<name> keeps its origin as one shared object; the
    entry still reads, writes and compares as the mapping it was given."""
    origins = [
        {"datastore": "workspaceblobstore", "container": "azureml-blobstore-1", "path": name}
        for name in ("azureml/r1/Trained_model/data.ilearner", "azureml/r2/a b/%20.txt")
    ]
    entries = [_entry(f"files/workspaceblobstore/{o['path']}", dict(o)) for o in origins]
    for entry, origin in zip(entries, origins, strict=True):
        assert entry.compact_origin
        assert entry.original == origin
        assert FileEntry.from_dict(entry.to_dict(), "e") == entry
        assert FileEntry.from_dict(entry.to_dict(), "e").to_dict() == entry.to_dict()
    assert entries[0]._origin is entries[1]._origin  # one object per (datastore, container)
    assert entries[0] != _entry(entries[0].path, {**origins[0], "container": "other"})


@pytest.mark.parametrize(
    "original",
    [
        {"datastore": "workspaceblobstore", "container": "c", "path": "elsewhere/x"},
        {"specs": "pipelines/p.yaml"},
        {"datastore": "workspaceblobstore", "container": "c", "path": "x", "extra": 1},
        {"datastore": "workspaceblobstore", "container": 7, "path": "x"},
        None,
    ],
)
def test_any_other_origin_is_kept_as_given(original: dict[str, Any] | None) -> None:
    entry = _entry("files/workspaceblobstore/x", copy.deepcopy(original))
    assert not entry.compact_origin
    assert entry.original == original
    assert entry.to_dict()["original"] == original
    assert entry == _entry("files/workspaceblobstore/x", copy.deepcopy(original))
    assert entry != _entry("files/workspaceblobstore/x", {"specs": "other"})


# --- reading only part of a manifest --------------------------------------------------------


def _read(data: dict[str, Any], keep: tuple[str, ...]) -> Manifest:
    return Manifest.read(io.BytesIO(json.dumps(data).encode()), plan=LoadPlan.only(*keep))


def test_read_keeps_only_what_is_asked_and_still_checks_the_rest() -> None:
    whole = Manifest.from_dict(full_manifest().to_dict())
    part = _read(whole.to_dict(), ("files", "rewrites"))
    assert part.files == whole.files and part.rewrites == whole.rewrites
    assert part.assets == [] and part.redactions == [] and part.lineage == {}
    assert part.source == whole.source  # the header is always read
    assert _read(whole.to_dict(), ("lineage",)).lineage == whole.lineage
    bad = whole.to_dict()
    bad["lineage"] = ["not", "an", "object"]  # left out, yet still refused
    with pytest.raises(IntegrityError, match="lineage"):
        _read(bad, ("files",))
    bad = whole.to_dict()
    bad["assets"][0]["files"] = 7
    with pytest.raises(IntegrityError, match=r"assets\[0\]"):
        _read(bad, ("files",))


def test_file_finds_each_entry_by_path_and_follows_changes_of_the_list() -> None:
    """``Manifest.file`` answers from an index of the paths (a restore asks once per file:
    a scan per call was quadratic) and answers as a scan of ``files`` would."""
    import dataclasses

    from amlport.model.manifest import FileEntry, Manifest

    def entry(path: str, n: int = 0) -> FileEntry:
        return FileEntry(path=path, digest="sha256:" + f"{n:064x}", size=n)

    paths = [f"files/ws/run/{i}/[log].txt" for i in range(500)] + ["files/ws/x..y", "files/ws/"]
    m = Manifest(source={}, files=[entry(p, i) for i, p in enumerate(paths)])
    for i, p in enumerate(paths):
        found = m.file(p)
        assert found is not None and found.path == p and found.size == i
    assert m.file("files/ws/missing") is None and m.file("") is None
    m.files.append(entry("files/ws/new", 7))  # appended to the same list
    assert m.file("files/ws/new") == entry("files/ws/new", 7)
    m.files = [entry("files/ws/new", 8), entry("files/ws/new", 9)]  # another list
    assert m.file("files/ws/new") == entry("files/ws/new", 8)  # the first, as a scan
    assert m.file(paths[0]) is None
    copy = dataclasses.replace(m, files=[entry(paths[1], 1)])
    assert copy.file(paths[1]) == entry(paths[1], 1) and copy.file("files/ws/new") is None
    assert copy == Manifest(source={}, files=[entry(paths[1], 1)])  # the index is no field
