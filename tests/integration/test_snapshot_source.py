"""Snapshots name their source: ``latest`` in a repository holding several workspaces.

Before: ``restore R latest`` (and ``import``, ``map init``, ``diff R R``) took whichever
workspace was backed up last, with the other's map, exit 0. Now ``latest`` without
``--source`` is an error listing the sources (exit 2, nothing written), ``--source`` picks
one, and a map written by ``map init`` names its source and refuses another's snapshot.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from helpers.backup import MAPS, WS, cli

from amlport.backup import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.bundle.sources import SourceRef, choose_latest
from amlport.errors import UsageError
from amlport.storage.local import LocalSource

QA = MAPS / "qa.yaml"
AUTOPRICE = ("azmlfromscratchstr", "azml-from-scratch")
BIKESHARE = ("stbikesharesdk4417", "mlw-bikeshare-dev")
# A workspace name with markup, '..', a path and 1,024 characters (workspace.yaml refuses
# control characters; they are tried in --source itself).
HOSTILE = "ws[prod][/]..\\/x" + "n" * (1024 - 16)


def _backup(source: Path, repo: Path) -> str:
    return str(run_backup(LocalSource(source), repo, BackupRequest()).snapshot_id)


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    """One repository, autoprice backed up first and bikeshare last."""
    repo = tmp_path_factory.mktemp("two") / "repo"
    first = _backup(WS / "designer-autoprice", repo)
    last = _backup(WS / "sdk-bikeshare", repo)
    return {"repo": repo, "autoprice": first, "bikeshare": last}


def _map_for(repo: Path, source: str, tmp: Path) -> Path:
    """``map init --source`` with the target filled in from the QA map."""
    res = cli("map", "init", str(repo), "--source", source)
    assert res.returncode == 0, res.stderr
    doc = yaml.safe_load(res.stdout)
    qa = yaml.safe_load(QA.read_text(encoding="utf-8"))
    doc["target"] = qa["target"]
    doc["datastores"] = {ds: ds for ds in doc["datastores"]}
    path = tmp / "map.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ("restore", "{repo}", "latest", "--to", "{t}", "--map", str(QA)),
        ("import", "{repo}", "--to", "{t}", "--map", str(QA)),
        ("import", "{repo}", "--to", "{t}", "--map", str(QA), "--dry-run"),
        ("map", "init", "{repo}"),
        ("diff", "{repo}", "{repo}"),
    ],
    ids=["restore", "import", "import-dry-run", "map-init", "diff"],
)
def test_latest_of_several_sources_is_refused_and_lists_them(
    two: dict[str, str | Path], tmp_path: Path, args: tuple[str, ...]
) -> None:
    target = tmp_path / "t"
    res = cli(*(a.format(repo=two["repo"], t=target) for a in args))
    assert res.returncode == 2, (res.stdout, res.stderr)
    err = " ".join(res.stderr.split())  # unwrapped
    assert "ambiguous" in err and "--source" in err
    for account, workspace in (AUTOPRICE, BIKESHARE):
        assert f"{account}/{workspace}" in err
    assert "Traceback" not in res.stderr
    assert not target.exists()  # nothing written


def test_source_picks_that_workspaces_latest(two: dict[str, str | Path], tmp_path: Path) -> None:
    target = tmp_path / "t"
    account, workspace = AUTOPRICE
    for source in (account, f"{account}/{workspace}", f"{account.upper()}/{workspace}"):
        res = cli(
            "import", str(two["repo"]), "--source", source, "--to", str(target),
            "--map", str(QA), "--dry-run", "--json",
        )  # fmt: skip
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["snapshot"] == two["autoprice"]
    res = cli(
        "restore", str(two["repo"]), "latest", "--source", BIKESHARE[0], "--to", str(target),
        "--map", str(QA), "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["snapshot"] == two["bikeshare"]


def test_unknown_source_is_refused_with_the_list(two: dict[str, str | Path]) -> None:
    res = cli("map", "init", str(two["repo"]), "--source", "stnosuch/ws")
    assert res.returncode == 2
    err = " ".join(res.stderr.split())
    assert "no snapshot of source 'stnosuch/ws'" in err and BIKESHARE[0] in err
    # a source matching the account but not the workspace is no match either
    res = cli("map", "init", str(two["repo"]), "--source", f"{BIKESHARE[0]}/other")
    assert res.returncode == 2 and "no snapshot of source" in " ".join(res.stderr.split())


def test_map_init_names_the_source_and_latest_follows_the_map(
    two: dict[str, str | Path], tmp_path: Path
) -> None:
    mapfile = _map_for(Path(two["repo"]), AUTOPRICE[0], tmp_path)
    assert yaml.safe_load(mapfile.read_text(encoding="utf-8"))["source"] == "/".join(AUTOPRICE)
    target = tmp_path / "t"
    # no --source: the map says which workspace, although bikeshare was backed up last
    res = cli(
        "restore", str(two["repo"]), "latest", "--to", str(target), "--map", str(mapfile),
        "--json",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["snapshot"] == two["autoprice"]


def test_a_map_of_another_source_is_refused(two: dict[str, str | Path], tmp_path: Path) -> None:
    mapfile = _map_for(Path(two["repo"]), AUTOPRICE[0], tmp_path)
    target = tmp_path / "t"
    for args in (
        ("restore", str(two["repo"]), str(two["bikeshare"])[:12]),
        ("restore", str(two["repo"]), "latest", "--source", BIKESHARE[0]),
        ("import", str(two["repo"]), "--snapshot", str(two["bikeshare"])),
    ):
        res = cli(*args, "--to", str(target), "--map", str(mapfile))
        assert res.returncode == 2, (args, res.stderr)
        err = " ".join(res.stderr.split())
        assert f"is of source '{'/'.join(BIKESHARE)}'" in err and "map file" in err
        assert not target.exists()


def test_snapshots_filters_by_source(two: dict[str, str | Path]) -> None:
    res = cli("snapshots", str(two["repo"]), "--source", BIKESHARE[0], "--json")
    assert res.returncode == 0, res.stderr
    assert [r["id"] for r in json.loads(res.stdout)["snapshots"]] == [two["bikeshare"]]


def test_a_single_source_repository_keeps_latest_as_it_was(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    _backup(WS / "designer-autoprice", repo)
    newest = _backup(WS / "designer-autoprice", repo)  # same source twice
    res = cli("import", str(repo), "--to", str(tmp_path / "t"), "--map", str(QA), "--dry-run")
    assert res.returncode == 0, res.stderr
    with Repository.open(repo) as r:
        assert choose_latest(r.list_snapshots(), None, where="r").id == newest


def test_hostile_workspace_names_are_listed_and_selectable(tmp_path: Path) -> None:
    """Markup, '..', a path and 1,024 characters in a workspace name; control characters
    in --source."""
    hostile = tmp_path / "hostile"
    shutil.copytree(WS / "designer-autoprice", hostile)
    desc = yaml.safe_load((hostile / "workspace.yaml").read_text(encoding="utf-8"))
    desc.update(account="sthostile0001", workspace=HOSTILE)
    (hostile / "workspace.yaml").write_text(yaml.safe_dump(desc), encoding="utf-8")
    repo = tmp_path / "repo"
    mine = _backup(hostile, repo)
    _backup(WS / "sdk-bikeshare", repo)
    res = cli("map", "init", str(repo))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    err = " ".join(res.stderr.split())
    assert "sthostile0001/ws[prod][/]" in err  # listed, brackets intact
    # selectable by account, by ACCOUNT/WORKSPACE and by key; the map names it by its key
    with Repository.open(repo) as r:
        infos = r.list_snapshots()
        key = next(i.source_key for i in infos if i.id == mine)
        for text in ("sthostile0001", f"sthostile0001/{HOSTILE}", key):
            assert choose_latest(infos, SourceRef.parse(text), where="r").id == mine
        with pytest.raises(UsageError, match="no snapshot of source"):
            choose_latest(infos, SourceRef.parse("sthostile0001/ws[prod]"), where="r")
    mapfile = _map_for(repo, "sthostile0001", tmp_path)
    assert yaml.safe_load(mapfile.read_text(encoding="utf-8"))["source"] == (
        f"sthostile0001/{HOSTILE}"
    )
    res = cli("import", str(repo), "--to", str(tmp_path / "t"), "--map", str(mapfile), "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["snapshot"] == mine


def test_control_characters_in_source_are_not_echoed_raw(two: dict[str, str | Path]) -> None:
    res = cli("map", "init", str(two["repo"]), "--source", "st\x1b[31mx/\x07ws[/]")
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "\x1b" not in res.stderr and "\x07" not in res.stderr
    assert "no snapshot of source" in " ".join(res.stderr.split())


@pytest.mark.parametrize("text", ["", "/ws", "acct/", "  "])
def test_a_source_that_names_nothing_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="names no source"):
        SourceRef.parse(text)
