"""Every writing command, driven with generated hostile names (issue 17, Deliver 8).

Hypothesis builds names from the pieces that broke amlport before: rich markup (``[``, ``]``,
``[/]``, ``[bold]``), ``..`` inside a segment, control characters and terminal escapes, long
segments and names near Azure's 1,024-character limit. Each example copies the designer
fixture, adds files under such names (one holding a seeded storage key, bare and in a
connection string) and runs the commands that write — ``backup``, ``export``, ``map init``,
``import`` (dry run and real), ``restore`` (and ``--check``), ``promote`` (dry run and real),
``pack``, ``unpack`` — as a user does (a subprocess, real exit code). For every run:

- no traceback, and an exit code from docs/exit-codes.md;
- nothing written outside the run's own output (the source folder is byte-for-byte unchanged;
  no file appears anywhere else under the example's folder);
- nothing written on a dry run;
- the seeded key appears in no byte of stdout, stderr, the repository, the archive or any
  target.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import string
from pathlib import Path

import pytest
from helpers.cliutil import amlport
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "workspaces" / "designer-autoprice"
QA_MAP = REPO / "tests" / "integration" / "maps" / "qa.yaml"
BLOBSTORE = "azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97"
DOCUMENTED = {0, 1, 2, 3, 4, 5}
# A syntactically real storage account key: 64 random bytes in base64 (88 characters).
KEY = "q2Vf" + "Zk8x" * 20 + "Tw=="

_PIECES = ["[", "]", "[/]", "[bold]", "[link=x]", "..", "\x1b[31m", "\x1b]0;t\x07", "\x7f", " "]
_PLAIN = string.ascii_letters + string.digits + "-_.()é"


@st.composite
def segment(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(_PIECES), st.text(_PLAIN, min_size=1, max_size=8)),
            min_size=1,
            max_size=6,
        )
    )
    text = "".join(parts)
    if draw(st.booleans()):
        text += "x" * draw(st.integers(0, 200))
    text = text.replace("/", "_")  # a local copy holds each segment as one file name
    while len(text.encode()) > 240:
        text = text[:-1]
    return text if text not in {".", ".."} else text + "x"


@st.composite
def hostile_name(draw: st.DrawFn) -> str:
    segments = draw(st.lists(segment(), min_size=1, max_size=5))
    return "/".join(segments)


def _tree(root: Path) -> dict[str, str]:
    """Every file under root with its digest (what 'nothing changed' compares)."""
    found: dict[str, str] = {}
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath) / name
            found[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _no_key_in(root: Path) -> None:
    needle = KEY.encode()
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            data = (Path(dirpath) / name).read_bytes()
            assert needle not in data, f"seeded key written to {Path(dirpath) / name}"


def _run(*args: str) -> tuple[int, str]:
    res = amlport(*args)
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert res.returncode in DOCUMENTED, (args, res.returncode, res.stderr[-2000:])
    for stream in (res.stdout, res.stderr):
        assert KEY not in stream, f"seeded key printed by {args[0]}"
        assert "\x1b" not in stream, f"raw escape printed by {args[0]}"
    return res.returncode, res.stdout


def _workspace(base: Path, names: list[str]) -> Path:
    src = base / "src"
    shutil.copytree(FIXTURE, src)
    for i, name in enumerate(names):
        path = src / BLOBSTORE / "UI" / f"n{i}" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"hostile name {i}\n", encoding="utf-8")
    secret_dir = src / BLOBSTORE / "UI" / "cfg"
    secret_dir.mkdir(parents=True, exist_ok=True)
    (secret_dir / ".env").write_text(f"AZURE_STORAGE_KEY={KEY}\n", encoding="utf-8")
    (secret_dir / "model.pkl").write_bytes(
        b"\x80\x04pickle\x00AccountKey=" + KEY.encode() + b"\x00"
    )
    (secret_dir / "conn.txt").write_text(
        f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={KEY};"
        "EndpointSuffix=core.windows.net\n",
        encoding="utf-8",
    )
    return src


@pytest.mark.slow
@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=st.lists(hostile_name(), min_size=1, max_size=3))
@example(names=["x[/]y.txt", "ws[prod]/[bold]b[/bold]", "a\x1b[31mred/\x1b]0;t\x07.bin"])
@example(names=["/".join(["s" * 200] * 5)])  # a 1,004-character name
def test_every_writing_command_holds_with_hostile_names(
    names: list[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    base = tmp_path_factory.mktemp("hostile")
    src = _workspace(base, names)
    before = _tree(src)
    repo, tgt, tgt2, prom, arch, repo2 = (base / n for n in ("repo", "t", "t2", "p", "a", "r2"))

    # Dry runs first: each must leave no trace.
    _run("export", str(src), "--to", str(repo), "--dry-run")
    assert not repo.exists()

    _run("backup", str(src), "--repo", str(repo))
    code, out = _run("snapshots", str(repo), "--json")
    assert code == 0
    _run("map", "init", str(repo), "-o", str(base / "map.yaml"))

    _run("import", str(repo), "--to", str(tgt), "--map", str(QA_MAP), "--dry-run")
    assert not tgt.exists()
    _run("promote", str(src), "--to", str(prom), "--map", str(QA_MAP), "--dry-run")
    assert not prom.exists()

    _run("import", str(repo), "--to", str(tgt), "--map", str(QA_MAP))
    _run("restore", str(repo), "latest", "--to", str(tgt2), "--map", str(QA_MAP), "--check")
    _run("promote", str(src), "--to", str(prom), "--map", str(QA_MAP))
    snap = _snapshot_id(out)
    _run("pack", str(repo), "--snapshot", snap, "-o", str(arch))
    _run("unpack", str(arch), "--to", str(repo2))

    assert _tree(src) == before, "the source changed"
    expected = {"src", "repo", "t", "t2", "p", "a", "r2", "map.yaml"}
    assert {p.name for p in base.iterdir()} <= expected, "a write escaped its target"
    for written in (repo, tgt, tgt2, prom, repo2):
        if written.exists():
            _no_key_in(written)
    if arch.exists():
        assert KEY.encode() not in arch.read_bytes()


def _snapshot_id(snapshots_json: str) -> str:
    import json

    doc = json.loads(snapshots_json)
    rows = doc["snapshots"] if isinstance(doc, dict) else doc
    return str(rows[-1]["id"])
