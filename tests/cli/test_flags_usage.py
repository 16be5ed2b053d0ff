"""Flags that cannot mislead (issue 22, item 3): contradictory or ineffective combinations
are usage errors (exit 2, nothing done); one vocabulary (``--repo`` a repository, ``--to`` a
workspace; old spellings hidden, warned, for one release); errors that name the real cause;
``-o`` checked the same way by every command; statistics equal to what the repository holds.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
DESIGNER = WS / "designer-autoprice"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"


def usage_error(res: object, needle: str) -> None:
    out = res.stdout + res.stderr  # type: ignore[attr-defined]
    assert res.returncode == 2, out  # type: ignore[attr-defined]
    assert needle in res.stderr, out  # type: ignore[attr-defined]
    assert "Traceback" not in out and "internal error" not in out


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    place = tmp_path_factory.mktemp("flags") / "repo"
    assert amlport("backup", str(DESIGNER), "--repo", str(place)).returncode in (0, 1)
    return place


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["audit", str(DESIGNER), "--json", "--format", "sarif"], "two formats"),
        (["lineage", str(DESIGNER), "--json", "--format", "dot"], "two formats"),
        (["lineage", str(DESIGNER), "--upstream"], "--upstream needs --node"),
        (["lineage", str(DESIGNER), "--downstream"], "--downstream needs --node"),
    ],
    ids=["audit-json-sarif", "lineage-json-dot", "upstream-alone", "downstream-alone"],
)
def test_contradicting_or_idle_flags_are_usage_errors(args: list[str], needle: str) -> None:
    usage_error(amlport(*args), needle)


def test_import_workspace_without_emit_assets_is_refused_before_writing(
    repo: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t"
    res = amlport(
        "import", str(repo), "--to", str(target), "--map", str(QA), "--workspace", "s/rg/ws"
    )
    usage_error(res, "--emit-assets")
    assert not target.exists()


def test_export_takes_repo_and_the_old_to_still_works_with_a_warning(tmp_path: Path) -> None:
    new = amlport("export", str(DESIGNER), "--repo", str(tmp_path / "a"), "--json")
    old = amlport("export", str(DESIGNER), "--to", str(tmp_path / "b"), "--json")
    assert new.returncode == old.returncode, old.stderr
    assert "deprecated" in old.stderr and "--repo" in old.stderr
    assert "deprecated" not in new.stderr
    assert json.loads(new.stdout)["assets"] == json.loads(old.stdout)["assets"]


def test_export_with_both_spellings_or_neither_is_a_usage_error(tmp_path: Path) -> None:
    both = ["--repo", str(tmp_path / "a"), "--to", str(tmp_path / "b")]
    usage_error(amlport("export", str(DESIGNER), *both), "same option")
    usage_error(amlport("export", str(DESIGNER)), "missing option --repo")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_unpack_takes_repo(repo: Path, tmp_path: Path) -> None:
    snap = json.loads(amlport("snapshots", str(repo), "--json").stdout)["snapshots"][0]["id"]
    pack = tmp_path / "p.tar.gz"
    assert amlport("pack", str(repo), "--snapshot", snap, "-o", str(pack)).returncode == 0
    assert amlport("unpack", str(pack), "--repo", str(tmp_path / "r")).returncode == 0
    old = amlport("unpack", str(pack), "--to", str(tmp_path / "r2"))
    assert old.returncode == 0 and "deprecated" in old.stderr


@pytest.mark.parametrize("key", ["not a key!", "abc", "AccountKey=abc;", "ü" * 10])
def test_a_malformed_account_key_says_so_not_az_login(key: str) -> None:
    res = amlport("scan", "https://acct.blob.core.windows.net", "--account-key", key)
    usage_error(res, "--account-key is not a storage account key")
    assert "az login" not in res.stderr and key not in res.stderr


def test_a_malformed_repo_account_key_says_so(tmp_path: Path) -> None:
    res = amlport("snapshots", "az://c", "--repo-account-key", "%%%")
    usage_error(res, "--repo-account-key is not a storage account key")


@pytest.mark.parametrize("name", ["README.md", "weird[1]..\x1b.txt"])
def test_scan_of_a_file_says_it_is_a_file(name: str, tmp_path: Path) -> None:
    victim = tmp_path / name
    victim.write_text("x", encoding="utf-8")
    res = amlport("scan", str(victim))
    usage_error(res, "is a file, not a folder")
    assert "\x1b" not in res.stderr


def test_a_bad_workspace_yaml_names_file_line_and_problem(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(DESIGNER, src)
    (src / "workspace.yaml").write_text("account: x\n  blobstore_container: [a\n", "utf-8")
    res = amlport("scan", str(src))
    usage_error(res, "workspace.yaml")
    assert "line 2" in res.stderr and "ParserError" not in res.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["scan", "{src}", "-o", "{out}"],
        ["lineage", "{src}", "-o", "{out}"],
        ["audit", "{src}", "-o", "{out}"],
        ["map", "init", "{repo}", "-o", "{out}"],
        ["pack", "{repo}", "--snapshot", "0", "-o", "{out}"],
    ],
    ids=["scan", "lineage", "audit", "map-init", "pack"],
)
def test_o_into_a_missing_folder_is_exit_2_for_every_command(
    command: list[str], repo: Path, tmp_path: Path
) -> None:
    out = tmp_path / "missing" / "out.txt"
    res = amlport(*(a.format(src=DESIGNER, repo=repo, out=out) for a in command))
    usage_error(res, "does not exist")
    assert not out.parent.exists()


def test_export_statistics_equal_what_the_repository_holds(tmp_path: Path) -> None:
    """Two blobs with the same bytes are one object: counted once (was 121 for 120)."""
    src = tmp_path / "src"
    shutil.copytree(DESIGNER, src)
    store = next(p for p in src.iterdir() if p.name.startswith("azureml-blobstore"))
    for name in ("twin-a.txt", "twin-b.txt", "sub/twin-c.txt"):
        (store / name).parent.mkdir(parents=True, exist_ok=True)
        (store / name).write_text("same bytes in three blobs\n", encoding="utf-8")
    repo = tmp_path / "repo"
    res = amlport("backup", str(src), "--repo", str(repo), "--json")
    assert res.returncode in (0, 1), res.stderr
    transfer = json.loads(res.stdout)["transfer"]
    held = json.loads(amlport("verify", str(repo), "--json").stdout)
    assert transfer["new_objects"] == held["objects_checked"]
    assert transfer["new_bytes"] == held["bytes_checked"]
    again = json.loads(amlport("backup", str(src), "--repo", str(repo), "--json").stdout)
    assert again["transfer"]["new_objects"] == again["transfer"]["new_bytes"] == 0


@pytest.mark.skipif(
    importlib.util.find_spec("azure.ai.ml") is None or importlib.util.find_spec("mlflow") is None,
    reason="verify --deep needs amlport[azureml,mlflow]",
)
def test_verify_deep_prints_no_experimental_class_lines(repo: Path) -> None:
    res = amlport("verify", str(repo), "--deep")
    assert res.returncode == 0, res.stderr
    assert "experimental" not in (res.stdout + res.stderr).lower()
