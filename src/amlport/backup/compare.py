"""``amlport diff A B``: resolve each argument to a side, then compare.

An argument is

- ``REPO@SNAPSHOT`` — a snapshot (id or unique prefix) of a repository;
- ``REPO`` — a repository's latest snapshot: of ``--source`` when given; else, when the
  other argument is a live source, *of that source* (if the repository has one); else of the
  repository's only source (several and none named: an error listing them, sources.py);
- anything else — a live source (a workspace folder or an account URL), walked and planned the
  way the other side's snapshot was made (its ``select``/``include``, and the backup
  catch-all), or as a whole-workspace backup when both sides are live.

A live side compared with a snapshot uses that repository's incremental index for the live
source, so unchanged blobs are recognised from the listing without being read.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from amlport.backup.diff import DiffReport, diff_sides
from amlport.backup.sides import LiveSide, SnapshotSide, plan_live
from amlport.bundle import Repository
from amlport.bundle.repository import CONFIG
from amlport.bundle.sources import SourceRef, parse_source, select_snapshot
from amlport.errors import UsageError
from amlport.model.manifest import source_key
from amlport.storage.base import Source
from amlport.storage.opener import is_url

OpenSource = Callable[[str], Source]


@dataclass(frozen=True)
class Spec:
    text: str
    repo: Path | None = None
    snapshot: str | None = None  # None: the latest
    live: str | None = None


def is_repository(path: Path) -> bool:
    return (path / CONFIG).is_file()


def parse_spec(text: str) -> Spec:
    if not text:
        raise UsageError("empty diff argument", hint="give REPO, REPO@SNAPSHOT or a source")
    if is_url(text):
        return Spec(text, live=text)
    head, sep, tail = text.rpartition("@")
    if sep and head and is_repository(Path(head)):
        if not tail:
            raise UsageError(f"{text!r} names no snapshot after '@'", hint="use REPO@<id>")
        return Spec(text, repo=Path(head), snapshot=tail)
    if is_repository(Path(text)):
        return Spec(text, repo=Path(text))
    if not Path(text).is_dir():
        raise UsageError(
            f"{text!r} is neither a repository, REPO@SNAPSHOT, a workspace folder nor a URL",
            hint="give a repository folder (with config.json), REPO@<snapshot id>, a workspace "
            "storage copy or an account URL",
        )
    return Spec(text, live=text)


def diff_specs(
    a_text: str, b_text: str, open_source: OpenSource, *, source_name: str | None = None
) -> DiffReport:
    """``source_name`` (``--source``): whose latest snapshot a bare REPO means."""
    a, b = parse_spec(a_text), parse_spec(b_text)
    named = parse_source(source_name)
    with ExitStack() as stack:
        sources = {
            id(s): stack.enter_context(open_source(s.live)) for s in (a, b) if s.live is not None
        }
        live_keys = [source_key(src.descriptor.to_dict()) for src in sources.values()]
        snaps = {id(s): _snapshot_side(s, live_keys, named) for s in (a, b) if s.repo is not None}
        sides: list[SnapshotSide | LiveSide] = []
        for spec, other in ((a, b), (b, a)):
            if spec.repo is not None:
                sides.append(snaps[id(spec)])
                continue
            source = sources[id(spec)]
            peer = snaps.get(id(other))
            plan = plan_live(source, peer.selection if peer is not None else None)
            index, peer_key, hasher = None, None, None
            if peer is not None:
                index = peer.repo.source_index(source_key(source.descriptor.to_dict()))
                peer_key = peer.source_key
                hasher = peer.repo.objects.codec.hasher  # keyed in an encrypted repository
            sides.append(LiveSide(plan, source.describe(), index, peer_key=peer_key, hasher=hasher))
        return diff_sides(sides[0], sides[1])


def _snapshot_side(spec: Spec, live_keys: list[str], named: SourceRef | None) -> SnapshotSide:
    """REPO@ID, or REPO: the latest of ``named`` (``--source``), else of the live side's
    source when the repository has one, else of the repository's only source."""
    assert spec.repo is not None
    repo = Repository.open(spec.repo)
    if spec.snapshot is not None:  # an id says which snapshot; --source is for bare REPOs
        named = None
    elif named is None:
        live = [i for i in repo.list_snapshots() if i.source_key in live_keys]
        if live:
            named = SourceRef(live[-1].source_key, live[-1].source_key)
    manifest = select_snapshot(repo, spec.snapshot, named)
    return SnapshotSide(repo, manifest, label=f"{spec.repo}@{str(manifest.snapshot_id)[:16]}")
