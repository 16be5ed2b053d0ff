"""OpenLineage events carry each run's own times and end state, read from its logs, and
validate against the OpenLineage JSON schema (vendored in tests/unit/openlineage/)."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from helpers.walkfacts import WORKSPACES, scanned
from jsonschema import Draft202012Validator

from amlport.lineage import build_graph
from amlport.lineage.formats import OPENLINEAGE_SCHEMA, render
from amlport.storage.local import LocalSource
from amlport.walk import walk
from amlport.walk.runtimes import read_times

SCHEMA = Path(__file__).with_name("openlineage") / "OpenLineage.json"
FIXTURES = ["designer-autoprice", "v2-lendingclub", "sdk-bikeshare", "messy"]


@cache
def _validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    assert schema["$id"] == OPENLINEAGE_SCHEMA.split("#")[0]  # the version we name
    run_event = {"$ref": "#/$defs/RunEvent", "$defs": schema["$defs"]}
    return Draft202012Validator(run_event, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _events(name: str) -> list[dict[str, Any]]:
    inv, lg = scanned(name)
    return [json.loads(line) for line in render(lg, "openlineage", inv.source).splitlines()]


def _by_run(events: list[dict[str, Any]], job_name: str) -> dict[str, str]:
    return {e["eventType"]: e["eventTime"] for e in events if e["job"]["name"] == job_name}


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.parametrize("name", FIXTURES)
def test_every_event_validates_against_the_openlineage_schema(name: str) -> None:
    events = _events(name)
    assert events
    for event in events:
        errors = sorted(_validator().iter_errors(event), key=str)
        assert not errors, (event, [e.message for e in errors])
        assert event["schemaURL"] == OPENLINEAGE_SCHEMA
        assert _at(event["eventTime"]).tzinfo is not None  # date-time with its zone
    times = [_at(e["eventTime"]) for e in events]
    assert times == sorted(times)  # in time order


def test_the_schema_refuses_what_it_should() -> None:
    """The vendored schema is a real check: a missing run id or an unknown state fails."""
    good = _events("messy")[0]
    assert not list(_validator().iter_errors(good))
    bad_state = {**good, "eventType": "FINISHED"}
    no_run_id = {**good, "run": {}}
    for bad in (bad_state, no_run_id):
        assert list(_validator().iter_errors(bad))


def test_a_failed_run_ends_in_fail_at_the_time_its_log_says() -> None:
    events = _by_run(_events("messy"), "messy_e_missing_input_consumer")
    assert events == {"START": "2023-11-29T09:19:02Z", "FAIL": "2023-11-29T09:21:00Z"}


def test_a_completed_step_starts_and_completes_at_its_log_times() -> None:
    events = _by_run(_events("messy"), "messy_e_empty_output_producer")
    assert events == {"START": "2023-11-29T09:16:42Z", "COMPLETE": "2023-11-29T09:18:40Z"}


def test_a_classic_runtime_run_reads_its_driver_log() -> None:
    events = _by_run(_events("messy"), "messy-d-legacy-v1_1600171983_5e2f8a1c")
    assert events["START"] == "2020-09-15T11:53:04Z" and "COMPLETE" in events


def test_a_pipeline_parent_ends_as_its_children_did() -> None:
    inv, _ = scanned("messy")
    parent = inv.runs["tidy_river_3k8d0x2p1q"]
    assert parent.status == "completed"
    kids = [inv.runs[c] for c in parent.children]
    assert parent.started is not None and all(
        _at(parent.started) <= _at(str(k.started)) for k in kids
    )
    assert parent.ended is not None and all(_at(parent.ended) >= _at(str(k.ended)) for k in kids)


def test_runs_without_times_get_one_other_event_not_a_made_up_completion() -> None:
    events = _events("sdk-bikeshare")
    inv, _ = scanned("sdk-bikeshare")
    assert {e["eventType"] for e in events} == {"OTHER"}
    assert len(events) == len(inv.runs)


def test_no_run_reports_the_export_time_when_its_logs_have_times() -> None:
    for name in ("designer-autoprice", "messy"):
        inv, _ = scanned(name)
        timed = {r.module or r.run_id for r in inv.runs.values() if r.started}
        for event in _events(name):
            if event["job"]["name"] in timed:
                assert event["eventType"] != "OTHER"
                assert _at(event["eventTime"]).year < 2025, event


def test_run_times_are_lineage_node_attributes() -> None:
    _, lg = scanned("messy")
    node = lg.g.nodes["run:messy_e_missing_input_consumer"]
    assert (node["status"], node["started"], node["ended"]) == (
        "failed",
        "2023-11-29T09:19:02Z",
        "2023-11-29T09:21:00Z",
    )


def test_a_failed_child_fails_its_pipeline(tmp_path: Path) -> None:
    root = tmp_path / "messy"
    shutil.copytree(WORKSPACES / "messy", root)
    step = root / "azureml" / "ExperimentRun" / "dcid.5457b928-888f-4d08-9555-11c99e4d851a"
    log = step / "logs" / "azureml" / "executionlogs.txt"
    log.write_text(
        "[2023-11-29 09:02:52Z] Job is running, job runstatus is Running\n"
        "[2023-11-29 09:04:50Z] Job failed, job RunId is 5457b928-888f-4d08-9555-11c99e4d851a\n",
        encoding="utf-8",
    )
    inv = walk(LocalSource(root))
    assert inv.runs["tidy_river_3k8d0x2p1q"].status == "failed"
    lines = render(build_graph(inv), "openlineage", inv.source).splitlines()
    types = {json.loads(x)["eventType"] for x in lines if "tidy_river_3k8d0x2p1q" in x}
    assert "FAIL" in types


# --- the log lines themselves (pure) -------------------------------------------------------


def test_step_execution_log_lines() -> None:
    found = read_times(
        "logs/azureml/executionlogs.txt",
        "[2022-10-05 18:04:22Z] Job is running, job runstatus is Running\n"
        "[2022-10-05 18:06:50Z] Job finished, job RunId is 09deaf1f\n",
    )
    assert (found.started, found.ended, found.status) == (
        "2022-10-05T18:04:22Z",
        "2022-10-05T18:06:50Z",
        "completed",
    )


def test_driver_log_exit_code_decides_the_state() -> None:
    text = (
        "[2020-09-15T11:53:04.000000] Entering context manager injector.\n"
        "[2020-09-15T11:54:36.250000] Process Exiting with Code:  1\n"
    )
    found = read_times("azureml-logs/70_driver_log.txt", text)
    assert (found.started, found.ended, found.status) == (
        "2020-09-15T11:53:04Z",
        "2020-09-15T11:54:36.250000Z",
        "failed",
    )


def test_a_step_still_running_has_no_end() -> None:
    found = read_times(
        "logs/azureml/executionlogs.txt",
        "[2022-10-05 18:04:22Z] Job is running, job runstatus is Running\n"
        "[2022-10-05 18:05:00Z] x\n",
    )
    assert (found.started, found.ended, found.status) == ("2022-10-05T18:04:22Z", None, None)


@pytest.mark.parametrize(
    "text",
    [
        "[2022-13-45 99:99:99Z] Job is running, job runstatus is Running\n",  # not a date
        "Job finished, job RunId is x\n",  # no time stamp
        "[2022-10-05 18:04:22Z]" + "[" * 100_000 + "\n",
        "\x1b[31m[2022-10-05 18:04:22Z] Job failed, job RunId is [bold]x[/]\n",
        "",
    ],
)
def test_odd_lines_give_no_times_and_no_crash(text: str) -> None:
    found = read_times("logs/azureml/executionlogs.txt", text)
    assert found.status is None and found.ended is None


def test_other_logs_say_nothing() -> None:
    found = read_times("user_logs/std_log.txt", "[2022-10-05 18:04:22Z] Job failed, job RunId is x")
    assert (found.started, found.ended, found.status) == (None, None, None)
