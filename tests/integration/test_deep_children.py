"""``verify --deep`` loads its documents in child processes, one per loader library (azure.ai.ml
and mlflow: docs/design/0007, "verify --deep in bounded memory (D, session 9)"): a document
either loader rejects is still reported naming it, a child that dies is an error, Ctrl-C stops
the children, and no child ever holds the repository's key. Real loaders, real repositories
(encrypted too under ``AMLPORT_TEST_ENCRYPT=1``)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.cliutil import amlport
from helpers.encrypted_mode import keys_for_fixture

from amlport.bundle import Repository
from amlport.errors import AmlportError
from amlport.processes import pid_alive

pytest.importorskip("azure.ai.ml")
pytest.importorskip("mlflow")

from amlport.export.deep import AZURE, MLFLOW, DeepCheck

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "v2-lendingclub"
# A signature mlflow cannot read: MLmodel is valid YAML (the export keeps it as a model).
BAD_SIGNATURE = "signature:\n  inputs: 'not json ['\n"
SCALE_OUTPUTS = (
    "outputs:\n  scaled_train:\n    type: uri_folder\n  scaled_test:\n    type: uri_folder\n"
)


@pytest.fixture(scope="module")
def broken_repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A repository of the lending-club workspace with one component azure.ai.ml rejects and
    one MLflow model whose MLmodel mlflow rejects; the MLmodel's bundle path."""
    with keys_for_fixture():  # encrypted under AMLPORT_TEST_ENCRYPT=1 whichever test is first
        tmp = tmp_path_factory.mktemp("deepkids")
        ws = tmp / "ws"
        shutil.copytree(WS, ws)
        scale = next(ws.rglob("components/scale.yml"))
        text = scale.read_text(encoding="utf-8")
        assert SCALE_OUTPUTS in text
        scale.write_text(text.replace(SCALE_OUTPUTS, "outputs:\n"), encoding="utf-8")
        mlmodel = next(p for p in ws.rglob("MLmodel") if "fde543f0" in str(p.parent.parent))
        with mlmodel.open("a", encoding="utf-8") as fh:
            fh.write(BAD_SIGNATURE)
        repo = tmp / "repo"
        res = amlport("export", str(ws), "--repo", str(repo))
        assert res.returncode in (0, 1), res.stderr
        yield repo, mlmodel.name
        # the children of an in-process check are gone with it (checked by the tests)


def _documents(repo: Path) -> tuple[str, int]:
    """The snapshot's id and the number of documents ``--deep`` loads (v2 YAML of the loaded
    kinds, MLflow model folders), counted from its manifest."""
    with Repository.open(repo) as opened:
        [info] = opened.list_snapshots()
        manifest = opened.load_snapshot(info.id)
    kinds = {"model", "environment", "data", "pipeline", "component"}
    yaml = sum(1 for a in manifest.assets if a.v2_yaml and a.kind in kinds)
    models = sum(
        1
        for a in manifest.assets
        if a.kind == "model" and a.attrs.get("format") == "mlflow" and a.attrs.get("folder")
    )
    return info.id, yaml + models


def test_each_loader_rejects_in_its_child_and_the_document_is_named(
    broken_repo: tuple[Path, str],
) -> None:
    repo, _ = broken_repo
    _, documents = _documents(repo)
    res = amlport("verify", str(repo), "--deep", "--json")
    assert res.returncode == 1, res.stdout + res.stderr
    deep = json.loads(res.stdout)["deep"]
    assert deep["checked"] == documents
    by_name = {p["path"].rsplit("/", 1)[-1]: p for p in deep["problems"]}
    # the pipeline uses the component: azure.ai.ml rejects it too
    assert set(by_name) == {"scale.yml", "pipeline.yml", "MLmodel"}, deep["problems"]
    assert by_name["scale.yml"]["fields"] == ["outputs"]
    assert "may not be null" in by_name["scale.yml"]["reason"]
    assert "fde543f0" in by_name["MLmodel"]["path"]
    assert by_name["MLmodel"]["reason"].startswith("JSONDecodeError")
    # named by bundle path: the extraction folder is not in what the user reads
    assert "amlport-verify-" not in res.stdout + res.stderr
    # the in-process order: the v2 YAML first, then the MLmodels
    names = [p["path"].rsplit("/", 1)[-1] for p in deep["problems"]]
    assert names == ["scale.yml", "pipeline.yml", "MLmodel"]


def test_text_output_names_both_documents_and_exits_1(broken_repo: tuple[Path, str]) -> None:
    repo, _ = broken_repo
    res = amlport("verify", f"{repo}@latest", "--deep")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "scale.yml does not load (field outputs)" in res.stderr
    assert "MLmodel does not load" in res.stderr
    assert "3 document(s) do not load" in res.stderr


def _children(check: DeepCheck) -> dict[str, int]:
    pids = {}
    for library, pool in check._pools.items():
        [pid] = list(pool._processes or {})
        pids[library] = pid
    return pids


def test_a_killed_loader_process_is_an_error_and_the_children_end(
    broken_repo: tuple[Path, str],
) -> None:
    repo, _ = broken_repo
    sid, _ = _documents(repo)
    with Repository.open(repo) as opened, DeepCheck() as check:
        pids = _children(check)
        os.kill(pids[MLFLOW], signal.SIGKILL)
        with pytest.raises(AmlportError, match="loading documents with mlflow ended unexpectedly"):
            check.check(opened, sid)
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in pids.values())


def test_children_end_with_the_check_and_never_hold_the_key(
    broken_repo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, _ = broken_repo
    sid, documents = _documents(repo)
    passphrase = "deep-children-must-not-see-this-passphrase"
    with Repository.open(repo) as opened:
        monkeypatch.setenv("AMLPORT_REPO_KEY", passphrase)  # as a user's, once it is opened
        with DeepCheck() as check:
            pids = _children(check)
            for pool in check._pools.values():  # the child's own environment
                assert pool.submit(os.getenv, "AMLPORT_REPO_KEY").result() is None
            for pid in pids.values():  # and the one it was started with
                assert passphrase.encode() not in Path(f"/proc/{pid}/environ").read_bytes()
            checked, problems = check.check(opened, sid)
            assert checked == documents and len(problems) == 3
            assert os.environ["AMLPORT_REPO_KEY"] == passphrase  # given back to this process
    assert set(pids) == {AZURE, MLFLOW}
    assert not any(pid_alive(p) for p in pids.values())


def _descendants(root: int) -> set[int]:
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    found, todo = set(), [root]
    while todo:
        for kid in parents.get(todo.pop(), []):
            found.add(kid)
            todo.append(kid)
    return found


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_ctrl_c_stops_the_loader_processes(broken_repo: tuple[Path, str]) -> None:
    repo, _ = broken_repo
    ran = subprocess.Popen(
        [sys.executable, "-m", "amlport", "verify", str(repo), "--deep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a terminal's Ctrl-C goes to the whole process group
    )
    seen: set[int] = set()
    deadline = time.monotonic() + 120
    while len(seen) < 3 and ran.poll() is None and time.monotonic() < deadline:
        seen |= _descendants(ran.pid)  # the fork server and the two loader processes
        time.sleep(0.05)
    assert len(seen) >= 3, "the loader processes did not start"
    os.killpg(ran.pid, signal.SIGINT)
    _, err = ran.communicate(timeout=60)
    assert ran.returncode == 130, err
    assert "Traceback" not in err
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in seen), "a loader process outlived the command"
