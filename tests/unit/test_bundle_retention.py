"""forget (restic retention) and prune, on explicit schedules and as properties."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import OTHER_SOURCE, T0, at, new_repo, sha, snapshot, snapshot_file
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.bundle import RetentionPolicy, SnapshotInfo, plan_forget
from amlport.errors import UsageError


def info(created: datetime, *, source: str = "src", tags: tuple[str, ...] = ()) -> SnapshotInfo:
    sid = f"{int(created.timestamp()):016x}{source}".ljust(64, "0")[:64]
    return SnapshotInfo(id=sid, created=created, source_key=source, tags=tags)


def kept(snaps: list[SnapshotInfo], **policy: Any) -> list[datetime]:
    plan = plan_forget(snaps, RetentionPolicy(**policy))
    return sorted(s.created for s in plan.keep)


def h(days: float, hours: float = 0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


# A week of nightly 02:00 backups, plus afternoon runs on days 5 and 6.
WEEK = [info(h(d)) for d in range(7)] + [info(h(5, 12)), info(h(6, 12))]


def test_keep_daily_keeps_the_newest_of_each_of_the_last_days() -> None:
    assert kept(WEEK, keep_daily=3) == [h(4), h(5, 12), h(6, 12)]


def test_keep_last_keeps_the_newest_n() -> None:
    assert kept(WEEK, keep_last=2) == [h(6), h(6, 12)]
    assert kept(WEEK, keep_last=100) == sorted(s.created for s in WEEK)


def test_policies_are_a_union() -> None:
    assert kept(WEEK, keep_last=1, keep_daily=2) == [h(5, 12), h(6, 12)]
    assert kept(WEEK, keep_last=3, keep_daily=1) == [h(5, 12), h(6), h(6, 12)]


def test_keep_weekly_uses_iso_weeks() -> None:
    # 2024-03-01 is a Friday: days 0-2 are ISO week 9, days 3-9 week 10, 10-16 week 11.
    daily = [info(h(d)) for d in range(17)]
    assert kept(daily, keep_weekly=2) == [h(9), h(16)]
    assert kept(daily, keep_weekly=5) == [h(2), h(9), h(16)]


def test_keep_monthly_uses_calendar_months() -> None:
    every_10_days = [info(h(d)) for d in range(0, 120, 10)]  # 2024-03-01 .. 2024-06-19
    assert kept(every_10_days, keep_monthly=2) == [h(90), h(110)]  # May 30, Jun 19


def test_keep_tags_keeps_every_tagged_snapshot() -> None:
    snaps = [info(h(0), tags=("release",)), info(h(1)), info(h(2), tags=("nightly",))]
    assert kept(snaps, keep_tags=("release",)) == [h(0)]
    plan = plan_forget(snaps, RetentionPolicy(keep_last=1, keep_tags=("release",)))
    assert plan.reasons == {snaps[0].id: ["tag"], snaps[2].id: ["last"]}


def test_policy_applies_per_source() -> None:
    snaps = [info(h(d), source=s) for d in range(3) for s in ("a", "b")]
    plan = plan_forget(snaps, RetentionPolicy(keep_last=1))
    assert sorted((s.source_key, s.created) for s in plan.keep) == [("a", h(2)), ("b", h(2))]
    assert len(plan.remove) == 4


def test_an_empty_or_negative_policy_is_refused() -> None:
    with pytest.raises(UsageError, match="no retention policy"):
        RetentionPolicy()
    with pytest.raises(UsageError, match="keep-daily"):
        RetentionPolicy(keep_daily=-1)


# --- properties ------------------------------------------------------------------------

_times = st.lists(
    st.integers(0, 60 * 24 * 90).map(lambda m: T0 + timedelta(minutes=m)),
    min_size=0,
    max_size=40,
    unique=True,
)


@settings(max_examples=150, deadline=None)
@given(times=_times, n=st.integers(1, 10))
def test_keep_daily_property(times: list[datetime], n: int) -> None:
    snaps = [info(t) for t in times]
    newest_per_day: dict[date, datetime] = {}
    for t in times:
        newest_per_day[t.date()] = max(t, newest_per_day.get(t.date(), t))
    days = sorted(newest_per_day, reverse=True)[:n]
    assert kept(snaps, keep_daily=n) == sorted(newest_per_day[d] for d in days)


@settings(max_examples=150, deadline=None)
@given(
    times=_times,
    last=st.integers(0, 5),
    daily=st.integers(0, 5),
    weekly=st.integers(0, 3),
    monthly=st.integers(0, 3),
)
def test_plan_partitions_and_more_is_never_less(
    times: list[datetime], last: int, daily: int, weekly: int, monthly: int
) -> None:
    snaps = [info(t) for t in times]
    policy = {"keep_last": last, "keep_daily": daily, "keep_weekly": weekly}
    policy["keep_monthly"] = monthly or 1  # never an empty policy
    plan = plan_forget(snaps, RetentionPolicy(**policy))
    keep, remove = {s.id for s in plan.keep}, {s.id for s in plan.remove}
    assert keep | remove == {s.id for s in snaps} and not keep & remove
    assert bool(snaps) == bool(keep)  # something is always kept when there is anything
    bigger = plan_forget(snaps, RetentionPolicy(**{k: v + 1 for k, v in policy.items()}))
    assert keep <= {s.id for s in bigger.keep}
    newest = max(snaps, key=lambda s: s.created, default=None)
    assert newest is None or newest.id in keep


# --- through the repository: forget, prune, verify -------------------------------------


def _stored_bytes(root: Path) -> int:
    """Bytes of every object file and pack file (not the pack index pieces) on disk."""
    files = [*root.glob("objects/*/??/*"), *root.glob("packs/??/*")]
    return sum(f.stat().st_size for f in files if f.is_file())


@pytest.mark.parametrize("packed", [False, True], ids=["loose", "packs"])
def test_scripted_week_forget_keep_daily_3_then_prune(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packed: bool
) -> None:
    # loose: bytes_freed is exactly the garbage objects' files; packs (the default): a packed
    # object is freed with its pack, so bytes_freed is what objects/ and packs/ shrank by
    monkeypatch.setenv("AMLPORT_PACKS", "1" if packed else "0")
    repo = new_repo(tmp_path)
    assert repo.objects.packing is packed
    ids = []
    for day in range(7):  # nightly backups; a log grows, the model changes on day 4
        contents = {
            "files/model.bin": b"model-v2" if day >= 4 else b"model-v1",
            "files/logs/driver.log": b"line\n" * (day + 1),
            "files/conda.yaml": b"name: env",
        }
        ids.append(snapshot(repo, contents, created=at(day)))
    ids.append(snapshot(repo, {"files/x": b"other"}, created=at(0), source=OTHER_SOURCE))
    dry = repo.forget(keep_daily=3, dry_run=True)
    assert dry.dry_run and len(repo.list_snapshots()) == 8
    kept_ids = {ids[7], *ids[4:7]}
    pieces = {sid: repo.snapshots.pieces(sid)[1] for sid in ids}
    kept_pieces = set().union(*(pieces[sid] for sid in kept_ids))
    # format 2: the tree pieces only forgotten snapshots reach go too (shared ones stay)
    dead_pieces = set().union(*pieces.values()) - kept_pieces
    assert dead_pieces and kept_pieces & pieces[ids[0]]  # the unchanged conda.yaml chunk...
    plan = repo.forget(keep_daily=3)
    assert [s.id for s in plan.keep] == [ids[7], *ids[4:7]]  # the other source keeps its one
    assert {s.id for s in repo.list_snapshots()} == kept_ids

    expected_data = {sha(b"model-v1")} | {sha(b"line\n" * n) for n in range(1, 5)}
    expected_garbage = expected_data | dead_pieces
    piece_bytes = sum(repo.objects.size(d) or 0 for d in dead_pieces)
    before = _stored_bytes(tmp_path / "repo")
    preview = repo.prune(dry_run=True)
    assert set(preview.removed) == expected_garbage
    assert all(repo.has_object(d) for d in expected_garbage)  # dry run deletes nothing
    report = repo.prune()
    assert set(report.removed) == expected_garbage
    sizes = [len(b"model-v1")] + [len(b"line\n" * n) for n in range(1, 5)]
    data_bytes = sum(repo.objects.stored_size(n) for n in sizes)  # encrypted: + overhead
    if packed:
        assert report.bytes_freed == before - _stored_bytes(tmp_path / "repo") > 0
    else:
        assert report.bytes_freed == data_bytes + piece_bytes
    assert all(repo.has_object(d) for d in kept_pieces)
    assert report.objects_referenced == report.objects_total - len(expected_garbage)
    assert not any(repo.has_object(d) for d in expected_garbage)
    assert repo.verify().ok
    assert repo.prune().removed == []  # nothing left to free


def test_prune_removes_orphans_of_an_interrupted_export(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    snapshot(repo, {"files/a": b"kept"})
    orphan = repo.put_bytes(b"written but never referenced")
    assert repo.prune().removed == [orphan]
    assert repo.verify().ok


def test_prune_stops_when_a_snapshot_is_unreadable(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    sid = snapshot(repo, {"files/a": b"needed"})
    path = snapshot_file(repo, sid)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(Exception, match="damaged"):
        repo.prune()
    assert repo.has_object(sha(b"needed"))
