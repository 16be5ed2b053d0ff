"""Names in storage cannot hijack amlport's output (issue 17, design 0004 "console").

A workspace copy whose workspace name, folder and blob names and snapshot tags hold rich
markup (``[bold]``, ``[link=x]``, ``[/]``) and terminal control sequences (CSI, OSC title,
BEL, DEL, a C1 CSI, a bidi override) goes through every command that prints. Each run must
exit with its documented code, print no traceback, show the names with their brackets, and
let no control character through to stdout or stderr (they show as ``\\x1b`` & co.).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.bundle import tamper
from helpers.cliutil import only_snapshot

from amlport.bundle import Repository

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"
BLOBSTORE = "azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97"
MLMODEL = (
    WS / "messy" / "azureml" / "ExperimentRun"
    / "dcid.5457b928-888f-4d08-9555-11c99e4d851a" / "model" / "MLmodel"
)  # fmt: skip

CONTROLS = "\x1b[31mred\x1b]0;title\x07\x7f\x9b\u202e"
SHOWN_CONTROLS = "\\x1b[31mred\\x1b]0;title\\x07\\x7f\\x9b\\u202e"
RUN_ID = f"r[bold]b[link=x]l {CONTROLS}"  # a run folder dcid.<RUN_ID> with a model
SHOWN_RUN_ID = f"r[bold]b[link=x]l {SHOWN_CONTROLS}"
SECRET_BLOB = "x[/]y [bold]\x1b[31m.yaml"  # holds a connection string: a HIGH finding
SHOWN_SECRET_BLOB = "x[/]y [bold]\\x1b[31m.yaml"
PLAIN_BLOB = "x[/]y.txt"
PLAIN_CONTENT = b"hostile-output test payload\n"
WORKSPACE = "ws[prod]"
TAGS = ("ws[prod]", "t[bold][/]\x1b[31m")
SHOWN_TAG = "t[bold][/]\\x1b[31m"
# What must never reach a terminal: C0 but tab/newline (CR included), DEL, C1, bidi controls.
UNSAFE = re.compile(
    rb"[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]|\xe2\x80[\xa8-\xae]|\xe2\x81[\xa6-\xa9]"
)


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_hostile(*args: str) -> Run:
    """Run the CLI as a user does; bytes, so that a raw CR is not hidden by newline decoding."""
    res = subprocess.run(
        [sys.executable, "-m", "amlport", *args],
        capture_output=True,
        timeout=600,
        check=False,
        # Wide enough that no table folds a name, so the tests can look for it whole.
        env={**os.environ, "COLUMNS": "1000"},
    )
    for name, stream in (("stdout", res.stdout), ("stderr", res.stderr)):
        bad = UNSAFE.search(stream)
        assert bad is None, f"raw control {bad.group()!r} in {name} of {args}: {stream[-2000:]!r}"
    run = Run(res.returncode, res.stdout.decode(), res.stderr.decode())
    assert "Traceback" not in run.stderr and "MarkupError" not in run.stderr, run.stderr
    return run


def expect(run: Run, *codes: int) -> Run:
    assert run.returncode in codes, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    return run


def _secret_yaml() -> str:
    key = "A" * 86 + "=="
    return (
        "conn: DefaultEndpointsProtocol=https;AccountName=a;"
        f"AccountKey={key};EndpointSuffix=core.windows.net\n"
    )


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """designer-autoprice with a hostile workspace name, run folder and blob names."""
    ws = tmp_path_factory.mktemp("hostile") / "ws"
    shutil.copytree(WS / "designer-autoprice", ws)
    descriptor = ws / "workspace.yaml"
    text = descriptor.read_text(encoding="utf-8")
    descriptor.write_text(
        re.sub(r"(?m)^workspace: .*$", f"workspace: '{WORKSPACE}'", text), encoding="utf-8"
    )
    model = ws / "azureml" / "ExperimentRun" / f"dcid.{RUN_ID}" / "model"
    model.mkdir(parents=True)
    shutil.copy(MLMODEL, model / "MLmodel")
    folder = ws / BLOBSTORE / "x["  # blob names with "/" are folders in a local copy
    folder.mkdir()
    (ws / BLOBSTORE / SECRET_BLOB).write_text(_secret_yaml(), encoding="utf-8")
    (ws / BLOBSTORE / PLAIN_BLOB).write_bytes(PLAIN_CONTENT)
    return ws


@pytest.fixture(scope="module")
def repo(hostile: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("repo") / "repo"
    tags = [a for t in TAGS for a in ("--tag", t)]
    expect(run_hostile("backup", str(hostile), "--repo", str(repo), *tags), 0, 1)
    return repo


def _snapshot_id(repo: Path) -> str:
    return only_snapshot(repo)


def test_scan_shows_names_with_their_brackets(hostile: Path) -> None:
    run = expect(run_hostile("scan", str(hostile)), 1)  # the secret is a finding
    assert f"workspace {WORKSPACE}" in run.stdout or f"/ {WORKSPACE}" in run.stdout
    assert SHOWN_SECRET_BLOB in run.stdout
    assert SHOWN_RUN_ID in run.stdout


@pytest.mark.parametrize("fmt", ["json", "dot", "mermaid", "graphml", "openlineage"])
def test_lineage_documents_escape_controls(hostile: Path, fmt: str) -> None:
    run = expect(run_hostile("lineage", str(hostile), "--format", fmt), 1)
    if fmt == "json":  # JSON escapes are lossless: the name decodes back to itself
        ids = {n["id"] for n in json.loads(run.stdout)["nodes"]}
        assert f"run:{RUN_ID}" in ids
    else:
        assert "r[bold]b[link=x]l" in run.stdout


def test_audit_keeps_policy_exit_code(hostile: Path, tmp_path: Path) -> None:
    run = expect(run_hostile("audit", str(hostile), "--fail-on", "high"), 5)
    assert SHOWN_SECRET_BLOB in run.stdout
    report = tmp_path / "audit.txt"
    expect(run_hostile("audit", str(hostile), "-o", str(report)), 5)
    text = report.read_text(encoding="utf-8")  # 160 columns: the name may fold
    assert "/x[/]y" in text and "[bold]\\x1b[31m.yaml" in text
    markdown = expect(run_hostile("audit", str(hostile), "--format", "markdown"), 5)
    assert SHOWN_SECRET_BLOB in markdown.stdout and "ws\\[prod\\]" in markdown.stdout


def test_export_and_its_dry_run(hostile: Path, tmp_path: Path) -> None:
    expect(run_hostile("export", str(hostile), "--to", str(tmp_path / "b"), "--dry-run"), 0, 1)
    run = expect(
        run_hostile("export", str(hostile), "--to", str(tmp_path / "b"), "--tag", TAGS[1]), 0, 1
    )
    assert "snapshot " in run.stdout


def test_snapshots_show_tags_literally(repo: Path) -> None:
    run = expect(run_hostile("snapshots", str(repo)), 0)
    assert TAGS[0] in run.stdout and SHOWN_TAG in run.stdout


def test_verify_and_forget(repo: Path) -> None:
    expect(run_hostile("verify", str(repo)), 0)
    expect(run_hostile("forget", str(repo), "--keep-last", "1", "--dry-run"), 0)


def test_verify_names_a_damaged_hostile_file(repo: Path, tmp_path: Path) -> None:
    damaged = tmp_path / "repo"
    shutil.copytree(repo, damaged)
    with Repository.open(damaged) as opened:  # its name: keyed if the repository is sealed
        [digest] = [f.digest for f in opened.load_snapshot(_snapshot_id(damaged)).files
                    if f.path.endswith(f"/{PLAIN_BLOB}")]  # fmt: skip
    tamper(damaged, digest)  # in its pack (the default) or its own file
    run = expect(run_hostile("verify", str(damaged)), 4)
    assert "amlport: error:" in run.stderr and PLAIN_BLOB in run.stderr


def test_diff_lists_the_hostile_run(repo: Path, hostile: Path, tmp_path: Path) -> None:
    without = tmp_path / "ws"
    shutil.copytree(hostile, without)
    shutil.rmtree(without / "azureml" / "ExperimentRun" / f"dcid.{RUN_ID}")
    run = expect(run_hostile("diff", str(repo), str(without)), 1)
    assert SHOWN_RUN_ID in run.stdout


def test_map_init_names_the_workspace(repo: Path) -> None:
    run = expect(run_hostile("map", "init", str(repo)), 0)
    assert WORKSPACE in run.stdout


def test_import_dry_run_and_real(repo: Path, tmp_path: Path) -> None:
    base = ("import", str(repo), "--map", str(QA), "--snapshot", _snapshot_id(repo))
    dry = expect(run_hostile(*base, "--to", str(tmp_path / "dry"), "--dry-run"), 0)
    assert "dry run, nothing written" in dry.stdout  # a summary first (issue 22) ...
    detail = expect(run_hostile(*base, "--to", str(tmp_path / "dry"), "--dry-run", "--verbose"), 0)
    assert SHOWN_SECRET_BLOB in detail.stdout and PLAIN_BLOB in detail.stdout  # ... escaped
    real = expect(run_hostile(*base, "--to", str(tmp_path / "t"), "--verbose"), 0)
    assert SHOWN_RUN_ID in real.stdout, real.stdout


def test_restore_with_check(repo: Path, tmp_path: Path) -> None:
    args = ("restore", str(repo), _snapshot_id(repo), "--to", str(tmp_path / "t"))
    run = expect(run_hostile(*args, "--map", str(QA), "--check"), 0)
    assert "PASSED" in run.stdout


def _partial_map(tmp_path: Path) -> Path:
    """The QA map without the blob store: what lives there is blocked and named."""
    text = QA.read_text(encoding="utf-8").replace("  workspaceblobstore: qablob\n", "")
    path = tmp_path / "partial.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_restore_with_blocked_items(repo: Path, tmp_path: Path) -> None:
    args = ("restore", str(repo), _snapshot_id(repo), "--to", str(tmp_path / "t"))
    run = expect(run_hostile(*args, "--map", str(_partial_map(tmp_path))), 3)
    assert "blocked: files/" in run.stdout


def test_promote(hostile: Path, tmp_path: Path) -> None:
    promote = ("promote", str(hostile), "--to", str(tmp_path / "t"), "--map", str(QA))
    # the fixture's logs name the original workspace, not the hostile one of workspace.yaml:
    # those long URIs are kept and warned about (issue 21), so the promotion is partial (1)
    run = expect(run_hostile(*promote), 1)
    assert "promoted:" in run.stdout
    assert "not the source workspace; left as is" in run.stderr
    partial = ("--to", str(tmp_path / "p"), "--map", str(_partial_map(tmp_path)))
    blocked = expect(run_hostile("promote", str(hostile), *partial), 3)
    assert "not promoted " in blocked.stderr


def test_pack_and_unpack(repo: Path, tmp_path: Path) -> None:
    archive = tmp_path / "s[bold].tar.gz"
    expect(run_hostile("pack", str(repo), "--snapshot", _snapshot_id(repo), "-o", str(archive)), 0)
    run = expect(run_hostile("unpack", str(archive), "--to", str(tmp_path / "r[/]2")), 0)
    assert "r[/]2" in run.stdout


def test_url_without_account_is_a_clear_error() -> None:
    run = expect(run_hostile("scan", "http://127.0.0.1:10000"), 2)
    assert run.stderr.startswith("amlport: error:") and "[/<container>]" in run.stderr


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("scan", "amlport[identity]"),
        ("audit", "amlport[arm]"),
        ("import", "amlport[azureml]"),
        ("export", "az://<container>[/<prefix>]"),
    ],
)
def test_help_shows_brackets(command: str, shown: str) -> None:
    run = expect(run_hostile(command, "--help"), 0)
    assert shown in run.stdout.split() or shown in " ".join(run.stdout.split())
