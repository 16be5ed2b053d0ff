"""When a run started and ended, and how it ended, from the lines of its own logs (pure).

Storage keeps no run-history record (status and times live in the run history service), so the
walk reads them from the log lines that say so (storage layout §2.2, designer evidence):

- ``logs/azureml/executionlogs.txt`` of a step: ``[<ts>] Job is running, job runstatus is
  Running`` (started), ``[<ts>] Job finished, job RunId is <id>`` (completed) and
  ``[<ts>] Job failed, job RunId is <id>`` (failed);
- the same file of a pipeline parent: its first ``Submitting N runs`` line (started) and its
  last line (``Completing processing run id …``): the parent's state is its children's
  (``linker.py``: failed when a child failed, completed when every child completed);
- ``azureml-logs/70_driver_log*.txt`` (classic runtime): its first time stamp (started),
  ``Process Exiting with Code:  <n>`` (ended: completed for 0, failed otherwise) and
  ``The experiment completed successfully`` (completed).

Times are UTC (Azure ML writes these logs in UTC; the ``Z`` says so where it is written) and
kept as ISO 8601 text (``2022-10-05T18:04:22Z``). A run whose logs say none of this keeps
``None``: nothing is guessed from blob dates (a copy's dates are those of the copy).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from amlport.model.inventory import Run

# ``[2022-10-05 18:04:22Z]`` (execution logs) or ``[2020-09-15T11:53:04.000000]`` (driver log).
STAMP = re.compile(
    r"^\[(?P<date>\d{4}-\d{2}-\d{2})[ T](?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,6})?Z?\]"
)
RUNNING = re.compile(r"\] Job is running\b")
FINISHED = re.compile(r"\] Job finished, job RunId is ")
FAILED = re.compile(r"\] Job failed, job RunId is ")
CANCELED = re.compile(r"\] Job (?:was )?cancel+ed\b", re.IGNORECASE)
SUBMITTING = re.compile(r"\] Submitting \d+ runs?\b")
EXITING = re.compile(r"Process Exiting with Code:\s+(?P<code>-?\d+)")
SUCCEEDED = re.compile(r"The experiment completed successfully")
EXECUTION_LOG = "logs/azureml/executionlogs.txt"
DRIVER_LOG = re.compile(r"^azureml-logs/70_driver_log(?:_\d+)?\.txt$")
# How a run ended, strongest first: one failed log of a run makes the run failed.
STATES = ("failed", "canceled", "completed")


@dataclass
class RunTimes:
    started: str | None = None
    ended: str | None = None
    status: str | None = None


def reads_times(rest: str) -> bool:
    """Whether a log (its path below ``dcid.<run>/``) can say when its run started or ended."""
    return rest == EXECUTION_LOG or DRIVER_LOG.match(rest) is not None


def read_times(rest: str, text: str) -> RunTimes:
    """What one log says about its run's times and end state."""
    found = RunTimes()
    if not reads_times(rest):
        return found
    driver = rest != EXECUTION_LOG
    first = last = None
    submitted = False
    for line in text.splitlines():
        m = STAMP.match(line)
        if m is None:
            continue
        stamp = _iso(m)
        if stamp is None:
            continue
        first = first or stamp
        last = stamp
        if SUBMITTING.search(line):
            submitted = True
            found.started = found.started or stamp
        elif RUNNING.search(line):
            found.started = found.started or stamp
        elif FAILED.search(line):
            found.ended, found.status = stamp, _stronger(found.status, "failed")
        elif CANCELED.search(line):
            found.ended, found.status = stamp, _stronger(found.status, "canceled")
        elif FINISHED.search(line):
            found.ended, found.status = stamp, _stronger(found.status, "completed")
        elif driver and (code := EXITING.search(line)):
            state = "completed" if code["code"] == "0" else "failed"
            found.ended, found.status = stamp, _stronger(found.status, state)
        elif driver and SUCCEEDED.search(line):
            found.status = _stronger(found.status, "completed")
    if driver:
        found.started = first
        found.ended = found.ended or (last if found.status else None)
    elif submitted and found.status is None and last != found.started:
        found.ended = last  # a pipeline parent: its last line (its state comes from children)
    return found


def merge(run: Run, found: RunTimes) -> None:
    """Merge what one of a run's logs said (``read_times``) into the run (earliest start,
    latest end, the strongest end state)."""
    if found.started and (run.started is None or _at(found.started) < _at(run.started)):
        run.started = found.started
    if found.ended and (run.ended is None or _at(found.ended) > _at(run.ended)):
        run.ended = found.ended
    if found.status:
        run.status = _stronger(run.status, found.status)


def settle(runs: dict[str, Run]) -> None:
    """A pipeline parent's end state from its children's (its own log does not say it):
    failed when one failed (or was canceled), completed when every child completed; its end
    is then its last log line or its last child's end, whichever is later."""
    for run in runs.values():
        if run.status is not None or not run.children:
            continue
        kids = [runs[c] for c in run.children if c in runs]
        states = {k.status for k in kids}
        if "failed" in states or "canceled" in states:
            run.status = "failed"
        elif len(kids) == len(run.children) and states == {"completed"}:
            run.status = "completed"
        else:
            continue
        ends = [e for e in (run.ended, *(k.ended for k in kids)) if e]
        run.ended = max(ends, key=_at) if ends else None


def _at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.removesuffix("Z"))


def _stronger(current: str | None, new: str) -> str:
    if current is None or current not in STATES:
        return new
    return min(current, new, key=STATES.index)


def _iso(m: re.Match[str]) -> str | None:
    frac = (m["frac"] or "").ljust(7, "0")[:7] if m["frac"] else ""
    try:
        stamp = datetime.fromisoformat(f"{m['date']}T{m['time']}{frac}")
    except ValueError:  # 2022-13-45: not a time stamp
        return None
    return stamp.isoformat(timespec="microseconds" if stamp.microsecond else "seconds") + "Z"
