"""``amlport forget``: retention keeps exactly the expected snapshots; prune frees the rest.

Seventy daily snapshots (2024-01-01 … 2024-03-10, 02:00 UTC) are made from one real backup by
re-dating its manifest — the same files, so the rules alone decide what stays.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from helpers.backup import WS, cli, objects_on_disk, referenced

from amlport.backup import BackupRequest, run_backup
from amlport.backup.forget import ForgetRequest, run_forget
from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.model.manifest import format_time
from amlport.storage.local import LocalSource

FIRST = datetime(2024, 1, 1, 2, 0, tzinfo=timezone.utc)
DAYS = 70  # the last one is Sunday 2024-03-10


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("forget") / "repo"
    result = run_backup(LocalSource(WS / "sdk-bikeshare"), repo, BackupRequest(now=FIRST))
    store = Repository.open(repo)
    base = store.load_snapshot(str(result.snapshot_id))
    for day in range(1, DAYS):
        base.snapshot_id = None
        base.created = format_time(FIRST + timedelta(days=day))
        base.tags = ["release"] if day == 20 else ["nightly"]
        store.write_snapshot(base)
    assert len(store.list_snapshots()) == DAYS
    return repo


@pytest.fixture
def history(made: Path, tmp_path: Path) -> Path:
    """A private copy of the seventy-day repository (forget changes it)."""
    return Path(shutil.copytree(made, tmp_path / "repo"))


def _kept(repo: Path, request: ForgetRequest) -> list[date]:
    report = run_forget(repo, replace(request, dry_run=True))
    return sorted(s.created.date() for s in report.plan.keep)


def test_keep_last(made: Path) -> None:
    assert _kept(made, ForgetRequest(keep_last=3)) == [date(2024, 3, d) for d in (8, 9, 10)]


def test_keep_weekly_takes_the_newest_of_each_iso_week(made: Path) -> None:
    # 2024-03-10 is a Sunday: weeks end on Mar 10, Mar 3 and Feb 25
    assert _kept(made, ForgetRequest(keep_weekly=3)) == [
        date(2024, 2, 25),
        date(2024, 3, 3),
        date(2024, 3, 10),
    ]


def test_keep_monthly_takes_the_newest_of_each_month(made: Path) -> None:
    assert _kept(made, ForgetRequest(keep_monthly=3)) == [
        date(2024, 1, 31),
        date(2024, 2, 29),
        date(2024, 3, 10),
    ]


def test_rules_combine_and_tags_are_kept(made: Path) -> None:
    assert _kept(made, ForgetRequest(keep_daily=2, keep_monthly=2, keep_tags=("release",))) == [
        date(2024, 1, 21),  # day 20: tagged "release"
        date(2024, 2, 29),
        date(2024, 3, 9),
        date(2024, 3, 10),
    ]


def test_forget_cli_dry_run_then_prune(history: Path) -> None:
    before = {p.name for p in (history / "snapshots").iterdir()}
    dry = cli("forget", str(history), "--keep-last", "2", "--dry-run", "--prune", "--json")
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    assert doc["dry_run"] is True and len(doc["keep"]) == 2 and len(doc["remove"]) == DAYS - 2
    assert doc["keep"][0]["reasons"] == ["last"]
    assert doc["prune"]["dry_run"] is True and doc["prune"]["objects_removed"] == 0
    assert {p.name for p in (history / "snapshots").iterdir()} == before  # nothing changed

    res = cli("forget", str(history), "--keep-last", "2", "--prune")
    assert res.returncode == 0, res.stderr
    assert "keep 2 snapshot(s), removed 68" in res.stdout
    assert "prune: deleted 0 of" in res.stdout  # every object is still used by the two kept
    assert len(Repository.open(history).list_snapshots()) == 2
    assert objects_on_disk(history) == referenced(history)


def test_an_empty_policy_is_refused(history: Path) -> None:
    with pytest.raises(UsageError, match="no retention policy"):
        run_forget(history, ForgetRequest())
    res = cli("forget", str(history), "--prune")
    assert res.returncode == 2 and "no retention policy" in res.stderr
    assert len(Repository.open(history).list_snapshots()) == DAYS
