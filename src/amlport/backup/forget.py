"""``amlport forget``: apply a retention policy, then (``--prune``) free unreferenced objects.

Forget and prune run under one exclusive lock, so no backup can add a snapshot between the
decision and the deletion. ``--dry-run`` takes no lock and changes nothing; with ``--prune``
it also reports what prune would free once the forgotten snapshots are gone (prune itself,
not dry, deletes exactly the objects no remaining snapshot references).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlport.backup.locking import locked
from amlport.bundle import ForgetPlan, PruneReport, Repository, RetentionPolicy
from amlport.storage.opener import StorageAuth


@dataclass
class ForgetRequest:
    keep_last: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_tags: tuple[str, ...] = ()
    dry_run: bool = False
    prune: bool = False
    retry_lock: float = 0.0

    def policy(self) -> RetentionPolicy:
        """The policy (UsageError when empty: forget would keep nothing)."""
        return RetentionPolicy(
            self.keep_last, self.keep_daily, self.keep_weekly, self.keep_monthly, self.keep_tags
        )


@dataclass
class ForgetReport:
    plan: ForgetPlan
    prune: PruneReport | None

    def to_dict(self) -> dict[str, Any]:
        plan = self.plan.to_dict()
        plan["keep"] = [
            {"id": s.id, "created": s.created.isoformat(), "tags": list(s.tags),
             "reasons": self.plan.reasons.get(s.id, [])}
            for s in self.plan.keep
        ]  # fmt: skip
        plan["remove"] = [
            {"id": s.id, "created": s.created.isoformat(), "tags": list(s.tags)}
            for s in self.plan.remove
        ]
        plan["prune"] = self.prune.to_dict() if self.prune else None
        return plan

    def lines(self) -> list[str]:
        verb = "would remove" if self.plan.dry_run else "removed"
        out = [f"keep {len(self.plan.keep)} snapshot(s), {verb} {len(self.plan.remove)}"]
        for s in self.plan.keep:
            why = ", ".join(self.plan.reasons.get(s.id, []))
            out.append(f"  keep   {s.short_id}  {s.created.isoformat()}  ({why})")
        out += [f"  forget {s.short_id}  {s.created.isoformat()}" for s in self.plan.remove]
        if self.prune is not None:
            p = self.prune
            verb = "would delete" if p.dry_run else "deleted"
            out.append(
                f"prune: {verb} {p.objects_removed} of {p.objects_total} object(s), "
                f"{p.bytes_freed:,} bytes; {p.objects_referenced} still referenced by "
                f"{p.snapshots} snapshot(s)"
            )
            out += [f"prune: {line}" for line in p.pack_lines()]
        return out


def run_forget(
    repo_path: str | Path, request: ForgetRequest, *, repo_auth: StorageAuth | None = None
) -> ForgetReport:
    policy = request.policy()  # refuse an empty policy before touching anything
    with Repository.open(repo_path, auth=repo_auth) as repo:
        return _run(repo, policy, request)


def _run(repo: Repository, policy: RetentionPolicy, request: ForgetRequest) -> ForgetReport:
    if request.dry_run:
        plan = _forget(repo, policy, dry_run=True)
        return ForgetReport(plan, estimate_prune(repo, plan) if request.prune else None)
    with locked(repo, exclusive=True, wait=request.retry_lock):
        plan = _forget(repo, policy, dry_run=False)
        return ForgetReport(plan, repo.prune() if request.prune else None)


def _forget(repo: Repository, policy: RetentionPolicy, *, dry_run: bool) -> ForgetPlan:
    return repo.forget(
        keep_last=policy.keep_last,
        keep_daily=policy.keep_daily,
        keep_weekly=policy.keep_weekly,
        keep_monthly=policy.keep_monthly,
        keep_tags=policy.keep_tags,
        dry_run=dry_run,
    )


def estimate_prune(repo: Repository, plan: ForgetPlan) -> PruneReport:
    """What prune would do once ``plan.remove`` is gone (reads only): prune's own dry run
    over the kept snapshots, so the estimate names the damaged packs and unreadable index
    pieces a real prune would drop or keep, and counts bytes as it does."""
    return repo.prune(dry_run=True, among=[info.id for info in plan.keep])
