"""A pointer whose datastore is not mapped is blocked, with the rest of its asset.

Before: with ``workspaceblobstore`` left out of the map's ``datastores:`` (the target has a
datastore of that name), the model folder under it was blocked but the ``Trained_model``
pointer in the artifact store was rewritten to the target's ``workspaceblobstore`` and
written: it pointed at nothing in the restored workspace.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers.backup import MAPS, WS, cli
from helpers.cliutil import manifest_of

from amlport.importers.base import ImportAction
from amlport.importers.datastore import block_whole_assets, pointer_datastore
from amlport.model.manifest import AssetEntry, Manifest

QA = MAPS / "qa.yaml"
RUN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
POINTER = f"files/workspaceartifactstore/ExperimentRun/dcid.{RUN}/Trained_model"


def _map(tmp: Path, datastores: dict[str, str]) -> Path:
    doc = yaml.safe_load(QA.read_text(encoding="utf-8"))
    doc["datastores"] = datastores
    path = tmp / "map.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("ptr") / "repo"
    assert cli("backup", str(WS / "designer-autoprice"), "--repo", str(repo)).returncode == 0
    return repo


def _model(doc: dict[str, object], repo: Path) -> list[str]:
    snapshot = manifest_of(repo)
    model = next(a for a in snapshot["assets"] if POINTER in a["files"] and a["kind"] == "model")
    return list(model["files"])


def test_pointer_to_an_unmapped_datastore_blocks_its_whole_model(
    repo: Path, tmp_path: Path
) -> None:
    mapfile = _map(tmp_path, {"workspaceartifactstore": "workspaceartifactstore"})
    target = tmp_path / "t"
    res = cli("import", str(repo), "--to", str(target), "--map", str(mapfile), "--json")
    assert res.returncode == 3, res.stderr
    doc = json.loads(res.stdout)
    actions = {a["subject"]: a for a in doc["actions"]}
    pointer = actions[POINTER]
    assert pointer["action"] == "blocked" and "'workspaceblobstore'" in pointer["reason"]
    for path in _model(doc, repo):
        assert actions[path]["action"] == "blocked", path
    assert not (target / "azureml" / POINTER.split("/", 2)[2]).exists()  # no dangling pointer
    assert not list(target.rglob("data.ilearner"))
    assert not list(target.rglob("trained_model_outputs"))  # nothing of the model


def test_with_every_datastore_mapped_the_model_is_restored(repo: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    res = cli("import", str(repo), "--to", str(target), "--map", str(QA), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["counts"] == {"create": len(json.loads(res.stdout)["actions"])}
    assert list(target.rglob("Trained_model"))


def test_a_pointer_to_a_hostile_datastore_name_is_blocked(tmp_path: Path) -> None:
    """A pointer naming ``ext[prod][/]..`` + control characters + 1,024 characters."""
    ws = tmp_path / "ws"
    shutil.copytree(WS / "designer-autoprice", ws)
    ptr = ws / "azureml" / "ExperimentRun" / f"dcid.{RUN}" / "Trained_model"
    hostile = "ext[prod][/]..\x1b[31m" + "x" * 1010
    ptr.write_text(
        ptr.read_text(encoding="utf-8").replace('"workspaceblobstore"', json.dumps(hostile)),
        encoding="utf-8",
    )
    repo, target = tmp_path / "repo", tmp_path / "t"
    assert cli("backup", str(ws), "--repo", str(repo)).returncode in (0, 1)
    res = cli("import", str(repo), "--to", str(target), "--map", str(QA), "--json")
    assert res.returncode == 3 and "Traceback" not in res.stderr, res.stderr
    actions = {a["subject"]: a for a in json.loads(res.stdout)["actions"]}
    assert actions[POINTER]["action"] == "blocked"
    assert not (target / "azureml" / POINTER.split("/", 2)[2]).exists()


def test_pointer_datastore_reads_only_pointers() -> None:
    assert pointer_datastore(b'{"RelativePath":"a","AmlDataStoreName":"ds[/]"}') == "ds[/]"
    assert pointer_datastore(b'{"RelativePath":"a"}') is None
    assert (
        pointer_datastore(b'{"RelativePath": "x\\"]]]", "AmlDataStoreName": ' + b"[" * 3000) is None
    )
    assert pointer_datastore(b"plain text RelativePath") is None


def test_a_block_spreads_to_its_asset_once_and_not_to_the_catch_all() -> None:
    def act(path: str, action: str = "create") -> ImportAction:
        return ImportAction("datastore", action, path, f"c/{path}", "why" if action else "")

    manifest = Manifest(
        source={"account": "a"},
        assets=[
            AssetEntry("model", "m", "model:m", files=["p", "m1"]),
            AssetEntry("run", "r", "run:r", files=["m1", "r1"]),  # m1 blocked by spreading only
            AssetEntry("data", "u", "u", files=["p", "u1"], attrs={"unclassified": True}),
        ],
    )
    out = {
        a.subject: a.action
        for a in block_whole_assets(
            [act("p", "blocked"), act("m1"), act("r1"), act("u1"), act("s", "skip")], manifest
        )
    }
    assert out == {"p": "blocked", "m1": "blocked", "r1": "create", "u1": "create", "s": "skip"}
