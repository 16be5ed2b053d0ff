"""``repo upgrade``: convert a format-1 repository to format 2 in place, crash-safely.

Order, each step atomic, so that a run killed anywhere leaves a repository every command of
this amlport reads, and a second run finishes the job:

1. ``config.json`` is replaced by its format-2 form first: from then on an older amlport
   refuses the repository (it names the format) instead of missing snapshots, and new
   snapshots are written in format 2.
2. Each format-1 snapshot, oldest first, is written again in format 2 (its pieces, then its
   root, which records ``upgraded_from``: the format-1 id), and only then is its format-1
   file removed. Data objects are not touched: both formats name them alike.
3. A snapshot killed between its root and the removal of its file exists in both forms;
   listings show it once (the root's ``upgraded_from`` hides the file) and the next run
   removes the file. Its ``parent`` is mapped to the parent's new id, so the chain of a
   source stays whole.

The conversion reads every manifest with the same checks as any reader: a damaged snapshot
stops the upgrade (exit 4) before anything of it is written, naming it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.bundle.config import FORMAT_MAJOR
from amlport.bundle.repository import CONFIG, Repository
from amlport.bundle.snapshots import SHORT_ID_LENGTH
from amlport.progress import Progress


@dataclass
class UpgradeReport:
    location: str
    from_version: int
    to_version: int = FORMAT_MAJOR
    dry_run: bool = False
    converted: dict[str, str] = field(default_factory=dict)  # format-1 id -> format-2 id
    already: int = 0  # snapshots that were in format 2 before this run

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.location,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "dry_run": self.dry_run,
            "converted": [{"from": a, "to": b} for a, b in sorted(self.converted.items())],
            "already_format_2": self.already,
        }

    def lines(self) -> list[str]:
        verb = "would convert" if self.dry_run else "converted"
        out = [
            f"repository {self.location}: format {self.from_version} -> {self.to_version}",
            f"{verb} {len(self.converted)} snapshot(s); {self.already} already in format 2",
        ]
        out += [
            f"  {a[:SHORT_ID_LENGTH]} -> {b[:SHORT_ID_LENGTH] if b else '(new id)'}"
            for a, b in sorted(self.converted.items())
        ]
        return out


def upgrade(
    repo: Repository, *, dry_run: bool = False, progress: Progress | None = None
) -> UpgradeReport:
    """Convert ``repo`` to the current format (see the module docstring)."""
    report = UpgradeReport(repo.location, repo.config.version, dry_run=dry_run)
    snaps = repo.snapshots
    with repo.lock(exclusive=True):
        old_ids = snaps.format1_ids()
        roots = [i for i in snaps.ids() if snaps.format_of(i) == 2]
        mapping: dict[str, str] = {}
        for sid in roots:
            origin = snaps.read_root(sid).get("upgraded_from")
            if isinstance(origin, str):
                mapping[origin] = sid
        report.already = len(roots)
        if dry_run:
            report.converted = {sid: mapping.get(sid, "") for sid in old_ids}
            return report
        if repo.config.version < FORMAT_MAJOR:
            config = repo.config.upgraded()
            repo.store.write(CONFIG, config.to_bytes())
            repo.config = config
            snaps.version = config.version
        # oldest first, so that a parent is converted before its children
        infos = sorted((snaps.info_of_format1(sid) for sid in old_ids), key=lambda i: i.created)
        for done, info in enumerate(infos, start=1):
            sid = info.id
            new = mapping.get(sid)
            if new is None:
                manifest = snaps.load_exact(sid)
                if manifest.parent is not None:
                    manifest.parent = mapping.get(manifest.parent, manifest.parent)
                new = snaps.write_tree(manifest, extra={"upgraded_from": sid})
                mapping[sid] = new
            snaps.delete_format1(sid)
            report.converted[sid] = new
            if progress is not None:
                progress("upgrade", done, len(infos))
    return report
