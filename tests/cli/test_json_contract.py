"""The ``--json`` contract (docs/json.md): every command of the app has ``--json``, a JSON
Schema under ``src/amlport/cli/schemas/``, and prints one document that validates against
it, with ``schema`` = ``amlport.<command>/1`` and the run's own ``exit_code``.

The commands are discovered from the Typer app: a new command without ``--json``, a schema
or a sample run here fails ``test_every_command_joins_the_contract`` by name.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from helpers.bundle import stored_files
from helpers.cliutil import amlport, app_commands

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
DESIGNER = WS / "designer-autoprice"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"
SCHEMAS = REPO / "src" / "amlport" / "cli" / "schemas"


def contract_commands() -> dict[str, Any]:
    """Every runnable command of the app but the hidden ones, by its contract name
    (``map init`` -> ``map-init``)."""
    return {"-".join(words): command for words, command in app_commands(hidden=False)}


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A backup repository with two snapshots (one change between them), its ids, a pack."""
    root = tmp_path_factory.mktemp("contract")
    src = root / "src"
    shutil.copytree(DESIGNER, src)
    repo = root / "repo"
    assert amlport("backup", str(src), "--repo", str(repo)).returncode in (0, 1)
    changed = next(p for p in sorted(src.rglob("*.json")) if p.is_file())
    changed.write_text(changed.read_text(encoding="utf-8") + " ", encoding="utf-8")
    assert amlport("backup", str(src), "--repo", str(repo)).returncode in (0, 1)
    listed = json.loads(amlport("snapshots", str(repo), "--json").stdout)["snapshots"]
    first = listed[0]["id"]
    pack = root / "one.tar.gz"
    assert amlport("pack", str(repo), "--snapshot", first, "-o", str(pack)).returncode == 0
    key, spare, enc = root / "key.json", root / "spare.json", str(root / "encrypted")
    for path in (key, spare):  # an encrypted repository with two keys, for `repo key …`
        assert amlport("repo", "key", "new", str(path)).returncode == 0
    assert amlport("repo", "init", enc, "--encrypt", "--key-file", str(key)).returncode == 0
    added = amlport("repo", "key", "add", enc, "--key-file", str(key), "--new-key-file",
                    str(spare), "--json")  # fmt: skip
    spare_id = json.loads(added.stdout)["id"]
    return {
        "key": str(key),
        "enc": enc,
        "spare_id": spare_id,
        "src": str(src),
        "repo": str(repo),
        "first": first,
        "pack": str(pack),
        "root": str(root),
    }


def sample(command: str, p: dict[str, str]) -> list[str] | None:
    """The arguments of one real run of ``command`` printing its ``--json``."""
    root = Path(p["root"])
    new_key, use_key = ["--new-key-file", p["key"]], ["--key-file", p["key"]]
    runs = {
        "scan": ["scan", p["src"]],
        "lineage": ["lineage", p["src"]],
        "export": ["export", p["src"], "--repo", str(root / "exported")],
        "verify": ["verify", p["repo"]],
        "snapshots": ["snapshots", p["repo"]],
        "pack": ["pack", p["repo"], "--snapshot", p["first"], "-o", str(root / "again.tar.gz")],
        "unpack": ["unpack", p["pack"], "--repo", str(root / "unpacked")],
        "map-init": ["map", "init", p["repo"]],
        "import": ["import", p["repo"], "--to", str(root / "imported"), "--map", str(QA)],
        "promote": ["promote", p["src"], "--to", str(root / "promoted"), "--map", str(QA)],
        "backup": ["backup", p["src"], "--repo", p["repo"]],
        "forget": ["forget", p["repo"], "--keep-last", "9", "--dry-run"],
        "diff": ["diff", f"{p['repo']}@{p['first']}", p["src"]],  # a snapshot, a live side
        "restore": [
            "restore",
            p["repo"],
            "latest",
            "--to",
            str(root / "restored"),
            "--map",
            str(QA),
            "--check",
        ],
        "audit": ["audit", p["src"]],
        "describe": ["describe", p["src"], "a186e29d"],
        "report": ["report", p["src"], "--repo", p["repo"], "-o", str(root / "report.html")],
        "repo-init": ["repo", "init", str(root / "fresh-repo")],
        "repo-upgrade": ["repo", "upgrade", p["repo"], "--dry-run"],
        "repo-key-new": ["repo", "key", "new", str(root / "another-key.json")],
        # with its key: under make test-encrypted a key is always at hand, and the test key
        # does not open this repository of the test's own keys
        "repo-key-list": ["repo", "key", "list", p["enc"], *use_key],
        "repo-key-add": ["repo", "key", "add", p["enc"], "--key-file", p["key"], *new_key],
        "repo-key-remove": ["repo", "key", "remove", p["enc"], p["spare_id"], *use_key],
        "ls": ["ls", f"{p['repo']}@{p['first'][:12]}", "pipelines", "--assets"],
        "dump": ["dump", p["repo"], _first_pipeline(p), "-o", str(root / "dumped.yml")],
        "plugins": ["plugins"],
    }
    return runs.get(command)


def _first_pipeline(p: dict[str, str]) -> str:
    """A file of the latest snapshot, as ``ls`` lists it (for the ``dump`` sample)."""
    listed = json.loads(amlport("ls", p["repo"], "pipelines", "--json").stdout)
    return str(listed["files"][0]["path"])


def schema_of(command: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{command}.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("command", sorted(contract_commands()))
def test_every_command_joins_the_contract(command: str, place: dict[str, str]) -> None:
    options = {
        opt for param in contract_commands()[command].params for opt in getattr(param, "opts", ())
    }
    assert "--json" in options, f"{command} has no --json (docs/json.md, 'A new command')"
    assert (SCHEMAS / f"{command}.json").is_file(), f"no schema for {command}"
    schema = schema_of(command)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema"] == {"const": f"amlport.{command}/1"}
    args = sample(command, place)
    assert args is not None, f"no sample run of {command} in {__file__}"
    res = amlport(*args, "--json")
    assert res.returncode in (0, 1, 3, 5), res.stderr
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, schema)
    assert doc["schema"] == f"amlport.{command}/1"
    assert doc["exit_code"] == res.returncode


def test_the_second_forms_of_map_init_and_promote_validate(
    place: dict[str, str], tmp_path: Path
) -> None:
    """``map init SOURCE`` (a scan: no snapshot) and a promotion's rewrites, hops and
    identity, and an import's rewrites: the documents the one sample run does not show."""
    made = amlport("map", "init", place["src"], "--json")
    doc = json.loads(made.stdout)
    jsonschema.validate(doc, schema_of("map-init"))
    assert doc["snapshot"] is None and "source:" in doc["map"]
    moved = amlport("promote", place["src"], "--to", str(tmp_path / "qa"), "--map", str(QA),
                    "--json")  # fmt: skip
    doc = json.loads(moved.stdout)
    jsonschema.validate(doc, schema_of("promote"))
    assert doc["rewrites"] and doc["hops"] and doc["identity"]
    staged = amlport("diff", place["src"], str(tmp_path / "qa"), "--map", str(QA), "--json")
    doc = json.loads(staged.stdout)
    jsonschema.validate(doc, schema_of("diff"))  # under the map, with audit facts
    assert staged.returncode == doc["exit_code"] and doc["audit"]["unchanged"] > 0
    imported = amlport("import", place["repo"], "--to", str(tmp_path / "imp"), "--map", str(QA),
                       "--json")  # fmt: skip
    doc = json.loads(imported.stdout)
    jsonschema.validate(doc, schema_of("import"))
    assert doc["rewrites"] and {"file", "location", "before", "after", "rule"} == set(
        doc["rewrites"][0]
    )


def test_every_schema_belongs_to_a_command() -> None:
    assert {p.stem for p in SCHEMAS.glob("*.json")} <= set(contract_commands())


def test_snapshots_json_says_which_snapshot_is_complete(place: dict[str, str]) -> None:
    listed = json.loads(amlport("snapshots", place["repo"], "--json").stdout)["snapshots"]
    assert [s["complete"] for s in listed] == [True] * len(listed)
    assert all(s["short_id"] == s["id"][:8] for s in listed)


def test_an_integrity_failure_is_a_document_with_exit_code_4(
    place: dict[str, str], tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(place["repo"], repo)
    victim = stored_files(repo)[0]  # a pack (the default) or an object's own file
    victim.write_bytes(victim.read_bytes() + b"x")
    res = amlport("verify", str(repo), "--json")
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, schema_of("verify"))
    assert res.returncode == doc["exit_code"] == 4 and not doc["ok"]


def test_scan_o_file_is_the_same_document(place: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "scan.json"
    res = amlport("scan", place["src"], "--json", "-o", str(out))
    assert json.loads(res.stdout) == json.loads(out.read_text(encoding="utf-8"))


def test_a_hostile_name_stays_a_valid_document(tmp_path: Path) -> None:
    """Control characters, brackets, '..' and a long name in a workspace: the document still
    parses, validates and carries the names back unchanged (escaped the JSON way)."""
    src = tmp_path / "src"
    shutil.copytree(DESIGNER, src)
    store = next(p for p in src.iterdir() if p.name.startswith("azureml-blobstore"))
    names = ["x[bold]y[red]\x1b[2J", "ws[prod]..\u202e", "n" * 250]
    for name in names:
        folder = store / "azureml" / name / "Trained_model"
        folder.mkdir(parents=True)
        (folder / "data.ilearner").write_text("x", encoding="utf-8")
    res = amlport("scan", str(src), "--json")
    assert "\x1b" not in res.stdout and "\u202e" not in res.stdout
    doc = json.loads(res.stdout)
    jsonschema.validate(doc, schema_of("scan"))
    assert doc["exit_code"] == res.returncode
    locs = {m["loc"] for m in doc["inventory"]["models"]}
    for name in names:
        assert any(loc.startswith(f"workspaceblobstore/azureml/{name}") for loc in locs), name
