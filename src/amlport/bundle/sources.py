"""Which workspace a snapshot is of, and which snapshot ``latest`` means.

One repository may hold the backups of several workspaces (a team's dev, qa and prod). Every
snapshot records its source (``Manifest.source``: account, workspace; ``source_key`` adds
where its data lives). ``latest`` is the newest snapshot *of one source*: with several sources
in the repository and none named (``--source ACCOUNT[/WORKSPACE]``, or the ``source:`` a map
file from ``map init`` records), it is an error that lists them, as restic asks for
``--host``. Restoring one workspace's snapshot with another's map is refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from amlport.bundle.snapshots import SHORT_ID_LENGTH, SnapshotInfo
from amlport.errors import UsageError
from amlport.model.loadplan import WHOLE, LoadPlan
from amlport.model.manifest import Manifest, source_key

if TYPE_CHECKING:  # bundle/__init__ imports this module's importers
    from amlport.bundle.repository import Repository

LATEST = "latest"
SOURCE_HINT = (
    "name one with --source ACCOUNT[/WORKSPACE] (or the source key `amlport snapshots` lists)"
)
_MAX_LISTED = 20


@dataclass(frozen=True)
class SourceRef:
    """What ``--source`` (or a map's ``source:``) names: ``ACCOUNT[/WORKSPACE]`` or a key."""

    text: str
    account: str
    workspace: str | None = None

    @classmethod
    def parse(cls, text: str, *, where: str = "--source") -> SourceRef:
        account, sep, workspace = text.strip().partition("/")
        if not account or (sep and not workspace):
            raise UsageError(
                f"{where} {text!r} names no source", hint="give ACCOUNT or ACCOUNT/WORKSPACE"
            )
        return cls(text.strip(), account, workspace if sep else None)

    def matches(self, account: str | None, workspace: str | None, key: str) -> bool:
        """Same account (and workspace, when named; both case-insensitive, as in Azure),
        or the source key itself."""
        if self.text == key:
            return True
        if account is None or account.casefold() != self.account.casefold():
            return False
        return self.workspace is None or (workspace or "").casefold() == self.workspace.casefold()

    def matches_info(self, info: SnapshotInfo) -> bool:
        return self.matches(info.account, info.workspace, info.source_key)

    def matches_source(self, source: Mapping[str, Any]) -> bool:
        account, workspace = source.get("account"), source.get("workspace")
        return self.matches(
            None if account is None else str(account),
            None if workspace is None else str(workspace),
            source_key(source),
        )


def parse_source(text: str | None, *, where: str = "--source") -> SourceRef | None:
    return None if text is None else SourceRef.parse(text, where=where)


def label(account: str | None, workspace: str | None) -> str:
    """``ACCOUNT/WORKSPACE`` as ``--source`` takes it (``ACCOUNT`` without a workspace)."""
    return f"{account or '-'}/{workspace}" if workspace else f"{account or '-'}"


def source_text(source: Mapping[str, Any]) -> str:
    """What ``--source`` (and a map's ``source:``) should say to name this source exactly:
    ``ACCOUNT/WORKSPACE``, or the source key when the names cannot say it."""
    account, workspace = source.get("account"), source.get("workspace")
    if not account or "/" in str(account) or any(ord(c) < 32 for c in f"{account}{workspace}"):
        return source_key(source)
    return label(str(account), None if workspace is None else str(workspace))


def sources_listed(infos: list[SnapshotInfo]) -> str:
    """Each source once, newest snapshot last: ``'acct/ws' (key, N snapshot(s))``."""
    seen: dict[str, tuple[SnapshotInfo, int]] = {}
    for info in infos:
        count = seen[info.source_key][1] + 1 if info.source_key in seen else 1
        seen[info.source_key] = (info, count)
    shown = [
        f"{label(i.account, i.workspace)!r} (key {key}, {n} snapshot(s))"
        for key, (i, n) in list(seen.items())[:_MAX_LISTED]
    ]
    more = len(seen) - len(shown)
    return "; ".join(shown) + (f"; … {more} more" if more > 0 else "")


def of_source(infos: list[SnapshotInfo], source: SourceRef | None) -> list[SnapshotInfo]:
    """The snapshots of one source (all of them when ``source`` is None)."""
    return infos if source is None else [i for i in infos if source.matches_info(i)]


def choose_latest(
    infos: list[SnapshotInfo], source: SourceRef | None, *, where: str
) -> SnapshotInfo:
    """The newest snapshot (``infos`` oldest first) of ``source``, or of the only source.

    UsageError when there is none, and when ``source`` is None but the repository holds
    snapshots of more than one source (``latest`` would pick whichever ran last)."""
    if not infos:
        raise UsageError(f"repository {where} has no snapshot", hint="run 'amlport backup' first")
    mine = of_source(infos, source)
    if source is not None and not mine:
        raise UsageError(
            f"repository {where} has no snapshot of source {source.text!r}; "
            f"it holds {sources_listed(infos)}",
            hint=SOURCE_HINT,
        )
    if len({i.source_key for i in mine}) > 1:
        named = f"match {source.text!r}" if source is not None else "are in it"
        raise UsageError(
            f"'latest' is ambiguous in repository {where}: snapshots of several sources "
            f"{named}: {sources_listed(mine)}",
            hint=SOURCE_HINT,
        )
    return mine[-1]


def check_source(manifest: Manifest, source: SourceRef | None, *, given_by: str) -> None:
    """UsageError when the snapshot is not of ``source`` (named by ``given_by``)."""
    if source is None or source.matches_source(manifest.source):
        return
    sid = str(manifest.snapshot_id)[:SHORT_ID_LENGTH]
    actual = label(manifest.source.get("account"), manifest.source.get("workspace"))
    raise UsageError(
        f"snapshot {sid} is of source {actual!r} (key {manifest.source_key}), "
        f"not {source.text!r} as {given_by} says",
        hint="restore a snapshot of that source, or use the map file written for this one "
        "(`amlport map init REPO --snapshot ID`)",
    )


def check_live_source(source: Mapping[str, Any], mapped: SourceRef | None, *, where: str) -> None:
    """UsageError when a map's ``source:`` (``mapped``) names another workspace than the live
    source ``promote`` reads (``source``: its descriptor, ``where``: how the user named it):
    the map made for one workspace is never applied to another's files."""
    if mapped is None or mapped.matches_source(source):
        return
    actual = label(source.get("account"), source.get("workspace"))
    raise UsageError(
        f"the map file's 'source:' names {mapped.text!r}, but {where} is {actual!r} "
        f"(key {source_key(source)}); nothing was written",
        hint="use the map file written for this workspace (its 'source:' names it), or fix "
        "'source:'",
    )


def select_snapshot(
    repo: Repository,
    snapshot: str | None,
    source: SourceRef | None = None,
    mapped: SourceRef | None = None,
    plan: LoadPlan = WHOLE,
) -> Manifest:
    """``snapshot`` (an id or prefix; None or ``latest``: the newest of the source named by
    ``source``, else by ``mapped``, else of the only source), refused unless it is of both
    ``source`` (``--source``) and ``mapped`` (the map file's ``source:``). ``plan``: what the
    read keeps and the strings it shares (``diff``: both snapshots share one table)."""
    if snapshot is None or snapshot == LATEST:
        info = choose_latest(repo.list_snapshots(), source or mapped, where=repo.location)
        manifest = repo.snapshots.load_exact(info.id, plan)
    else:
        manifest = repo.snapshots.load_exact(repo.snapshots.resolve(snapshot), plan)
    check_source(manifest, source, given_by="--source")
    check_source(manifest, mapped, given_by="the map file's 'source:'")
    return manifest
