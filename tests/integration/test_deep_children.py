"""``verify --deep`` loads its documents in child processes, one per loader library (azure.ai.ml
and mlflow: docs/design/0007, "verify --deep in bounded memory (D, session 9)"): a document
either loader rejects is still reported naming it, a child that dies is an error, Ctrl-C stops
the children, and no child ever holds the repository's key. Real loaders, real repositories
(encrypted too under ``AMLPORT_TEST_ENCRYPT=1``)."""

from __future__ import annotations

import contextlib
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


def _verify_deep(repo: Path, **env: str) -> subprocess.Popen[str]:
    """``amlport verify REPO --deep`` in a session of its own (a terminal's Ctrl-C goes to
    the whole process group), with ``env`` added to the environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "amlport", "verify", str(repo), "--deep"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, **env},
    )


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_ctrl_c_stops_the_loader_processes(broken_repo: tuple[Path, str]) -> None:
    repo, _ = broken_repo
    ran = _verify_deep(repo)
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


# --- A loader that hangs (F, session 10): a bound, not a hang -----------------------------


def test_a_loader_that_hangs_on_a_chunk_is_ended_and_named(
    broken_repo: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mlflow child stopped (SIGSTOP) once its import is done: the chunk it never answers
    is an error naming mlflow and the MLmodel, within the bound, and the children end."""
    import threading

    repo, _ = broken_repo
    sid, _ = _documents(repo)
    monkeypatch.setenv("AMLPORT_DEEP_TIMEOUT", "1")  # a chunk of n: (12 + n) * 1 s
    outcome: list[BaseException | None] = []
    with Repository.open(repo) as opened, DeepCheck() as check:
        pids = _children(check)
        for ready in check._ready.values():  # imported: the hang is a chunk's
            ready.result(timeout=600)
        os.kill(pids[MLFLOW], signal.SIGSTOP)

        def run() -> None:
            try:
                check.check(opened, sid)
                outcome.append(None)
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(120)
        hung = thread.is_alive()
        if hung:  # the code under test hangs: end the child so that the thread ends
            os.kill(pids[MLFLOW], signal.SIGKILL)
            thread.join(60)
    assert not hung, "verify --deep waited forever on a stopped loader"
    [exc] = outcome
    assert isinstance(exc, AmlportError), exc
    assert "loading documents with mlflow gave no result in time" in str(exc)
    assert "/model/MLmodel" in str(exc)  # the chunk's documents, by bundle path
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in pids.values())


@pytest.mark.parametrize("value", ["", "abc", "0", "-5", "nan", "inf", "1e400", "\x1b[31m"])
def test_the_bound_takes_a_positive_number_only(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from amlport.export import deep

    monkeypatch.setenv(deep.TIMEOUT_ENV, value)
    assert deep._per_document() == deep.TIMEOUT_DEFAULT
    monkeypatch.setenv(deep.TIMEOUT_ENV, "0.5")
    assert deep._per_document() == 0.5


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_verify_deep_with_stopped_loaders_ends_with_an_error(
    broken_repo: tuple[Path, str],
) -> None:
    """Both loader processes stopped (SIGSTOP) as they start: the command ends within its
    bound, exit 2, one line naming the library, no traceback, no process left."""
    repo, _ = broken_repo
    ran = _verify_deep(repo, AMLPORT_DEEP_TIMEOUT="0.5")  # an import: 60 * 0.5 s
    seen: set[int] = set()
    try:
        loaders: set[int] = set()
        deadline = time.monotonic() + 120
        while len(loaders) < 2 and ran.poll() is None and time.monotonic() < deadline:
            seen |= _descendants(ran.pid)
            for pid in seen - loaders:  # the fork server's children: the loader processes
                with contextlib.suppress(OSError):
                    if _parent(pid) != ran.pid and _parent(_parent(pid)) == ran.pid:
                        os.kill(pid, signal.SIGSTOP)
                        loaders.add(pid)
            time.sleep(0.02)
        assert len(loaders) == 2, "the loader processes did not start"
        try:
            _, err = ran.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            pytest.fail("verify --deep waited forever on a stopped loader")
    finally:
        if ran.poll() is None:
            os.killpg(ran.pid, signal.SIGKILL)
            ran.wait()
    assert ran.returncode == 2, err
    assert "Traceback" not in err
    assert "with azure-ai-ml gave no result in time importing it" in err
    deadline = time.monotonic() + 30
    while any(pid_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(p) for p in seen), "a loader process outlived the command"
