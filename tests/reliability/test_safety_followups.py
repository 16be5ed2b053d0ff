"""Follow-ups of the safety re-review (issue 17, docs/design/0004): JSON a repository or a
workspace holds outside the walk goes through the bounded loader; a symlinked folder inside a
local repository is refused; export's index warnings reach the user; a name a local file
system allows but a blob cannot have is a warning, not an internal error.

Each case is run as a user runs it (the CLI), on a generated workspace or a copy of a
repository one backup made.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from helpers.cliutil import manifest_of, only_snapshot
from helpers.encrypted_mode import keys_for_fixture
from helpers.rel_workspace import ARTIFACTS, assert_clean_failure, new_workspace, small_backup
from helpers.rel_workspace import run_in_process as amlport
from helpers.rel_workspace import run_measured as subprocess_cli

DEEP = 30_000  # brackets: far past the interpreter's recursion limit, under 64 KiB


def _deep_json() -> str:
    return '{"format": "amlport.import/1", "hops": ' + "[" * DEEP + "]" * DEEP + "}"


@pytest.fixture(scope="module")
def golden(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A repository with one backup of a small workspace, and the workspace."""
    with keys_for_fixture():  # encrypted under AMLPORT_TEST_ENCRYPT=1 whichever test is first
        return small_backup(tmp_path_factory.mktemp("followups"))


@pytest.fixture(scope="module")
def golden_loose(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same, without pack files (``AMLPORT_PACKS=0``): every object a file of its own."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AMLPORT_PACKS", "0")
        return small_backup(tmp_path_factory.mktemp("followups-loose"))


@pytest.fixture
def repo(golden: tuple[Path, Path], tmp_path: Path) -> Path:
    shutil.copytree(golden[0], tmp_path / "repo")
    return tmp_path / "repo"


def _copy_of(request: pytest.FixtureRequest, layout: str, tmp_path: Path) -> Path:
    """A copy of the golden repository with packs (``packed``) or without (``loose``)."""
    golden: tuple[Path, Path] = request.getfixturevalue(
        "golden" if layout == "packed" else "golden_loose"
    )
    return Path(shutil.copytree(golden[0], tmp_path / "repo"))


# --- 2a: bounded JSON outside the walk ------------------------------------------------------


def test_deeply_nested_config_json_is_an_integrity_error_naming_the_bound(repo: Path) -> None:
    (repo / "config.json").write_text("[" * DEEP + "]" * DEEP, encoding="utf-8")
    ran = subprocess_cli("verify", str(repo), timeout=60)
    assert_clean_failure(ran, code=4, says="nested deeper than 64 levels")


def test_deeply_nested_lock_is_an_unreadable_lock_not_a_crash(repo: Path) -> None:
    """A lock that is not one counts as held (exclusive) by an unknown process: a clear
    "locked" error, not ``internal error: RecursionError``."""
    (repo / "locks" / "0badc0de.json").write_text("[" * DEEP + "]" * DEEP, encoding="utf-8")
    ws = repo.parent / "ws"
    new_workspace(ws).put_run_file("r2", "user_logs/std_log.txt", "x\n")
    ran = subprocess_cli("backup", str(ws), "--repo", str(repo), timeout=60)
    assert_clean_failure(ran, code=2, says="0badc0de.json")


def test_hostile_import_records_in_a_workspace_are_warnings(tmp_path: Path) -> None:
    """Records amlport left under ``azureml/amlport/imports/`` are the workspace's, so
    untrusted: one nested past the bound and one too large to be a record are each a warning
    (exit 1); the export completes and carries the hops of the good record."""
    ws = new_workspace(tmp_path / "ws")
    ws.put_run_file("r1", "user_logs/std_log.txt", "x\n")
    imports = f"{ARTIFACTS}/amlport/imports"
    good = {
        "format": "amlport.import/1",
        "hops": [{"account": "stdev", "workspace": "dev", "snapshot": "ab" * 32, "time": "t"}],
    }
    ws.put(f"{imports}/good.json", json.dumps(good))
    ws.put(f"{imports}/deep.json", _deep_json())
    ws.put(f"{imports}/huge.json", '{"format": "amlport.import/1", "pad": "' + "x" * 5_000_000)
    ran = subprocess_cli("export", str(ws.root), "--to", str(tmp_path / "repo"), timeout=120)
    assert_clean_failure(ran, code=1)
    said = " ".join((ran.stdout + ran.stderr).split())
    assert "deep.json: JSON nested deeper than 64 levels" in said, ran.explain()
    assert "huge.json: larger than" in said, ran.explain()
    provenance = manifest_of(tmp_path / "repo")["provenance"]
    assert [h["workspace"] for h in provenance] == ["dev"]


# --- 2c: export's repository warnings reach the user -----------------------------------------


def test_export_shows_the_index_warning(golden: tuple[Path, Path], tmp_path: Path) -> None:
    """A damaged incremental index is ignored with a warning: export says so as backup does
    (it opened the repository without a warning callback, so the line was lost)."""
    repo = tmp_path / "repo"
    shutil.copytree(golden[0], repo)
    for index in (repo / "index").glob("*"):
        index.write_text("{not json", encoding="utf-8")
    ran = amlport("export", str(golden[1]), "--to", str(repo))
    assert ran.returncode in (0, 1), ran.explain()
    # encrypted (AMLPORT_TEST_ENCRYPT=1): "ignoring index …: … is corrupt" (its envelope)
    said = "ignoring unreadable index" in ran.stderr or "ignoring index" in ran.stderr
    assert said, ran.explain()


# --- 2d: a symlinked folder inside a local repository -----------------------------------------


def _link_away(folder: Path, elsewhere: Path) -> None:
    shutil.move(str(folder), str(elsewhere))
    os.symlink(elsewhere, folder)


def _folder(repo: Path, inner: str) -> Path:
    """``inner`` in ``repo``; ``<fan>``: the first fan folder of the objects (loose) or of
    the packs (``packs/<fan>``)."""
    if "<fan>" in inner:
        parent = repo / inner.split("<fan>")[0]
        fan = sorted(p.name for p in parent.iterdir() if p.is_dir() and p.name != "index")[0]
        inner = inner.replace("<fan>", fan)
    return repo / inner


# A packed repository (the default) keeps small objects in packs/<fan>/ with their index in
# packs/index/: its objects/ folder may be empty, and is refused when opened all the same.
LINKED = [
    ("loose", "objects/sha256/<fan>"),
    ("loose", "objects"),
    ("loose", "snapshots"),
    ("packed", "packs/<fan>"),
    ("packed", "packs"),
    ("packed", "packs/index"),
    ("packed", "objects"),
    ("packed", "objects/sha256"),
    ("packed", "snapshots"),
]


@pytest.mark.parametrize(("layout", "inner"), LINKED, ids=[f"{a}-{b}" for a, b in LINKED])
def test_a_symlinked_folder_in_a_repository_is_refused(
    request: pytest.FixtureRequest, tmp_path: Path, layout: str, inner: str
) -> None:
    repo = _copy_of(request, layout, tmp_path)
    folder = _folder(repo, inner)
    _link_away(folder, tmp_path / "elsewhere")
    for args in (("verify", str(repo)), ("verify", str(repo), "--deep")):
        ran = amlport(*args)
        assert_clean_failure(ran, code=4, says="symbolic link")
        assert f"{folder} is a symbolic link" in ran.stderr, ran.explain()


@pytest.mark.parametrize(
    ("layout", "inner"),
    [("loose", "objects/sha256/<fan>"), ("packed", "packs/<fan>"), ("packed", "packs/index")],
)
def test_restore_from_a_repository_with_a_symlinked_object_folder_writes_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, layout: str, inner: str
) -> None:
    from helpers.rel_workspace import filled_map

    repo = _copy_of(request, layout, tmp_path)
    qa = filled_map(repo, tmp_path / "qa.yaml")
    _link_away(_folder(repo, inner), tmp_path / "elsewhere")
    target = tmp_path / "target"
    ran = amlport("restore", str(repo), "latest", "--to", str(target), "--map", str(qa))
    assert_clean_failure(ran, code=4, says="symbolic link")
    assert not target.exists()


# A file where a folder of the repository belongs: a write below it was an internal error
# (NotADirectoryError, FileExistsError); a read found nothing there.
NOT_FOLDERS = [
    ("loose", "objects/sha256/<every fan>"),
    ("loose", "snapshots"),
    ("packed", "packs/<every fan>"),
    ("packed", "packs"),
    ("packed", "packs/index"),
]


@pytest.mark.parametrize(("layout", "inner"), NOT_FOLDERS, ids=[f"{a}-{b}" for a, b in NOT_FOLDERS])
def test_a_file_where_a_folder_of_the_repository_belongs_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, layout: str, inner: str
) -> None:
    ws = new_workspace(tmp_path / "ws")
    ws.put_run_file("r1", "outputs/model.pkl", bytes(range(256)) * 8)
    repo = tmp_path / "repo"
    monkeypatch.setenv("AMLPORT_PACKS", "1" if layout == "packed" else "0")
    assert amlport("repo", "init", str(repo)).returncode == 0
    fans = [f"{i:02x}" for i in range(256)] if "<every fan>" in inner else [""]
    for fan in fans:  # a new object's folder, whatever its name
        path = repo / inner.replace("<every fan>", fan)
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(path, ignore_errors=True)
        path.write_bytes(b"not a folder\n")
    ran = amlport("backup", str(ws.root), "--repo", str(repo))
    assert_clean_failure(ran, code=4, says="is a file where a folder of the repository belongs")
    assert f"{repo}/{inner.split('<')[0]}" in ran.stderr, ran.explain()


def test_the_repository_folder_itself_may_be_a_link(
    golden: tuple[Path, Path], tmp_path: Path
) -> None:
    """Only folders *inside* the repository are refused: where it lives is the user's choice."""
    shutil.copytree(golden[0], tmp_path / "real")
    os.symlink(tmp_path / "real", tmp_path / "repo")
    assert amlport("verify", str(tmp_path / "repo")).returncode == 0


# --- a local name that cannot be a blob name ---------------------------------------------------


def test_a_file_name_that_is_not_utf8_is_a_warning_not_an_internal_error(tmp_path: Path) -> None:
    """Azure blob names are Unicode; a local file may be named with any bytes. Backing it up
    ended in ``internal error: UnicodeEncodeError`` after the objects were stored."""
    ws = new_workspace(tmp_path / "ws")
    ws.put_run_file("r1", "user_logs/std_log.txt", "x\n")
    bad = os.fsencode(str(ws.blobstore / "UI")) + b"/r\x9bx.txt"
    os.makedirs(os.path.dirname(bad), exist_ok=True)
    with open(bad, "wb") as fh:
        fh.write(b"data\n")
    ran = subprocess_cli("backup", str(ws.root), "--repo", str(tmp_path / "repo"), timeout=120)
    assert_clean_failure(ran, code=1, says="not valid UTF-8")
    assert "\\x9b" in ran.stderr, ran.explain()  # named, visibly
    assert subprocess_cli("verify", str(tmp_path / "repo")).returncode == 0


# --- 2b: promote checks the map's source against the live source --------------------------------


def test_promote_refuses_a_map_made_for_another_workspace(tmp_path: Path) -> None:
    from helpers.rel_workspace import filled_map

    dev = new_workspace(tmp_path / "dev", account="stdev")
    other = new_workspace(tmp_path / "other", account="stother")
    for ws in (dev, other):
        ws.put_run_file("r1", "user_logs/std_log.txt", "x\n")
    assert amlport("backup", str(dev.root), "--repo", str(tmp_path / "repo")).returncode == 0
    qa = filled_map(tmp_path / "repo", tmp_path / "qa.yaml")  # source: stdev
    target = tmp_path / "target"
    ran = amlport("promote", str(other.root), "--to", str(target), "--map", str(qa))
    assert_clean_failure(ran, code=2, says="'stother'")
    assert "nothing was written" in " ".join(ran.stderr.split())
    assert not target.exists()
    ran = amlport("promote", str(dev.root), "--to", str(target), "--map", str(qa))
    assert ran.returncode == 0, ran.explain()


# --- 2e: one rule for "is this datastore mapped" ------------------------------------------------


def test_yaml_and_mlmodel_naming_an_unmapped_datastore_are_blocked(tmp_path: Path) -> None:
    """The map leaves ``training_data`` out (its files are not restored) while the target has a
    datastore of that name. The pointer importer blocked a pointer to it; the rewriters mapped
    it by name, so a v2 YAML and an MLmodel naming it were written and pointed at data the
    import had not restored. One rule now decides both: they are blocked with their asset."""
    import yaml
    from helpers.rel_workspace import BLOBSTORE, filled_map

    ws = new_workspace(tmp_path / "ws")
    data = "training-data"
    doc = yaml.safe_load((ws.root / "workspace.yaml").read_text(encoding="utf-8"))
    doc["datastores"]["training_data"] = data
    (ws.root / "workspace.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    ws.put(f"{data}/x.csv", "a,b\n1,2\n")
    uri = "azureml://datastores/training_data/paths/x.csv"
    ws.put(f"{BLOBSTORE}/specs/job.yaml", f"type: command\ninputs:\n  d:\n    path: {uri}\n")
    ws.put_run_file("r1", "outputs/model/MLmodel", f"flavors: {{}}\nmetadata:\n  data: {uri}\n")
    ws.put_run_file("r1", "outputs/model/model.pkl", b"\x80\x04K\x01.")
    repo = tmp_path / "repo"
    assert amlport("backup", str(ws.root), "--repo", str(repo)).returncode in (0, 1)
    qa = filled_map(repo, tmp_path / "qa.yaml")
    m = yaml.safe_load(qa.read_text(encoding="utf-8"))
    del m["datastores"]["training_data"]  # not restored...
    m["target"]["datastores"]["training_data"] = "azureml"  # ...though the target has one
    qa.write_text(yaml.safe_dump(m), encoding="utf-8")
    target = tmp_path / "target"
    ran = amlport("restore", str(repo), "latest", "--to", str(target), "--map", str(qa), "--json")
    assert ran.returncode == 3, ran.explain()
    written = {p.relative_to(target).as_posix() for p in target.rglob("*") if p.is_file()}
    assert not any(p.endswith("job.yaml") for p in written), sorted(written)
    assert not any(p.endswith("/MLmodel") for p in written), sorted(written)
    assert not any(p.endswith("/model.pkl") for p in written), sorted(written)  # same asset
    assert "training_data" in ran.stdout and "not mapped" in ran.stdout


# --- writes into the repository a command reads ----------------------------------------------


def test_outputs_inside_the_repository_read_are_refused(repo: Path, tmp_path: Path) -> None:
    """``pack -o`` and ``map init -o`` read a repository: a file written inside it (however
    spelled) is refused like one inside a scanned source, and so is an ``--emit-assets``
    folder, before the import writes anything."""
    from helpers.rel_workspace import filled_map

    qa = filled_map(repo, tmp_path / "qa.yaml")
    snap = only_snapshot(repo)
    before = sorted(p for p in repo.rglob("*"))
    spelled = repo.parent / "." / repo.name / ".." / repo.name
    for args in (
        ("pack", str(repo), "--snapshot", snap, "-o", str(repo / "objects" / "a.tar.gz")),
        ("pack", str(repo), "--snapshot", snap, "-o", str(spelled / "a.tar.gz")),
        ("map", "init", str(repo), "-o", str(repo / "snapshots" / "m.yaml")),
    ):
        ran = amlport(*args)
        assert_clean_failure(ran, code=2, says="never writes into what it reads")
    target = tmp_path / "target"
    emit = ("--emit-assets", str(repo / "emitted"))
    ran = amlport("import", str(repo), "--to", str(target), "--map", str(qa), *emit)
    assert_clean_failure(ran, code=2, says="--emit-assets folder")
    assert not target.exists()
    assert sorted(p for p in repo.rglob("*")) == before
