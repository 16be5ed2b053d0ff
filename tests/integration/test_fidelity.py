"""Export → import into a differently named workspace → scan: the lineage graph is the same.

Node ids are datastore-relative and datastore aliases of a container fold into its built-in
name, so "equal under the mapping" is plain equality of the two graphs. Every pointer must
resolve in the target, and no source identity may remain in a restored pointer or YAML.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from amlport.bundle import Repository
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importing import ImportRequest, run_import
from amlport.importing.engine import load_mapping
from amlport.lineage import LineageGraph, build_graph
from amlport.model import findings as F
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target
from amlport.walk import walk

HERE = Path(__file__).resolve().parent
WS = HERE.parents[1] / "fixtures" / "workspaces"
MAPS = HERE / "maps"
EVERYTHING = frozenset(INCLUDE_KINDS)


def _graph(root: Path) -> LineageGraph:
    return build_graph(walk(LocalSource(root)))


def _edges(lg: LineageGraph) -> Counter[tuple[str, str, str]]:
    return Counter((u, v, d["kind"]) for u, v, d in lg.g.edges(data=True))


def _export_import(name: str, tmp: Path, map_name: str = "qa") -> tuple[Path, Path]:
    repo, target = tmp / "repo", tmp / "target"
    run_export(LocalSource(WS / name), repo, ExportRequest(include=EVERYTHING))
    mapping = load_mapping(MAPS / f"{map_name}.yaml")
    with open_target(str(target), descriptor=mapping.target) as t:
        result = run_import(repo, t, ImportRequest(mapping=mapping))
    assert int(result.exit_code) == 0, result.to_dict()
    return repo, target


@pytest.mark.parametrize("name", ["designer-autoprice", "v2-lendingclub", "sdk-bikeshare", "messy"])
def test_lineage_survives_export_import(name: str, tmp_path: Path) -> None:
    _, target = _export_import(name, tmp_path)
    source_graph, target_graph = _graph(WS / name), _graph(target)
    assert set(target_graph.g.nodes) == set(source_graph.g.nodes)
    assert _edges(target_graph) == _edges(source_graph)
    kinds = Counter(k for _, k in target_graph.g.nodes(data="kind"))
    assert kinds == Counter(k for _, k in source_graph.g.nodes(data="kind"))


def test_designer_target_rescans_with_seven_steps_and_resolved_pointers(tmp_path: Path) -> None:
    _, target = _export_import("designer-autoprice", tmp_path)
    inv = walk(LocalSource(target))
    parent = inv.runs["a186e29d-388b-46bb-b111-726e328be005"]
    assert len(parent.children) == 7
    assert not [f for f in inv.findings if f.code == F.DANGLING_POINTER]
    pointer = json.loads(
        (
            target / "azureml/ExperimentRun/dcid.a79bd916-2790-4202-89ed-fbdede3ccf1d/Trained_model"
        ).read_text(encoding="utf-8")
    )
    assert pointer["Account"] == "stqaautoprice01" and pointer["AmlDataStoreName"] == "qablob"
    assert pointer["Container"] == "azureml-blobstore-99999999-8888-7777-6666-555555555555"


def test_no_source_identity_left_in_restored_pointers_and_yaml(tmp_path: Path) -> None:
    _, target = _export_import("v2-lendingclub", tmp_path)
    source = (WS / "v2-lendingclub" / "workspace.yaml").read_text(encoding="utf-8")
    account = next(
        line.split(": ")[1] for line in source.splitlines() if line.startswith("account")
    )
    for path in target.rglob("*"):
        if path.suffix in (".yml", ".yaml", ".json") or path.name == "MLmodel":
            if path.name == "workspace.yaml" or "/amlport/" in path.as_posix():
                continue  # the target's own descriptor; import records are provenance
            assert account not in path.read_text(encoding="utf-8", errors="replace"), path


def test_second_import_plans_all_skip_and_writes_nothing(tmp_path: Path) -> None:
    repo, target = _export_import("sdk-bikeshare", tmp_path)
    before = {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}
    mapping = load_mapping(MAPS / "qa.yaml")
    with open_target(str(target), descriptor=mapping.target) as t:
        again = run_import(repo, t, ImportRequest(mapping=mapping))
    assert set(again.counts) == {"skip"} and again.record is None
    assert before == {p: p.stat().st_mtime_ns for p in target.rglob("*") if p.is_file()}


def test_unmapped_datastore_blocks_and_nothing_is_guessed(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_export(LocalSource(WS / "sdk-bikeshare"), repo, ExportRequest())
    data = (
        (MAPS / "qa.yaml")
        .read_text(encoding="utf-8")
        .replace("  workspaceartifactstore: workspaceartifactstore\n", "", 1)
    )
    # drop the datastores: entry for the artifact store only (the target section keeps its own)
    mapping_file = tmp_path / "map.yaml"
    mapping_file.write_text(
        data.rsplit("workspaceartifactstore: workspaceartifactstore", 1)[0], encoding="utf-8"
    )
    mapping = load_mapping(mapping_file)
    assert "workspaceartifactstore" not in mapping.datastores
    with open_target(str(tmp_path / "t"), descriptor=mapping.target) as t:
        result = run_import(repo, t, ImportRequest(mapping=mapping))
    blocked = [a for a in result.actions if a.action == "blocked"]
    assert blocked and all("workspaceartifactstore" in a.reason for a in blocked)
    assert int(result.exit_code) == 3
    assert not (tmp_path / "t" / "azureml" / "ExperimentRun").exists()


def test_dev_qa_prod_provenance_shows_both_hops(tmp_path: Path) -> None:
    _, qa = _export_import("sdk-bikeshare", tmp_path / "dev")
    qa_repo = tmp_path / "qa-repo"
    run_export(LocalSource(qa), qa_repo, ExportRequest(include=EVERYTHING))
    store = Repository.open(qa_repo)
    manifest = store.load_snapshot(store.list_snapshots()[-1].id)
    assert [h["account"] for h in manifest.provenance] == ["stbikesharesdk4417"]
    mapping = load_mapping(MAPS / "prod.yaml")
    with open_target(str(tmp_path / "prod"), descriptor=mapping.target) as t:
        result = run_import(qa_repo, t, ImportRequest(mapping=mapping))
    record = json.loads((tmp_path / "prod" / str(result.record)).read_text(encoding="utf-8"))
    assert [h["account"] for h in record["hops"]] == ["stbikesharesdk4417", "stqaautoprice01"]
