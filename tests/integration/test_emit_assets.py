"""``--emit-assets DIR``: v2 YAML of real exports, bound to a target with other names.

Every emitted YAML must load offline with ``azure.ai.ml`` ``load_*`` and point at the target's
datastores; no source account, container, datastore, workspace or subscription may be left
(provenance tags excepted); ``register.sh`` is valid bash that registers in dependency order;
a second run plans and applies all skip; conflicts follow ``--on-conflict``.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.export import ExportRequest, run_export
from amlport.export.selection import INCLUDE_KINDS
from amlport.importers.azureml_assets import (
    ORDER,
    AzureMLAssetsImporter,
    load_index,
    parse_workspace,
    register_live,
)
from amlport.importers.base import ImportAction, ImportContext
from amlport.importing import ImportRequest, run_import
from amlport.importing.engine import import_rules, load_mapping
from amlport.model.manifest import Manifest
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_target

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
FIXTURES = ("sdk-bikeshare", "v2-lendingclub", "designer-autoprice")
TARGET_DATASTORES = ("qablob", "qaartifacts")
TARGET = {
    "account": "stqatarget01",
    "endpoint": "core.windows.net",
    "subscription_id": "11111111-2222-3333-4444-555555555555",
    "resource_group": "rg-ml-qa",
    "workspace": "mlw-qa",
    "containers": {"blobstore": "azureml-blobstore-qa000001", "artifacts": "qa-artifacts"},
    "datastores": {"qablob": "azureml-blobstore-qa000001", "qaartifacts": "qa-artifacts"},
}
PROVENANCE_TAG = re.compile(r"^\s+amlport\.(source_account|source_workspace|provenance):")
RENAMES = {"lendingclub-env": "lc-env", "model-frosty_rocket_9hd3c6vqla": "bikeshare-regressor"}


def _write_map(path: Path, datastores: dict[str, str] | None = None) -> Path:
    doc = {
        "target": TARGET,
        "datastores": datastores
        or {"workspaceblobstore": "qablob", "workspaceartifactstore": "qaartifacts"},
        "assets": RENAMES,
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def _context(repo: Path, map_file: Path, on_conflict: str = "fail") -> ImportContext:
    store = Repository.open(repo)
    manifest = store.load_snapshot(store.list_snapshots()[-1].id)
    mapping = load_mapping(map_file)
    rules = import_rules(manifest, mapping)
    ctx = ImportContext(store, manifest, mapping, rules, lambda _: None, on_conflict)
    ctx.gate.open()  # validated: these tests apply (the write guard is created closed)
    return ctx


def _emit(out: Path, ctx: ImportContext) -> list[ImportAction]:
    importer = AzureMLAssetsImporter(out)
    return [importer.apply(a, ctx) for a in importer.plan(ctx)]


@pytest.fixture(scope="module")
def emitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, Manifest]]:
    """fixture name -> (bundle repository, emitted folder, manifest), each emitted once."""
    root = tmp_path_factory.mktemp("emit")
    map_file = _write_map(root / "qa.yaml")
    out: dict[str, tuple[Path, Path, Manifest]] = {}
    for name in FIXTURES:
        repo = root / f"repo-{name}"
        run_export(LocalSource(WS / name), repo, ExportRequest(include=frozenset(INCLUDE_KINDS)))
        ctx = _context(repo, map_file)
        actions = _emit(root / name, ctx)
        assert {a.action for a in actions} == {"create"}, [a.to_dict() for a in actions]
        out[name] = (repo, root / name, ctx.manifest)
    return out


def _loaders() -> dict[str, Any]:
    ml = pytest.importorskip("azure.ai.ml")
    return {
        "environment": ml.load_environment,
        "data": ml.load_data,
        "model": ml.load_model,
        "component": ml.load_component,
        "pipeline": ml.load_job,
    }


@pytest.mark.parametrize("name", FIXTURES)
def test_every_yaml_loads_offline_and_points_at_the_target(
    name: str, emitted: dict[str, tuple[Path, Path, Manifest]]
) -> None:
    _, out, manifest = emitted[name]
    loaders = _loaders()
    entries = load_index(out)
    kinds = Counter(kind for kind, _ in entries)
    assert kinds["model"] == sum(1 for a in manifest.assets if a.kind == "model")
    assert kinds["environment"] >= sum(1 for a in manifest.assets if a.kind == "environment")
    for kind, file in entries:
        obj = loaders[kind](file)  # raises on an invalid spec or a missing local file
        if kind in ("model", "data"):
            datastore = str(obj.path).removeprefix("azureml://datastores/").split("/", 1)[0]
            assert datastore in TARGET_DATASTORES, (file, obj.path)
    models = {
        yaml.safe_load((out / f).read_text())["type"] for k, f in entries if k == "model"
    }  # fmt: skip
    if name == "designer-autoprice":
        assert models == {"custom_model"}
        assert kinds["data"] >= 1  # exported with --include data
    else:
        assert "mlflow_model" in models
    if name == "v2-lendingclub":
        assert kinds["component"] == 8 and kinds["pipeline"] == 1
        job = loaders["pipeline"](next(f for k, f in entries if k == "pipeline"))
        assert job.settings.default_datastore.removeprefix("azureml:") == "qablob"


@pytest.mark.parametrize("name", FIXTURES)
def test_no_source_identity_left_outside_provenance_tags(
    name: str, emitted: dict[str, tuple[Path, Path, Manifest]]
) -> None:
    _, out, manifest = emitted[name]
    src = manifest.source
    needles = {
        src["account"],
        src["subscription_id"],
        src["resource_group"],
        src["workspace"],
        src["workspace_id"],
        *src["containers"].values(),
        *src["datastores"],
    } - {"azureml"}  # the artifact container's name is also a path segment
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        text = path.read_text(encoding="utf-8", errors="replace")
        lines = [line for line in text.splitlines() if not PROVENANCE_TAG.match(line)]
        for needle in needles:
            left = [line for line in lines if needle in line]
            assert not left, f"{path.relative_to(out)} still names {needle!r}: {left[0]}"


@pytest.mark.parametrize("name", FIXTURES)
def test_register_script_is_bash_in_dependency_order(
    name: str, emitted: dict[str, tuple[Path, Path, Manifest]]
) -> None:
    _, out, _ = emitted[name]
    script = out / "register.sh"
    assert script.stat().st_mode & 0o111
    subprocess.run(["bash", "-n", str(script)], check=True)
    text = script.read_text()
    assert "set -euo pipefail" in text
    assert "RG=${AMLPORT_RESOURCE_GROUP:-rg-ml-qa}" in text
    assert "WS=${AMLPORT_WORKSPACE:-mlw-qa}" in text
    kind_of = {"environment": "environment", "data": "data", "model": "model", "job": "pipeline"}
    kind_of["component"] = "component"
    listed: list[tuple[str, str]] = []
    for line in text.splitlines():
        if line.startswith("az ml "):
            words = shlex.split(line)
            assert words[3:5] == ["create", "-f"] and (out / words[5]).is_file(), line
            assert '--resource-group "$RG" --workspace-name "$WS"' in line
            listed.append((kind_of[words[2]], words[5]))
    order = [kind for kind, _ in listed]
    assert order == sorted(order, key=ORDER.index)  # environments, data, models, components, jobs
    assert [(k, str(f.relative_to(out))) for k, f in load_index(out)] == listed
    if name == "v2-lendingclub":
        assert {"environment", "model", "component", "pipeline"} <= set(order)


@pytest.mark.parametrize("name", FIXTURES)
def test_second_run_is_all_skip_and_writes_nothing(
    name: str, emitted: dict[str, tuple[Path, Path, Manifest]], tmp_path: Path
) -> None:
    repo, out, _ = emitted[name]
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    actions = _emit(out, _context(repo, _write_map(tmp_path / "qa.yaml")))
    assert {a.action for a in actions} == {"skip"}, [
        a.to_dict() for a in actions if a.action != "skip"
    ]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()} == before


def test_renames_from_the_map_reach_names_and_references(
    emitted: dict[str, tuple[Path, Path, Manifest]],
) -> None:
    _, lc, _ = emitted["v2-lendingclub"]
    env = yaml.safe_load((lc / "environments/lc-env/lendingclub-env.yml").read_text())
    assert env["name"] == "lc-env"
    [pipeline] = (lc / "pipelines").iterdir()
    oversample = yaml.safe_load((pipeline / "components/oversample.yml").read_text())
    assert oversample["environment"] == "azureml:lc-env@latest"
    _, bs, _ = emitted["sdk-bikeshare"]
    model = yaml.safe_load((bs / "models/bikeshare-regressor.yml").read_text())
    assert model["name"] == "bikeshare-regressor" and model["type"] == "mlflow_model"
    assert model["path"].startswith("azureml://datastores/qaartifacts/paths/ExperimentRun/")
    hops = json.loads(model["tags"]["amlport.provenance"])
    assert [h["account"] for h in hops] == ["stbikesharesdk4417"]


def test_a_changed_file_is_a_conflict_that_on_conflict_resolves(
    emitted: dict[str, tuple[Path, Path, Manifest]], tmp_path: Path
) -> None:
    repo, original, _ = emitted["sdk-bikeshare"]
    out = tmp_path / "out"
    shutil.copytree(original, out)
    edited = out / "models/bikeshare-regressor.yml"
    edited.write_text(edited.read_text() + "# edited by hand\n")
    map_file = _write_map(tmp_path / "qa.yaml")

    def plan(policy: str) -> dict[str, str]:
        actions = AzureMLAssetsImporter(out).plan(_context(repo, map_file, policy))
        return {a.target: a.action for a in actions if a.action != "skip"}

    assert plan("fail") == {str(edited): "conflict"}
    assert plan("skip") == {str(edited): "conflict"}  # left alone, but reported (issue 17)
    assert plan("overwrite") == {str(edited): "update"}
    ctx = _context(repo, map_file, "overwrite")
    assert Counter(a.action for a in _emit(out, ctx))["update"] == 1
    assert edited.read_bytes() == (original / "models/bikeshare-regressor.yml").read_bytes()


def test_unmappable_datastore_blocks_the_assets_that_need_it(
    emitted: dict[str, tuple[Path, Path, Manifest]], tmp_path: Path
) -> None:
    repo, _, manifest = emitted["sdk-bikeshare"]
    map_file = _write_map(
        tmp_path / "qa.yaml", {"workspaceblobstore": "qablob", "workspaceartifactstore": "nosuch"}
    )
    actions = AzureMLAssetsImporter(tmp_path / "out").plan(_context(repo, map_file))
    blocked = {a.subject: a.reason for a in actions if a.action == "blocked"}
    models = {a.id for a in manifest.assets if a.kind == "model"}
    assert models <= set(blocked)
    assert all("'nosuch'" in blocked[m] for m in models)
    assert not (tmp_path / "out").exists()  # plan writes nothing


def test_emit_assets_through_the_import_engine(
    emitted: dict[str, tuple[Path, Path, Manifest]], tmp_path: Path
) -> None:
    repo, reference, _ = emitted["designer-autoprice"]
    mapping = load_mapping(_write_map(tmp_path / "qa.yaml"))
    request = ImportRequest(mapping=mapping, emit_assets=tmp_path / "assets")
    with open_target(str(tmp_path / "target"), descriptor=mapping.target) as target:
        result = run_import(repo, target, request)
    assert not result.failures, result.to_dict()
    emitted_actions = [a for a in result.actions if a.importer == "azureml_assets"]
    assert emitted_actions and {a.action for a in emitted_actions} == {"create"}
    for kind, file in load_index(tmp_path / "assets"):
        assert file.read_bytes() == (reference / file.relative_to(tmp_path / "assets")).read_bytes()
        if kind == "model":  # the folder the YAML names was restored at that place
            path = yaml.safe_load(file.read_text())["path"]
            datastore, _, rel = path.removeprefix("azureml://datastores/").partition("/paths/")
            container = TARGET["datastores"][datastore]
            assert (tmp_path / "target" / container / rel).is_dir(), path


@pytest.mark.parametrize(
    "text",
    [
        "",
        "sub/rg",
        "a/b/c/d",
        "not-a-guid/rg/ws",
        " /rg/ws",
        "11111111-2222-3333-4444-555555555555//ws",
    ],
)
def test_live_registration_refuses_a_bad_workspace(text: str, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--workspace"):
        register_live(tmp_path, workspace=text)


def test_live_registration_parses_the_workspace_and_needs_an_emitted_folder(tmp_path: Path) -> None:
    sub = "11111111-2222-3333-4444-555555555555"
    assert parse_workspace(f"{sub}/rg-ml-qa/mlw-qa") == (sub, "rg-ml-qa", "mlw-qa")
    with pytest.raises(UsageError, match=r"register\.json"):
        register_live(tmp_path, workspace=f"{sub}/rg-ml-qa/mlw-qa")
    (tmp_path / "register.json").write_text(
        json.dumps(
            {"format": "amlport.emit-assets/1", "assets": [{"kind": "model", "file": "../x"}]}
        )
    )
    with pytest.raises(UsageError, match="outside the folder"):
        register_live(tmp_path, workspace=f"{sub}/rg-ml-qa/mlw-qa")
