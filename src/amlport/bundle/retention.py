"""Which snapshots ``forget`` keeps: restic's policy, pure and separately testable.

Snapshots are grouped by source; in each group, newest first, every rule keeps the newest
snapshot of each of its last N buckets that hold a snapshot (``keep_daily=3`` keeps the newest
snapshot of each of the three most recent days that have one). A snapshot is kept when any
rule keeps it. Buckets are UTC calendar days, ISO weeks and calendar months.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

from amlport.bundle.snapshots import SnapshotInfo
from amlport.errors import UsageError

Bucket = Callable[[SnapshotInfo], Hashable]


@dataclass(frozen=True)
class RetentionPolicy:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("keep_last", "keep_daily", "keep_weekly", "keep_monthly"):
            if getattr(self, name) < 0:
                raise UsageError(f"--{name.replace('_', '-')} must be 0 or more")
        if not (self.rules() or self.keep_tags):
            # restic does the same: an empty policy would forget everything.
            raise UsageError(
                "no retention policy given: nothing would be kept",
                hint="give at least one of --keep-last/--keep-daily/--keep-weekly/"
                "--keep-monthly/--keep-tag",
            )

    def rules(self) -> list[tuple[str, int, Bucket]]:
        table: list[tuple[str, int, Bucket]] = [
            ("last", self.keep_last, lambda s: s.id),  # every snapshot is its own bucket
            ("daily", self.keep_daily, lambda s: s.created.date()),
            ("weekly", self.keep_weekly, lambda s: tuple(s.created.isocalendar())[:2]),
            ("monthly", self.keep_monthly, lambda s: (s.created.year, s.created.month)),
        ]
        return [rule for rule in table if rule[1] > 0]


@dataclass
class ForgetPlan:
    """What forget keeps and removes; ``reasons`` says which rules keep each kept snapshot."""

    policy: RetentionPolicy
    keep: list[SnapshotInfo] = field(default_factory=list)
    remove: list[SnapshotInfo] = field(default_factory=list)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    dry_run: bool = True
    removed: bool = False  # True once the snapshot files are gone

    def to_dict(self) -> dict[str, object]:
        return {
            "dry_run": self.dry_run,
            "keep": [{"id": s.id, "reasons": self.reasons.get(s.id, [])} for s in self.keep],
            "remove": [s.id for s in self.remove],
        }


def plan_forget(snapshots: Sequence[SnapshotInfo], policy: RetentionPolicy) -> ForgetPlan:
    plan = ForgetPlan(policy=policy)
    groups: dict[str, list[SnapshotInfo]] = {}
    for snap in snapshots:
        groups.setdefault(snap.source_key, []).append(snap)
    for key in sorted(groups):
        newest_first = sorted(groups[key], key=lambda s: (s.created, s.id), reverse=True)
        _apply(newest_first, policy, plan.reasons)
    for snap in sorted(snapshots, key=lambda s: (s.created, s.id)):
        (plan.keep if snap.id in plan.reasons else plan.remove).append(snap)
    return plan


def _apply(
    newest_first: list[SnapshotInfo], policy: RetentionPolicy, reasons: dict[str, list[str]]
) -> None:
    for name, count, bucket in policy.rules():
        left, last = count, None
        for snap in newest_first:
            here = bucket(snap)
            if left > 0 and here != last:
                reasons.setdefault(snap.id, []).append(name)
                left -= 1
                last = here
    wanted = set(policy.keep_tags)
    for snap in newest_first:
        if wanted.intersection(snap.tags):
            reasons.setdefault(snap.id, []).append("tag")
