"""The walk's worker processes hand back the records they parse (``walk/early.py``): the
walk of a local copy with them gives the serial walk's inventory, and the main process no
longer parses the lineage logs and output markers a worker read whole.

Real worker processes (the fork server) over a copy of the messy fixture workspace with run
logs and output markers added under hostile names (``[``, ``]``, ``..``, control characters,
a 1,024-character path) and hostile content (a megabyte on one line, non-UTF-8, an alias
chain, deep nesting, a malformed document). ``MIN_FILES`` is lowered so that this small
workspace uses the workers.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from amlport.export import workers
from amlport.model import findings as F
from amlport.model.inventory import Inventory
from amlport.storage.local import LocalSource
from amlport.walk import WalkOptions, logs, walk_with_listing
from amlport.walk.handlers import Handlers

WS = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
LIMIT = 1 << 20  # the parse limit of these walks
KEY = "AccountKey=" + "q" * 86 + "=="
URI = "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/ds/paths/p/x"
EXECUTION = (
    "[2022-10-05 18:04:20Z] Job is running, job runstatus is Running\n"
    "[2022-10-05 18:04:21Z] Submitting 7 runs, first five are: 0a1b2c3d:child_1,child_2\n"
    f"[2022-10-05 18:04:22Z] --input_data={URI} parent_run_id=pipe_1\n"
    "[2022-10-05 18:04:23Z] Completing processing run id child_9.\n"
    "[2022-10-05 18:05:00Z] Job failed, job RunId is x\n"
)
ALIASES = "a: &a [x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
)
# Run ids the file system can hold (a path part of at most 255 bytes); a log of run
# ``deep`` has a path of more than 1,024 characters.
RUNS = ["r[1]", "r]..x", "r\tctl\x01", "L" * 240]


def _workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(WS / "messy", root)
    art = root / "azureml"
    store = next(p for p in root.iterdir() if p.name.startswith("azureml-blobstore"))
    for i, run in enumerate(RUNS):
        base = art / "ExperimentRun" / f"dcid.{run}"
        files = {
            "logs/azureml/executionlogs.txt": EXECUTION.encode(),
            "logs/azureml/stdoutlogs.txt": ("x" * 1_000_000 + f" --in={URI}\n").encode(),
            f"azureml-logs/70_driver_log_{i}.txt": (
                b"[2020-09-15T11:53:04.000000] start caf\xe9\n"
                b"[2020-09-15T11:59:04.500000] Process Exiting with Code:  0\n"
            ),
            "user_logs/std_log.txt": f"key {KEY}\n".encode(),
        }
        for rest, data in files.items():
            path = base / rest
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        port = store / "azureml" / run / "out[put]"
        port.mkdir(parents=True, exist_ok=True)
        marker = [
            b"type: AnyDirectory\n",
            ALIASES.encode() + b"type: x\n",
            b"type: " + b"[" * 5000 + b"]" * 5000 + b"\n",
            b"no_type: 1\n",
        ][i]
        (port / "_meta.yaml").write_bytes(marker)
        (port / "data_type.json").write_bytes(b'{"Id": "ILearnerDotNet"}' if i else b"{bad")
    deep = art / "ExperimentRun" / "dcid.deep" / "logs" / "/".join(["d" * 200] * 5)
    deep.mkdir(parents=True)
    (deep / "execution-wrapper.log").write_text(f"--input_data={URI}\n")
    assert len(str((deep / "execution-wrapper.log").relative_to(art))) > 1024
    return root


def _walk(root: Path, monkeypatch: pytest.MonkeyPatch, *, ahead: bool) -> Inventory:
    monkeypatch.setattr(workers, "MIN_FILES", 1)
    monkeypatch.setattr(workers, "cpus", lambda: 2)
    source = LocalSource(root)
    reads = workers.WalkReads.of(source, 4, scan_secrets=True) if ahead else None
    options = WalkOptions(max_parse_bytes=LIMIT, ahead=reads)
    return walk_with_listing(source, options=options)[0]


def test_records_parsed_by_the_workers_equal_those_parsed_in_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    serial = _walk(root, monkeypatch, ahead=False)
    parsed_here: list[str] = []
    real_read_log, real_text = logs.read_log, Handlers.text

    def read_log(text: str, *args: Any) -> Any:
        parsed_here.append("read_log")
        return real_read_log(text, *args)

    def text(self: Handlers, blob: Any, data: bytes, **kw: Any) -> str:
        if data and ("/logs/" in blob.name or blob.name.endswith("_meta.yaml")):
            parsed_here.append(blob.name)
        return real_text(self, blob, data, **kw)

    monkeypatch.setattr(logs, "read_log", read_log)  # this process only: not the workers'
    monkeypatch.setattr(Handlers, "text", text)
    ahead = _walk(root, monkeypatch, ahead=True)
    assert repr(ahead) == repr(serial)  # every record and finding, in the same order
    # Decoded or parsed here: only the markers whose parse failed in the worker (reported
    # here as before); an empty file is not read by the workers (nothing to parse).
    assert "read_log" not in parsed_here
    assert sorted(n.split("/")[1] for n in parsed_here) == sorted(RUNS[1:])
    run = ahead.runs["r[1]"]
    assert run.children == ["child_1", "child_2", "child_9"] and run.status == "failed"
    assert any(i.port == "input_data" for i in ahead.runs["deep"].inputs)
    malformed = [f for f in ahead.findings if f.code == F.MALFORMED_FILE]
    assert sum(f.path.endswith("_meta.yaml") for f in malformed) == 3


def _die(jobs: list[Any], max_bytes: int, pack: bool) -> list[Any]:
    """A worker that dies on its task (sent by name to the worker)."""
    os._exit(3)


def test_a_worker_that_dies_leaves_its_records_to_the_main_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = _workspace(tmp_path)
    serial = _walk(root, monkeypatch, ahead=False)
    monkeypatch.setattr(workers.WalkReads, "task", staticmethod(_die))
    assert repr(_walk(root, monkeypatch, ahead=True)) == repr(serial)
