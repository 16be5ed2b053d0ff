"""Promotion and import end to end on local workspace copies: provenance hops carried forward,
every rewrite recorded (record and ``--json``), asset renames applied to names and references,
``map init SOURCE``, the identity record (written, adopted by a scan, hostile ones bounded),
``--strict``, the promote package's ``--emit-assets``, and ``diff --map`` across stages."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from helpers.cliutil import amlport

from amlport.model import findings as F
from amlport.model.provenance import IDENTITY_NAME
from amlport.storage.local import LocalSource
from amlport.walk import walk

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
MAPS = Path(__file__).resolve().parent / "maps"
SCHEMAS = REPO / "src" / "amlport" / "cli" / "schemas"
ALL = "components,data,environments,models,pipelines,runs"
ENV_YML = (
    "LocalUpload/cc8c5bc2e2d3b8795609ff687f38ad1a/lendingclub/environments/lendingclub-env.yml"
)
SPLIT_YML = "LocalUpload/cc8c5bc2e2d3b8795609ff687f38ad1a/lendingclub/components/split.yml"


def _json(done: Any, schema: str) -> dict[str, Any]:
    doc = json.loads(done.stdout)
    jsonschema.validate(doc, json.loads((SCHEMAS / f"{schema}.json").read_text()))
    return doc


def _prod_map(tmp: Path) -> Path:
    """A QA → prod map (QA's files name ``qablob``: that is the datastore to map)."""
    doc = yaml.safe_load((MAPS / "prod.yaml").read_text(encoding="utf-8"))
    doc["target"]["datastores"]["prodblob"] = doc["target"]["containers"]["blobstore"]
    doc["datastores"] = {"qablob": "prodblob", "workspaceartifactstore": "workspaceartifactstore"}
    path = tmp / "prod.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    tmp = tmp_path_factory.mktemp("chain")
    dev, qa, prod = tmp / "dev", tmp / "qa", tmp / "prod"
    shutil.copytree(WS / "designer-autoprice", dev)
    first = amlport("promote", str(dev), "--to", str(qa), "--map", str(MAPS / "qa.yaml"),
                    "--include", ALL, "--json")  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    prod_map = _prod_map(tmp)
    second = amlport("promote", str(qa), "--to", str(prod), "--map", str(prod_map),
                     "--include", ALL, "--json")  # fmt: skip
    assert second.returncode == 0, second.stderr[-2000:]
    return {
        "dev": dev, "qa": qa, "prod": prod, "prod_map": prod_map, "tmp": tmp,
        "first": _json(first, "promote"), "second": _json(second, "promote"),
    }  # fmt: skip


def test_prod_provenance_lists_the_dev_and_qa_hops(chain: dict[str, Any]) -> None:
    dev_ws = yaml.safe_load((WS / "designer-autoprice" / "workspace.yaml").read_text())
    want = [(dev_ws["account"], dev_ws["workspace"]), ("stqaautoprice01", "mlw-qa")]
    assert [(h["account"], h["workspace"]) for h in chain["second"]["hops"]] == want
    record = json.loads((chain["prod"] / chain["second"]["record"]).read_text())
    assert [(h["account"], h["workspace"]) for h in record["hops"]] == want
    assert record["rewrites"] == chain["second"]["rewrites"]
    rules = {r["rule"] for r in record["rewrites"]}
    assert any(r.endswith(":import") for r in rules) and any(r.endswith(":export") for r in rules)
    # an export of prod carries both hops into its snapshot, and adds prod's own
    repo = chain["tmp"] / "prod-repo"
    assert amlport("export", str(chain["prod"]), "--repo", str(repo)).returncode in (0, 1)
    from helpers.cliutil import manifest_of

    hops = manifest_of(repo)["provenance"]
    assert [(h["account"], h["workspace"]) for h in hops] == want


def test_targets_record_their_identity(chain: dict[str, Any]) -> None:
    for stage, workspace in (("qa", "mlw-qa"), ("prod", "mlw-prod")):
        doc = json.loads((chain[stage] / "azureml" / IDENTITY_NAME).read_text())
        assert doc["workspace"]["workspace"] == workspace
        assert chain["first" if stage == "qa" else "second"]["identity"].endswith(IDENTITY_NAME)
    # a re-run writes nothing (the identity is there, the same)
    again = amlport("promote", str(chain["dev"]), "--to", str(chain["qa"]), "--map",
                    str(MAPS / "qa.yaml"), "--include", ALL, "--json")  # fmt: skip
    doc = _json(again, "promote")
    assert set(doc["counts"]) == {"skip"} and doc["record"] is None


def test_diff_under_the_maps_reports_no_drift_then_the_drift(chain: dict[str, Any]) -> None:
    maps = ("--map", str(MAPS / "qa.yaml"), "--map", str(chain["prod_map"]))
    plain = amlport("diff", str(chain["dev"]), str(chain["prod"]))
    assert plain.returncode == 1  # every re-binding reads as drift without the maps
    same = amlport("diff", str(chain["dev"]), str(chain["prod"]), *maps, "--json")
    assert same.returncode == 0, same.stdout[-3000:]
    doc = _json(same, "diff")
    assert doc["different"] is False and doc["files"]["unchanged"] > 100
    one = amlport("diff", str(chain["dev"]), str(chain["qa"]), "--map", str(MAPS / "qa.yaml"))
    assert one.returncode == 0, one.stdout
    # drift: a pointer re-bound elsewhere by hand, a payload changed
    work = chain["tmp"] / "drifted"
    shutil.copytree(chain["prod"], work)
    payload = next(work.rglob("data_type.json"))
    payload.write_text(payload.read_text() + " ", encoding="utf-8")
    drift = amlport("diff", str(chain["dev"]), str(work), *maps, "--json")
    assert drift.returncode == 1
    doc = _json(drift, "diff")
    assert doc["files"]["changed"] == 1 and doc["files"]["added"] == 0


def test_diff_takes_per_side_options(chain: dict[str, Any]) -> None:
    bare = chain["tmp"] / "bare-qa"
    shutil.copytree(chain["qa"], bare)
    (bare / "workspace.yaml").unlink()  # QA known by its identity record alone
    dev_file = WS / "designer-autoprice" / "workspace.yaml"
    done = amlport("diff", str(chain["dev"]), str(bare), "--map", str(MAPS / "qa.yaml"),
                   "--a-workspace-file", str(dev_file))  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:]


def test_map_init_from_a_source(chain: dict[str, Any]) -> None:
    done = amlport("map", "init", str(chain["qa"]), "--json")
    doc = _json(done, "map-init")
    assert doc["snapshot"] is None
    template = yaml.safe_load(doc["map"])
    assert template["source"] == "stqaautoprice01/mlw-qa"
    assert {"qablob", "workspaceblobstore", "workspaceartifactstore"} <= set(template["datastores"])
    assert "Trained_model-a79bd916" in template["assets"]


def test_a_scan_adopts_the_identity_record_and_bounds_hostile_ones(
    chain: dict[str, Any], tmp_path: Path
) -> None:
    bare = tmp_path / "qa"
    shutil.copytree(chain["qa"], bare)
    (bare / "workspace.yaml").unlink()
    inv = walk(LocalSource(bare))
    assert inv.source.workspace == "mlw-qa" and inv.source.container_of("qablob")
    record = bare / "azureml" / IDENTITY_NAME
    good = record.read_bytes()
    hostile = {
        "deep": b'{"format": "amlport.identity/1", "workspace": '
        + b"[" * 50_000 + b"]" * 50_000 + b"}",
        "huge": b" " * (70 * 1024) + good,
        "control": good.replace(b"mlw-qa", b"mlw\\u001b[31mqa"),
        "other containers": good.replace(b"99999999-8888", b"77777777-8888"),
    }  # fmt: skip
    for name, raw in hostile.items():
        record.write_bytes(raw)
        inv = walk(LocalSource(bare))
        assert inv.source.workspace is None, name  # guessed, not adopted
        problems = [
            f for f in inv.findings if f.code == F.MALFORMED_FILE and IDENTITY_NAME in f.path
        ]
        assert problems and all("\x1b" not in f.message for f in problems), name


def test_asset_renames_reach_the_asset_name_and_its_references(tmp_path: Path) -> None:
    doc = yaml.safe_load((MAPS / "qa.yaml").read_text(encoding="utf-8"))
    doc["assets"] = {"lendingclub-env": "lendingclub-env-prod"}
    map_file = tmp_path / "renames.yaml"
    map_file.write_text(yaml.safe_dump(doc), encoding="utf-8")
    target = tmp_path / "qa"
    done = amlport("promote", str(WS / "v2-lendingclub"), "--to", str(target), "--map",
                   str(map_file), "--include", ALL, "--json")  # fmt: skip
    assert done.returncode in (0, 1), done.stderr[-2000:]
    result = _json(done, "promote")
    blob = target / doc["target"]["containers"]["blobstore"]
    env = yaml.safe_load((blob / ENV_YML).read_text(encoding="utf-8"))
    split = yaml.safe_load((blob / SPLIT_YML).read_text(encoding="utf-8"))
    assert env["name"] == "lendingclub-env-prod"
    assert split["environment"] == "azureml:lendingclub-env-prod@latest"
    renames = [r for r in result["rewrites"] if r["rule"] == "asset_name:import"]
    assert renames and renames[0]["before"] == "lendingclub-env"


def test_import_records_every_rewrite(tmp_path: Path) -> None:
    repo, target = tmp_path / "repo", tmp_path / "qa"
    assert amlport("backup", str(WS / "designer-autoprice"), "--repo", str(repo)).returncode in (
        0,
        1,
    )
    done = amlport("import", str(repo), "--to", str(target), "--map", str(MAPS / "qa.yaml"),
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    doc = _json(done, "import")
    assert doc["rewrites"] and doc["identity"] == f"azureml/{IDENTITY_NAME}"
    pointer = [r for r in doc["rewrites"] if r["location"] == "/AmlDataStoreName"]
    assert pointer and all(r["after"] == "qablob" for r in pointer)
    record = json.loads((target / doc["record"]).read_text())
    assert record["rewrites"] == doc["rewrites"]
    again = _json(amlport("import", str(repo), "--to", str(target), "--map",
                          str(MAPS / "qa.yaml"), "--json"), "import")  # fmt: skip
    assert set(again["counts"]) == {"skip"} and again["record"] is None


LONG = (
    "azureml://subscriptions/s/resourcegroups/r/workspaces/ws-other/datastores/"
    "workspaceblobstore/paths/data/x.csv"
)


def test_a_long_uri_of_another_workspace_is_kept_without_an_identity(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(WS / "v2-lendingclub", src)
    (src / "workspace.yaml").unlink()  # no identity: the cron recipe passes none
    yml = next((src).rglob("split.yml"))
    yml.write_text(yml.read_text() + f"description: reads {LONG}\n", encoding="utf-8")
    target = tmp_path / "qa"
    args = ("promote", str(src), "--to", str(target), "--map", str(MAPS / "qa.yaml"),
            "--include", ALL, "--json")  # fmt: skip
    doc = json.loads(amlport(*args).stdout)
    assert any("ws-other" in w and "unknown" in w for w in doc["warnings"])
    assert LONG in next(target.rglob("split.yml")).read_text()
    strict = json.loads(amlport(*args, "--strict", "--on-conflict", "overwrite").stdout)
    assert any("split.yml" in b and "ws-other" in b for b in strict["blocked"])


@pytest.mark.mlflow
def test_promote_registers_mlflow_models_and_emits_assets_with_every_hop(
    tmp_path: Path, mlflow_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", mlflow_server)
    dev, qa, prod = WS / "sdk-bikeshare", tmp_path / "qa", tmp_path / "prod"
    first = amlport("promote", str(dev), "--to", str(qa), "--map", str(MAPS / "qa.yaml"),
                    "--include", ALL)  # fmt: skip
    assert first.returncode == 0, first.stderr[-2000:]
    template = yaml.safe_load(_json(amlport("map", "init", str(qa), "--json"), "map-init")["map"])
    prod_map = yaml.safe_load(_prod_map(tmp_path).read_text(encoding="utf-8"))
    tag = uuid.uuid4().hex[:8]  # the session's server is shared: names of this test's own
    prod_map["assets"] = {name: f"pr{tag}-{name}" for name in template["assets"]}
    map_file = tmp_path / "prod-renames.yaml"
    map_file.write_text(yaml.safe_dump(prod_map), encoding="utf-8")
    emit = tmp_path / "assets"
    done = amlport("promote", str(qa), "--to", str(prod), "--map", str(map_file), "--include",
                   ALL, "--emit-assets", str(emit), "--register-mlflow", mlflow_server,
                   "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    doc = _json(done, "promote")
    registered = [a for a in doc["assets"] if a["importer"] == "mlflow"]
    assert registered and {a["action"] for a in registered} == {"create"}
    assert (emit / "register.sh").is_file()
    dev_ws = yaml.safe_load((dev / "workspace.yaml").read_text(encoding="utf-8"))
    client = MlflowClient(mlflow_server, registry_uri=mlflow_server)
    versions = client.search_model_versions(f"name LIKE 'pr{tag}-%'")
    assert len(versions) == len(registered)
    for mv in versions:
        hops = json.loads(mv.tags["amlport.provenance"])
        assert [(h["account"], h["workspace"]) for h in hops] == [
            (dev_ws["account"], dev_ws["workspace"]),
            ("stqaautoprice01", "mlw-qa"),
        ]
