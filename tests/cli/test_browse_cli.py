"""``amlport ls`` and ``amlport dump`` on a local repository: listing, extracting, hostile
names, a binary file and a terminal, ``-o`` rules (issue 21). The same on ``az://``, format 1
and encrypted repositories: tests/integration/test_offsite_repository.py."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cliutil import amlport

ROOT = Path(__file__).resolve().parents[2]
WS = ROOT / "fixtures" / "workspaces" / "designer-autoprice"
BINARY = bytes(range(256)) * 4
HOSTILE = ("br[a]cket x.txt", "esc\x1b[31mred.txt", "tab\tname.txt")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browse")
    src = root / "src"
    shutil.copytree(WS, src)
    (src / "azureml" / "weights.bin").write_bytes(BINARY)
    for name in HOSTILE:
        (src / "azureml" / "odd").mkdir(exist_ok=True)
        (src / "azureml" / "odd" / name).write_text(f"{name}\n", encoding="utf-8")
    ran = amlport("backup", str(src), "--repo", str(root / "repo"))
    assert ran.returncode in (0, 1), ran.stderr
    return root / "repo"


def _listed(repo: Path, *args: str) -> list[dict[str, object]]:
    ran = amlport("ls", str(repo), *args, "--json")
    assert ran.returncode == 0, ran.stderr
    return list(json.loads(ran.stdout)["files"])


def test_ls_lists_paths_and_folders(repo: Path) -> None:
    every = _listed(repo)
    under = _listed(repo, "files/workspaceartifactstore/odd")
    assert {f["path"] for f in under} == {f"files/workspaceartifactstore/odd/{n}" for n in HOSTILE}
    assert {f["path"] for f in under} < {f["path"] for f in every}
    one = _listed(repo, "files/workspaceartifactstore/weights.bin")
    assert [f["size"] for f in one] == [len(BINARY)]
    text = amlport("ls", str(repo), "files/workspaceartifactstore/odd", "-l")
    assert text.returncode == 0 and "\x1b" not in text.stdout  # escaped, not interpreted
    assert "br[a]cket x.txt" in text.stdout and len(text.stdout.splitlines()) == len(HOSTILE)


def test_ls_assets_lists_what_restore_select_takes(repo: Path) -> None:
    ran = amlport("ls", f"{repo}@latest", "--assets", "--json")
    assets = json.loads(ran.stdout)["assets"]
    assert {"kind": "model", "name": "Trained_model-a79bd916"}.items() <= next(
        a for a in assets if a["kind"] == "model"
    ).items()
    text = amlport("ls", str(repo), "--assets")
    assert "model:Trained_model-a79bd916" in text.stdout


def test_dump_writes_the_bytes_to_stdout_and_to_a_file(repo: Path, tmp_path: Path) -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "amlport", "dump", str(repo),
         "files/workspaceartifactstore/weights.bin"],
        capture_output=True, check=False,
    )  # fmt: skip
    assert ran.returncode == 0 and ran.stdout == BINARY, ran.stderr
    for name in HOSTILE:
        out = tmp_path / "out.txt"
        res = amlport("dump", str(repo), f"files/workspaceartifactstore/odd/{name}", "-o", str(out))
        assert res.returncode == 0, res.stderr
        assert out.read_text(encoding="utf-8") == f"{name}\n"
        assert "\x1b" not in res.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["files/workspaceartifactstore/no-such"], "holds no file"),
        (["files/workspaceartifactstore/odd"], "is a folder"),
        (["files/../config.json"], "is not a path inside a snapshot"),
        (["files/workspaceartifactstore/weights.bin", "--json"], "needs -o FILE"),
        (["files/x\x1b[2J"], "holds no file 'files/x\\x1b[2J'"),
    ],
)
def test_dump_refusals_are_usage_errors(repo: Path, args: list[str], said: str) -> None:
    ran = amlport("dump", str(repo), *args)
    assert ran.returncode == 2 and said in ran.stderr, ran.stderr
    assert ran.stdout == "" and "Traceback" not in ran.stderr


def test_dump_o_inside_the_repository_is_refused(repo: Path) -> None:
    ran = amlport("dump", str(repo), "files/workspaceartifactstore/weights.bin", "-o",
                  str(repo / "stray.bin"))  # fmt: skip
    assert ran.returncode == 2, ran.stderr
    assert not (repo / "stray.bin").exists()


def test_ls_of_a_path_the_snapshot_does_not_hold(repo: Path) -> None:
    ran = amlport("ls", str(repo), "files/nope")
    assert ran.returncode == 2 and "holds no file or folder 'files/nope'" in ran.stderr


def _on_a_terminal(*args: str) -> tuple[int, bytes, str]:
    """Run amlport with stdout on a pseudo-terminal; (exit code, what the terminal got, stderr)."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "amlport", *args],
        stdout=child,
        stderr=subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200"},
    )
    os.close(child)
    got = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        got += chunk
    _, err = proc.communicate(timeout=120)
    os.close(main)
    return proc.returncode, got, err.decode("utf-8", "replace")


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_dump_does_not_put_binary_on_a_terminal_unless_forced(repo: Path) -> None:
    path = "files/workspaceartifactstore/weights.bin"
    code, got, err = _on_a_terminal("dump", str(repo), path)
    assert code == 2 and "not text" in err and got == b"", err
    code, got, err = _on_a_terminal("dump", str(repo), path, "--force")
    assert code == 0 and len(got) >= len(BINARY) - 64, err  # the terminal's own translation
    esc = f"files/workspaceartifactstore/odd/{HOSTILE[1]}"  # text holding an escape sequence
    code, got, err = _on_a_terminal("dump", str(repo), esc)
    assert code == 2 and b"\x1b" not in got, err
    plain = f"files/workspaceartifactstore/odd/{HOSTILE[0]}"
    code, got, err = _on_a_terminal("dump", str(repo), plain)
    assert code == 0 and b"br[a]cket" in got, err


def test_restore_select_restores_one_model_and_proves_it(repo: Path, tmp_path: Path) -> None:
    qa = ROOT / "tests" / "integration" / "maps" / "qa.yaml"
    one, whole = tmp_path / "one", tmp_path / "whole"
    ran = amlport("restore", f"{repo}@latest", "--select", "model:Trained_model-a79bd916",
                  "--to", str(one), "--map", str(qa), "--check", "--json")  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    selected = json.loads(ran.stdout)["selected"]
    assert selected["roots"] == [
        "model:workspaceblobstore/azureml/a79bd916-2790-4202-89ed-fbdede3ccf1d/Trained_model"
    ]
    assert "environment:" in " ".join(selected["assets"])  # what the model needs came along
    assert amlport("restore", str(repo), "--to", str(whole), "--map", str(qa)).returncode == 0
    got = {p.relative_to(one) for p in one.rglob("*") if p.is_file()}
    assert got < {p.relative_to(whole) for p in whole.rglob("*") if p.is_file()}
    assert not any("odd" in p.parts for p in got)  # no unclassified blob
