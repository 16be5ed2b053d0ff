"""An off-site repository (``az://…``, Azurite) in every command that takes a repository,
with one snapshot syntax (``REPO@ID``, ``--snapshot ID``, ``latest``), and ``ls``/``dump``/
``restore --select`` on format-1, format-2 and encrypted repositories (issue 21).

Before: ``map init az://…``, ``import az://…`` and ``pack az://…`` refused the URL,
``diff az://bk/prod@ID …`` parsed it as ``az://container@account`` and crashed, and no command
listed or extracted a snapshot's files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.cliutil import amlport

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parents[2]
WS = ROOT / "fixtures" / "workspaces" / "designer-autoprice"
QA = ROOT / "tests" / "integration" / "maps" / "qa.yaml"
CONTAINER = "offsite-c21"
MODEL = "model:Trained_model-a79bd916"


@pytest.fixture(scope="module")
def offsite(azurite: az.Azurite, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A workspace copy, an ``az://`` repository of it with two snapshots, its env."""
    root = tmp_path_factory.mktemp("offsite")
    src = root / "src"
    shutil.copytree(WS, src)
    env = {"AMLPORT_REPO_CONNECTION_STRING": azurite.source.connection_string}
    repo = f"az://{CONTAINER}/prod"
    for _ in range(2):
        ran = amlport("backup", str(src), "--repo", repo, "--tag", "nightly", env=env)
        assert ran.returncode == 0, ran.stderr
        (src / "azureml" / "extra.txt").write_text("changed\n", encoding="utf-8")
    listed = json.loads(amlport("snapshots", repo, "--json", env=env).stdout)["snapshots"]
    return {
        "repo": repo,
        "first": listed[0]["id"],
        "last": listed[-1]["id"],
        "src": str(src),
        "root": str(root),
        **env,
    }


def _env(o: dict[str, str]) -> dict[str, str]:
    return {"AMLPORT_REPO_CONNECTION_STRING": o["AMLPORT_REPO_CONNECTION_STRING"]}


def test_every_repository_command_takes_az_and_repo_at_id(
    offsite: dict[str, str], tmp_path: Path
) -> None:
    repo, first, env = offsite["repo"], offsite["first"], _env(offsite)
    at = f"{repo}@{first[:12]}"

    mapped = tmp_path / "map.yaml"
    ran = amlport("map", "init", at, "-o", str(mapped), env=env)
    assert ran.returncode == 0, ran.stderr
    assert yaml.safe_load(mapped.read_text(encoding="utf-8"))["datastores"]
    ran = amlport("map", "init", repo, "--snapshot", "latest", "--json", env=env)
    assert ran.returncode == 0 and json.loads(ran.stdout)["snapshot"] == offsite["last"]

    ran = amlport("verify", at, "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["snapshots"] == [first]
    deep = amlport("verify", repo, "--snapshot", "latest", "--deep", env=env)
    assert deep.returncode in (0, 1), deep.stderr  # 1: a spec invalid in the source
    assert "open_object" not in deep.stderr and "deep:" in deep.stdout

    pack = tmp_path / "one.tar.gz"
    ran = amlport("pack", at, "-o", str(pack), "--json", env=env)
    assert ran.returncode == 0 and json.loads(ran.stdout)["snapshot"] == first, ran.stderr

    target = tmp_path / "imported"
    ran = amlport("import", at, "--to", str(target), "--map", str(QA), "--json", env=env)
    assert ran.returncode == 0 and json.loads(ran.stdout)["snapshot"] == first, ran.stderr

    ran = amlport("diff", at, f"{repo}@{first}", env=env)  # the same snapshot twice
    assert ran.returncode == 0, ran.stderr
    ran = amlport("diff", f"{repo}@latest", offsite["src"], "--json", env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr  # nothing changed since the backup
    ran = amlport("diff", at, repo, "--json", env=env)  # the change between the two nights
    assert ran.returncode == 1, ran.stderr
    assert json.loads(ran.stdout)["files"]["added"] == 1

    html = tmp_path / "r.html"
    ran = amlport("report", at, "-o", str(html), env=env)
    assert ran.returncode == 0 and html.is_file(), ran.stderr

    restored = tmp_path / "restored"
    ran = amlport("restore", repo, "--snapshot", first[:8], "--to", str(restored),
                  "--map", str(QA), "--check", env=env)  # fmt: skip
    assert ran.returncode == 0 and "check: PASSED" in ran.stdout, ran.stderr
    for args in (("forget", repo, "--keep-last", "5", "--dry-run"),
                 ("repo", "upgrade", repo, "--dry-run"), ("snapshots", repo)):  # fmt: skip
        ran = amlport(*args, env=env)
        assert ran.returncode == 0, (args, ran.stderr)


def test_ls_and_dump_read_the_offsite_snapshot(offsite: dict[str, str], tmp_path: Path) -> None:
    repo, first, env = offsite["repo"], offsite["first"], _env(offsite)
    ran = amlport("ls", f"{repo}@{first}", "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    files = {f["path"]: f for f in json.loads(ran.stdout)["files"]}
    assert "files/workspaceartifactstore/extra.txt" not in files  # the first night's snapshot
    folder = "files/workspaceartifactstore"
    latest = json.loads(amlport("ls", repo, folder, "--json", env=env).stdout)
    assert f"{folder}/extra.txt" in {f["path"] for f in latest["files"]}
    assert all(f["path"].startswith(f"{folder}/") for f in latest["files"])

    name = next(p for p in files if p.endswith(".ilearner") or p.endswith("/Trained_model"))
    out = tmp_path / "dumped"
    ran = amlport("dump", f"{repo}@{first}", name, "-o", str(out), "--json", env=env)
    assert ran.returncode == 0, ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["digest"] == files[name]["digest"] and doc["size"] == files[name]["size"]
    assert out.stat().st_size == files[name]["size"]

    piped = amlport("dump", repo, "files/workspaceartifactstore/extra.txt", env=env)
    assert piped.returncode == 0 and piped.stdout == "changed\n", piped.stderr
    missing = amlport("dump", repo, "files/workspaceblobstore/no-such-file", env=env)
    assert missing.returncode == 2 and "holds no file" in missing.stderr


def test_restore_select_brings_back_one_model_with_what_it_needs(
    offsite: dict[str, str], tmp_path: Path
) -> None:
    repo, env = offsite["repo"], _env(offsite)
    whole, one = tmp_path / "whole", tmp_path / "one"
    ran = amlport("restore", repo, "--to", str(whole), "--map", str(QA), env=env)
    assert ran.returncode == 0, ran.stderr
    ran = amlport("restore", f"{repo}@latest", "--select", MODEL, "--to", str(one),
                  "--map", str(QA), "--check", "--json", env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    doc = json.loads(ran.stdout)
    assert doc["check"]["files_checked"] == doc["selected"]["files"] > 0
    assert any(a.startswith("model:") for a in doc["selected"]["roots"])
    assert any(a.startswith("environment:") for a in doc["selected"]["assets"])  # its needs
    got = {p.relative_to(one) for p in one.rglob("*") if p.is_file()}
    every = {p.relative_to(whole) for p in whole.rglob("*") if p.is_file()}
    assert got < every  # one model, not the workspace ...
    assert any(p.name == "Trained_model" for p in got)  # ... with its pointer ...
    assert not any("extra.txt" in str(p) for p in got)  # ... and nothing unclassified
    again = amlport("restore", repo, "--select", MODEL, "--to", str(one), "--map", str(QA),
                    "--json", env=env)  # fmt: skip
    assert again.returncode == 0 and set(json.loads(again.stdout)["import"]["counts"]) <= {"skip"}


@pytest.mark.parametrize(
    ("select", "said"),
    [
        ("model", "is not KIND:NAME"),
        ("model:no-such-model", "matches nothing"),
        ("widget:x", "is not KIND:NAME"),
    ],
)
def test_restore_select_that_names_nothing_is_a_usage_error(
    offsite: dict[str, str], tmp_path: Path, select: str, said: str
) -> None:
    ran = amlport("restore", offsite["repo"], "--select", select, "--to", str(tmp_path / "t"),
                  "--map", str(QA), env=_env(offsite))  # fmt: skip
    assert ran.returncode == 2 and said in ran.stderr, ran.stderr
    assert not (tmp_path / "t").exists()


HOSTILE = [
    ("az://offsite-c21/pr@od/x", "'@' may only end"),
    ("az://offsite-c21/prod@v1", "'@' may only end"),
    ("az://offsite-c21/../prod", "cannot be part of a repository prefix"),
    ("az://offsite-c21/pro\x1bd", "control character"),
    ("az://offsite-c21/prod@", "names no snapshot"),
    ("az://" + "a" * 1020, "characters long"),
    ("az://Bad_Container/prod", "not a valid container name"),
]


@pytest.mark.parametrize(("ref", "said"), HOSTILE, ids=[f"ref{i}" for i in range(len(HOSTILE))])
@pytest.mark.parametrize("command", ["ls", "map-init", "verify", "restore", "diff", "pack"])
def test_a_hostile_reference_is_a_usage_error_everywhere(
    offsite: dict[str, str], tmp_path: Path, command: str, ref: str, said: str
) -> None:
    args = {
        "ls": ["ls", ref],
        "map-init": ["map", "init", ref],
        "verify": ["verify", ref],
        "restore": ["restore", ref, "--to", str(tmp_path / "t"), "--map", str(QA)],
        "diff": ["diff", ref, offsite["src"]],
        "pack": ["pack", ref, "--snapshot", "latest", "-o", str(tmp_path / "p.tgz")],
    }[command]
    ran = amlport(*args, env=_env(offsite))
    assert ran.returncode == 2, ran.stderr
    assert said in ran.stderr and "Traceback" not in ran.stderr
    assert "\x1b" not in ran.stderr  # the control character is shown escaped


def test_two_snapshots_named_twice_is_a_usage_error(offsite: dict[str, str]) -> None:
    repo, env = offsite["repo"], _env(offsite)
    ran = amlport("ls", f"{repo}@{offsite['first']}", "--snapshot", offsite["last"], env=env)
    assert ran.returncode == 2 and "name two snapshots" in ran.stderr
    ran = amlport("forget", f"{repo}@latest", "--keep-last", "1", "--dry-run", env=env)
    assert ran.returncode == 2 and "takes a whole repository" in ran.stderr


@pytest.mark.parametrize("kind", ["format1", "encrypted-az"])
def test_ls_dump_and_select_on_format1_and_encrypted(
    azurite: az.Azurite, tmp_path: Path, kind: str
) -> None:
    env: dict[str, str] = {}
    extra: list[str] = []
    if kind == "format1":
        repo = str(tmp_path / "repo1")
        assert amlport("repo", "init", repo, "--format", "1").returncode == 0
    else:
        key = tmp_path / "k.json"
        assert amlport("repo", "key", "new", str(key)).returncode == 0
        repo = f"{azurite.source.url}/offsite-c21-enc/ws"
        env = {"AMLPORT_REPO_CONNECTION_STRING": azurite.source.connection_string}
        extra = ["--key-file", str(key)]
    make = ["--encrypt"] if kind != "format1" else []
    ran = amlport("backup", str(WS), "--repo", repo, *make, *extra, env=env)
    assert ran.returncode in (0, 1), ran.stderr
    listed = json.loads(amlport("ls", repo, "--assets", "--json", *extra, env=env).stdout)
    assert MODEL.split(":", 1)[1] in {a["name"] for a in listed["assets"]}
    path = next(f["path"] for f in listed["files"] if f["path"].endswith("/Trained_model"))
    out = tmp_path / "pointer.json"
    ran = amlport("dump", f"{repo}@latest", path, "-o", str(out), *extra, env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(out.read_text(encoding="utf-8"))  # a pointer: JSON, hash-checked
    target = tmp_path / "t"
    ran = amlport("restore", repo, "--select", MODEL, "--to", str(target), "--map", str(QA),
                  "--check", *extra, env=env)  # fmt: skip
    assert ran.returncode == 0 and "check: PASSED" in ran.stdout, ran.stdout + ran.stderr
    if kind != "format1":  # without the key nothing is listed
        ran = amlport("ls", repo, env=env)
        assert ran.returncode == 2, ran.stderr
