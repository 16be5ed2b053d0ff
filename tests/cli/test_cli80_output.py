"""80 columns, pipes and CI logs (issue 22, item 1): every command's help and main outputs as
a log gets them (``COLUMNS=80``, stdout not a terminal), and the tables a terminal gets.

- help: no line over 80 columns, no "..."/"…" cut, no ``{source}`` placeholder, the
  metavars the prose uses (SOURCE, REPO, SNAPSHOT);
- outputs: plain lines whose content does not depend on the width (nothing wrapped, so no
  id is split), no markup or escape sequence, summaries before per-item detail;
- ``--debug`` after the command name; a closed pipe keeps the run's exit code.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer.main
from helpers.cliutil import amlport

from amlport.cli import common
from amlport.cli.app import app
from amlport.cli.terminal import SafeConsole, fold_path, styled

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
DESIGNER = WS / "designer-autoprice"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"
NARROW = {"COLUMNS": "80"}
# What rich markup or an escape sequence leaves in text when it goes wrong.
ARTEFACT = re.compile(r"\x1b\[|\[/\]|\[/?(bold|red|yellow|green|dim|cyan|italic|link)\b")


def help_pages() -> list[list[str]]:
    pages: list[list[str]] = [[]]

    def walk(prefix: list[str], command: Any) -> None:
        subs = getattr(command, "commands", None)
        if isinstance(subs, dict):
            for name, sub in subs.items():
                pages.append([*prefix, name])
                walk([*prefix, name], sub)

    walk([], typer.main.get_command(app))
    return pages


@pytest.mark.parametrize("words", help_pages(), ids=lambda w: " ".join(w) or "amlport")
def test_help_fits_80_columns_whole(words: list[str]) -> None:
    res = amlport(*words, "--help", env=NARROW)
    assert res.returncode == 0, res.stderr
    for text in res.stdout.splitlines():
        assert len(text) <= 80, text
        assert "…" not in text and "..." not in text.replace("[ARGS]...", ""), text
        assert not re.search(r"\{[a-z_]+\}", text), text  # typer's {source} placeholder
        assert not ARTEFACT.search(text), text


def test_help_names_the_arguments_as_the_prose_does() -> None:
    assert "Usage: amlport export [OPTIONS] SOURCE\n" in amlport("export", "--help").stdout
    restore = amlport("restore", "--help", env=NARROW).stdout
    assert "[OPTIONS] REPO [SNAPSHOT]" in restore and "--to TARGET" in restore
    backup = amlport("backup", "--help", env=NARROW).stdout
    assert "--repo REPO" in backup and "--repo-connection-string CONN" in backup
    assert "--to" not in amlport("export", "--help").stdout  # the old spelling is hidden


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("narrow")
    repo = root / "repo"
    assert amlport("backup", str(DESIGNER), "--repo", str(repo)).returncode in (0, 1)
    return {"root": root, "repo": repo}


def outputs(p: dict[str, Path]) -> dict[str, list[str]]:
    root, repo = p["root"], p["repo"]
    return {
        "scan-designer": ["scan", str(DESIGNER)],
        "scan-messy": ["scan", str(WS / "messy")],
        "snapshots": ["snapshots", str(repo)],
        "verify": ["verify", str(repo)],
        "export-dry-run": ["export", str(DESIGNER), "--repo", str(root / "x"), "--dry-run",
                           "--no-cache"],
        "export-verbose": ["export", str(DESIGNER), "--repo", str(root / "x"), "-v", "--dry-run",
                           "--no-cache"],
        "import-dry-run": ["import", str(repo), "--to", str(root / "t"), "--map", str(QA),
                           "--dry-run"],
        "import-dry-run-verbose": ["import", str(repo), "--to", str(root / "t"), "--map",
                                   str(QA), "--dry-run", "--verbose"],
        "diff": ["diff", str(repo), str(DESIGNER)],
        "forget": ["forget", str(repo), "--keep-last", "3", "--dry-run"],
        "audit": ["audit", str(WS / "messy")],
    }  # fmt: skip


@pytest.mark.parametrize(
    "name",
    [
        "scan-designer",
        "scan-messy",
        "snapshots",
        "verify",
        "export-dry-run",
        "export-verbose",
        "import-dry-run",
        "import-dry-run-verbose",
        "diff",
        "forget",
        "audit",
    ],
)
def test_outputs_are_plain_lines_whatever_the_width(name: str, place: dict[str, Path]) -> None:
    args = outputs(place)[name]
    narrow = amlport(*args, env=NARROW)
    wide = amlport(*args, env={"COLUMNS": "200"})
    assert narrow.returncode == wide.returncode, narrow.stderr
    assert narrow.stdout == wide.stdout  # nothing wrapped or cut at 80: no id is split
    assert narrow.stderr == wide.stderr
    for text in narrow.stdout.splitlines() + narrow.stderr.splitlines():
        assert not ARTEFACT.search(text), text
        assert not re.search(r"\w…|…\w", text), text  # no word cut with an ellipsis
        assert not re.search(r"[┃│┏┡└]", text), text  # no table borders in a log


def test_import_dry_run_prints_totals_not_one_line_per_file(place: dict[str, Path]) -> None:
    args = outputs(place)["import-dry-run"]
    short = amlport(*args, env=NARROW)
    verbose = amlport(*args, "--verbose", env=NARROW)
    assert short.stdout.splitlines()[0].startswith("import of snapshot ")
    assert len(short.stdout.splitlines()) <= 3 < len(verbose.stdout.splitlines())


def test_snapshot_ids_are_short_and_whole(place: dict[str, Path]) -> None:
    import json

    full = json.loads(amlport("snapshots", str(place["repo"]), "--json").stdout)["snapshots"]
    text = amlport("snapshots", str(place["repo"]), env=NARROW).stdout
    for snap in full:
        assert re.search(rf"^{snap['id'][:8]}  ", text, re.M), text
        assert snap["id"][:9] not in text  # the short id, as restic prints it


def test_debug_is_accepted_after_the_command() -> None:
    res = amlport("scan", "/nonexistent/workspace", "--debug")
    assert res.returncode == 2 and "Traceback" in res.stderr
    assert "Traceback" not in amlport("scan", "/nonexistent/workspace").stderr


@pytest.mark.parametrize(
    ("args", "code"),
    [(["scan", str(WS / "messy")], 1), (["scan", str(DESIGNER), "--json"], 0),
     (["lineage", str(DESIGNER)], 0)],
)  # fmt: skip
def test_a_closed_pipe_ends_quietly_with_the_runs_exit_code(args: list[str], code: int) -> None:
    cmd = [sys.executable, "-m", "amlport", *args]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        proc.stdout.readline()
        proc.stdout.close()  # as `| head -1` does
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=300) == code, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "error" not in err


# --- the terminal side: tables fitted to 80 columns (pure rendering) ----------------------


def _render(rows: list[list[Any]], columns: list[tuple[str, str]]) -> str:
    buf = io.StringIO()
    console = SafeConsole(file=buf, width=80, force_terminal=True, color_system=None)
    common.show_table("T", columns, rows, console=console)
    return buf.getvalue()


def test_a_wide_table_folds_paths_at_slashes_and_keeps_ids_whole() -> None:
    run = "5457b928-888f-4d08-9555-11c99e4d851a"
    path = "workspaceartifactstore/ExperimentRun/dcid." + run + "/model/a-long-model-name"
    text = _render(
        [[path, "mlflow", run, styled("no", "yellow")]],
        [("location", "path"), ("format", "text"), ("run", "id"), ("portable", "text")],
    )
    assert run in text.replace("\n", "|").split("run:")[1]  # the id on one line
    for piece in text.splitlines():
        assert len(piece) <= 80
    folded = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("workspace")]
    assert folded and all(f.endswith("/") or f == folded[-1] for f in folded)


def test_a_narrow_table_stays_a_table() -> None:
    text = _render([["a", "1"], ["b", "22"]], [("kind", "text"), ("count", "num")])
    assert "kind" in text and ("┃" in text or "│" in text)


@pytest.mark.parametrize(
    ("text", "width", "lines"),
    [
        ("a/b/c", 10, ["a/b/c"]),
        ("abc/def/ghi", 8, ["abc/def/", "ghi"]),
        ("abcdefghij/k", 4, ["abcd", "efgh", "ij/k"]),
        ("x[/]y/" + "n" * 9, 6, ["x[/]y/", "nnnnnn", "nnn"]),
        ("ab/" + "c" * 7 + "/d", 5, ["ab/", "ccccc", "cc/d"]),
        ("/", 1, ["/"]),
    ],
)
def test_fold_path(text: str, width: int, lines: list[str]) -> None:
    assert fold_path(text, width).split("\n") == lines
    assert fold_path(text, width).replace("\n", "") == text


def test_hostile_names_print_as_plain_text_in_a_log(tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(WS / "messy", src)
    store = next(p for p in src.iterdir() if p.name.startswith("azureml-blobstore"))
    pointer_dir = store / "azureml" / "x[/]y\x1b[2J" / "Trained_model"
    pointer_dir.mkdir(parents=True)
    (pointer_dir / "data.ilearner").write_text("x", encoding="utf-8")
    res = amlport("scan", str(src), env=NARROW)
    assert res.returncode in (0, 1), res.stderr
    assert "\x1b" not in res.stdout and "Traceback" not in res.stderr
