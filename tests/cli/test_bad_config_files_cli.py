"""Hostile or wrong-shaped input as a user meets it (issue 17): an unfilled ``map init``
template, a map that points a container outside the target, a broken or wrong-shaped
``workspace.yaml`` and hostile pointer/YAML content — each a one-line error or a finding
with the documented exit code, never a traceback or an internal error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"
TRAIN_POINTER = "ExperimentRun/dcid.a79bd916-2790-4202-89ed-fbdede3ccf1d/Trained_model"


def clean(res: object, code: int) -> str:
    out = res.stdout + res.stderr  # type: ignore[attr-defined]
    assert res.returncode == code, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and "internal error" not in out
    return out


@pytest.fixture(scope="module")
def backup_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("b") / "repo"
    res = amlport("backup", str(WS / "designer-autoprice"), "--repo", str(repo))
    assert res.returncode in (0, 1), res.stderr
    return repo


def test_an_unfilled_map_init_template_is_refused_by_import_and_restore(
    backup_repo: Path, tmp_path: Path
) -> None:
    template = tmp_path / "map.yaml"
    assert amlport("map", "init", str(backup_repo), "-o", str(template)).returncode == 0
    target = tmp_path / "t"
    for args in (
        ("import", str(backup_repo), "--to", str(target), "--map", str(template), "--dry-run"),
        ("restore", str(backup_repo), "latest", "--to", str(target), "--map", str(template),
         "--check"),
    ):  # fmt: skip
        out = clean(amlport(*args), 2)
        assert str(template) in out
        assert "target.account still holds the placeholder '<target storage account>'" in out
        assert "PASSED" not in out
    assert not (target / "azureml").exists()


@pytest.mark.parametrize("container", ["../../escape", "/tmp/abs-escape", "x/../../escape"])
def test_a_map_container_outside_the_target_is_refused_before_any_write(
    backup_repo: Path, tmp_path: Path, container: str
) -> None:
    doc = yaml.safe_load(QA.read_text(encoding="utf-8"))
    doc["target"]["containers"]["blobstore"] = container
    doc["target"]["datastores"]["qablob"] = container
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc), encoding="utf-8")
    target = tmp_path / "deep" / "t"
    out = clean(amlport("import", str(backup_repo), "--to", str(target), "--map", str(bad)), 2)
    assert "target.containers.blobstore" in out and "is not a container name" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]
    assert not Path("/tmp/abs-escape").exists()


def test_a_broken_workspace_yaml_names_the_file_and_the_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WS / "designer-autoprice", ws)
    (ws / "workspace.yaml").write_text(
        "account: st1\ncontainers:\n  blobstore: [azureml\n  artifacts: azureml\n", "utf-8"
    )
    out = clean(amlport("scan", str(ws)), 2)
    assert f"{ws / 'workspace.yaml'}: invalid YAML at line " in out.replace("\n", "")
    assert "ParserError" not in out


@pytest.mark.parametrize(
    ("containers", "says"),
    [
        (["azureml-blobstore-x", "azureml"], "'containers' must be a mapping"),
        ("azureml-blobstore-x", "'containers' must be a mapping"),
        ({"blobstor": "azureml-blobstore-x"}, "did you mean 'blobstore'?"),
    ],
)
def test_a_wrong_shaped_workspace_yaml_names_the_key(
    tmp_path: Path, containers: object, says: str
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WS / "designer-autoprice", ws)
    doc = yaml.safe_load((ws / "workspace.yaml").read_text(encoding="utf-8"))
    doc["containers"] = containers
    (ws / "workspace.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    out = clean(amlport("scan", str(ws)), 2).replace("\n", " ")
    assert "workspace.yaml" in out and says in out


def test_hostile_pointer_and_yaml_content_become_findings(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(WS / "designer-autoprice", ws)
    pointer = ws / "azureml" / TRAIN_POINTER
    pointer.write_text(
        '{"RelativePath": "x\\"' + "]" * 3000 + '", "AmlDataStoreName": '
        + "[" * 3000 + "]" * 3000 + "}",
        encoding="utf-8",
    )  # fmt: skip
    chain = ["x0: &a0 [lol]"] + [f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 26)]
    spec = pointer.parent / "outputs" / "environment.yml"
    spec.parent.mkdir(parents=True, exist_ok=True)
    spec.write_text("\n".join(chain) + "\n", encoding="utf-8")
    res = amlport("scan", str(ws), "--json", timeout=120)
    clean(res, 1)
    found = json.loads(res.stdout)["inventory"]["findings"]
    findings = {f["path"]: f["message"] for f in found}
    assert "nested deeper than 64" in findings[f"azureml/{TRAIN_POINTER}"]
    spec_path = f"azureml/{TRAIN_POINTER.rsplit('/', 1)[0]}/outputs/environment.yml"
    assert "aliases expand" in findings[spec_path]
