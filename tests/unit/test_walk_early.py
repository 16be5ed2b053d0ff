"""Records parsed ahead in a worker (``walk/early.py``) give the handlers exactly what parsing
in process gives: the same records and findings, in the same order, for hostile content
(huge single lines, control characters, non-UTF-8, alias chains, deep nesting) and hostile
names (``[``, ``]``, ``..``, control characters, 1,024 characters). A document whose parse
raises is not parsed ahead: the handler parses it again and reports it as before.

Pure: the records are made here by ``early.parse`` as the worker makes them, and pickled
and unpickled as they travel between the processes.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest

from amlport.model import findings as F
from amlport.model.inventory import Inventory, Loc, Output
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import BlobInfo
from amlport.walk import early, logs
from amlport.walk.handlers import Handlers
from amlport.walk.walker import _Walker

ART = "azureml"
STORE = "azureml-blobstore-x"
KEY = "AccountKey=" + "q" * 86 + "=="
URI = "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/ds/paths/p/x"

HOSTILE_RUNS = ["r[1]", "r]..x", "run\twith\x01ctl", "R" * 1000]

EXECUTION = (
    "[2022-10-05 18:04:20Z] Job is running, job runstatus is Running\n"
    "[2022-10-05 18:04:21Z] Submitting 7 runs, first five are: "
    "0a1b2c3d:child_1,1a1b2c3d:child_2,child_3\n"
    f"[2022-10-05 18:04:22Z] --input_data={URI} parent_run_id=pipe_1 moduleNodeId=0a1b2c3d\n"
    "[2022-10-05 18:04:23Z] Completing processing run id child_9.\n"
    "[2022-10-05 18:04:24Z] urldecode_invoker.py --module-name=azureml.studio.x --k=v "
    "$AZURE_ML_INPUT_a $AZURE_ML_OUTPUT_b AZUREML_ROOT_RUN_ID=root_1\n"
    "[2022-10-05 18:05:00Z] Job finished, job RunId is x\n"
)
DRIVER = (
    "[2020-09-15T11:53:04.000000] Experiment: exp\nRun target: cpu\n"
    "azuremldatastore://ds/some/path azureml.reusedrunid=old_1\n"
    "[2020-09-15T11:59:04.500000] Process Exiting with Code:  1\n"
)
CAPABILITY = (
    '{"environment_names": ["in_port"]} /mnt/azureml/cr/j/x/wd/INPUT_in_port '
    f"URI {URI} to /mnt/x\n"
)


def _logs() -> dict[str, bytes]:
    """Lineage logs and logs read for their secrets only, of runs with hostile ids."""
    huge = ("x" * 1_000_000 + f" --input={URI} " + "\u212a" * 10 + "\n").encode()
    files = {}
    for i, run in enumerate(HOSTILE_RUNS):
        base = f"ExperimentRun/dcid.{run}"
        files[f"{base}/logs/azureml/executionlogs.txt"] = EXECUTION.encode()
        files[f"{base}/azureml-logs/70_driver_log_{i}.txt"] = DRIVER.encode()
        files[f"{base}/system_logs/data_capability/data-capability.log"] = CAPABILITY.encode()
        files[f"{base}/logs/azureml/stdoutlogs.txt"] = huge  # one line of a megabyte
        files[f"{base}/user_logs/std_log.txt"] = f"key {KEY}\n".encode()  # secrets only
        files[f"{base}/user_logs/latin.txt"] = b"caf\xe9 \x00\x1b[31m\n"  # non-UTF-8
        files[f"{base}/logs/azureml/executionlogs.txt.."] = b"\xff\xfe"  # not a lineage log
    files["ExperimentRun/dcid.latin/logs/azureml/executionlogs.txt"] = (
        b"[2022-10-05 18:04:20Z] Job is running caf\xe9\n[2022-10-05 18:05:00Z] "
        b"Job failed, job RunId is x\n"
    )
    return files


ALIASES = "a: &a [x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(20)
)
MARKERS = {
    "_meta.yaml": [
        b"type: AnyDirectory\n",
        b"type: ILearner\nextra: [1, 2]\n",
        ALIASES.encode() + b"type: x\n",  # an alias chain: refused, in process
        b"type: " + b"[" * 5000 + b"]" * 5000 + b"\n",  # deep nesting
        b"no_type: 1\n",  # malformed
        b"type: caf\xe9\n",  # non-UTF-8
        b"type: 'x'\n" + f"k: {KEY}\n".encode(),  # a secret
        b"type: " + b"y" * 1_000_000 + b"\n",  # a huge single line
    ],
    "data_type.json": [
        b'{"Id": "ILearnerDotNet"}',
        b'{"Id": "AnyDirectory"}',
        b'{"Id": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        b"{not json",
        b'{"Id": "caf\xe9"}',
    ],
    "model_spec.yaml": [b"flavor: x\n", ALIASES.encode(), b": : :\n"],
}


def _inv() -> Inventory:
    return Inventory(
        source=WorkspaceDescriptor(account="a", artifact_container=ART, blobstore_container=STORE)
    )


def _dispatch(
    handlers: Handlers,
    fn: Callable[[BlobInfo, bytes], None],
    blob: BlobInfo,
    data: bytes,
    ahead: bool,
    records: dict[str, early.Early | None] | None = None,
) -> None:
    """As the walker hands one file over (``_Walker._dispatch``), with the record a worker
    parsed of it when ``ahead`` (pickled there and back, as between the processes)."""
    walker = _Walker.__new__(_Walker)
    walker.inv = handlers.inv
    if ahead:
        if records is not None:
            record = records[blob.name]
        else:
            record = early.parse(blob.container, blob.name, data)
        if record is not None:
            handlers.parsed = (data, pickle.loads(pickle.dumps(record)))
    try:
        walker._dispatch(fn, blob, data, f"{blob.container}/{blob.name}")
    finally:
        handlers.parsed = None


def _walk_logs(ahead: bool, records: dict[str, early.Early | None] | None = None) -> Inventory:
    inv = _inv()
    handlers = Handlers(inv, scan_secrets=True)
    for name, data in _logs().items():
        blob = BlobInfo(container=ART, name=name, size=len(data))
        _dispatch(handlers, handlers.on_log, blob, data, ahead, records)
    return inv


def test_logs_parsed_ahead_give_the_records_parsed_in_process() -> None:
    serial, ahead = _walk_logs(False), _walk_logs(True)
    assert repr(ahead) == repr(serial)  # every record and finding, in the same order
    run = ahead.runs["r[1]"]
    assert run.children == ["child_1", "child_2", "child_3", "child_9"]
    assert run.module == "azureml.studio.x" and run.status == "failed"
    assert any(i.port == "input_data" for i in run.inputs)
    long = ahead.runs["R" * 1000]
    assert long.started == "2020-09-15T11:53:04Z" and long.ended == "2022-10-05T18:05:00Z"
    codes = [f.code for f in ahead.findings]
    assert codes.count(F.SECRET_IN_FILE) == len(HOSTILE_RUNS)
    assert codes.count(F.NON_UTF8_TEXT) == 2 * len(HOSTILE_RUNS) + 1


def test_every_log_is_parsed_ahead(monkeypatch: pytest.MonkeyPatch) -> None:
    """No log is decoded or parsed again in process when its record came with it."""
    records = {n: early.parse(ART, n, d) for n, d in _logs().items()}
    assert all(r is not None and r[0] == early.LOG for r in records.values())
    calls: list[str] = []
    monkeypatch.setattr(logs, "read_log", lambda *a: calls.append("read_log"))
    monkeypatch.setattr(Handlers, "text", lambda *a, **k: calls.append("text"))
    _walk_logs(True, records)
    assert not calls


@pytest.mark.parametrize("base", sorted(MARKERS))
def test_output_markers_parsed_ahead_give_the_formats_and_findings_parsed_in_process(
    base: str,
) -> None:
    found = {}
    for ahead in (False, True):
        inv = _inv()
        handlers = Handlers(inv, scan_secrets=True)
        for i, data in enumerate(MARKERS[base]):
            for folder in ("[x]", "..", "a\x01b", "p" * 1000):
                loc = Loc("workspaceblobstore", f"azureml/run{i}/{folder}")
                inv.outputs[loc] = Output(loc=loc, run_id=f"run{i}", port=folder)
                name = f"{loc.path}/{base}"
                blob = BlobInfo(container=STORE, name=name, size=len(data))
                _dispatch(handlers, handlers.output_marker_reader(loc), blob, data, ahead)
        found[ahead] = inv
    assert repr(found[True]) == repr(found[False])
    formats = {o.format for o in found[True].outputs.values()}
    malformed = [f for f in found[True].findings if f.code == F.MALFORMED_FILE]
    assert len(formats) > 1 and malformed


def test_a_document_that_fails_to_parse_is_not_parsed_ahead() -> None:
    """An alias chain, deep nesting or a malformed marker: no record; the handler parses it
    again in process and reports it there (the test above: the same findings)."""
    assert early.parse(STORE, "o/p/_meta.yaml", ALIASES.encode() + b"type: x\n") is None
    assert early.parse(STORE, "o/p/_meta.yaml", b"no_type: 1\n") is None
    assert early.parse(STORE, "o/p/data_type.json", b"{not json") is None
    assert early.parse(STORE, "o/p/_meta.yaml", b"type: ok\n") == (early.MARKER, True, "ok")
    assert early.parse(ART, "ExperimentRun/dcid.r/outputs/model.pkl", b"x") is None
    assert early.parse(STORE, "data/x.csv", b"a,b\n") is None


def test_a_parse_that_raises_in_the_worker_leaves_the_log_to_the_main_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(*_args: object) -> None:
        raise RecursionError("deep")

    name = "ExperimentRun/dcid.r[1]/logs/azureml/executionlogs.txt"
    with monkeypatch.context() as m:
        m.setattr(logs, "read_log", broken)
        assert early.parse(ART, name, EXECUTION.encode()) is None


def test_a_record_is_taken_only_for_the_same_bytes_and_its_kind() -> None:
    name = "ExperimentRun/dcid.r/logs/azureml/executionlogs.txt"
    data = EXECUTION.encode()
    blob = BlobInfo(container=ART, name=name, size=len(data))
    record = early.parse(ART, name, data)
    assert record is not None
    made_up = (early.LOG, True, None, None)  # a record saying: no facts
    for parsed, children in (
        ((data, made_up), []),  # taken: its facts (none)
        ((bytes(bytearray(data)), made_up), ["child_1", "child_2", "child_3", "child_9"]),
        ((data, (early.MARKER, True, "x")), ["child_1", "child_2", "child_3", "child_9"]),
    ):
        inv = _inv()
        handlers = Handlers(inv, scan_secrets=True)
        handlers.parsed = parsed
        handlers.on_log(blob, data)
        assert inv.runs["r"].children == children
