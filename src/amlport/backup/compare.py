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
from typing import Any

from amlport.backup.diff import DiffReport, Side, diff_sides
from amlport.backup.facts import AuditFact, snapshot_facts
from amlport.backup.sides import LiveSide, SnapshotSide, plan_live
from amlport.bundle import Repository
from amlport.bundle.fsspec_store import is_fsspec
from amlport.bundle.location import open_store
from amlport.bundle.reference import parse_reference
from amlport.bundle.repository import CONFIG
from amlport.bundle.sources import SourceRef, parse_source, select_snapshot
from amlport.errors import AmlportError, UsageError
from amlport.model.loadplan import LoadPlan
from amlport.model.manifest import AssetEntry, source_key
from amlport.storage.azure_location import parse_location
from amlport.storage.base import Source
from amlport.storage.opener import StorageAuth, is_url

OpenSource = Callable[[str], Source]
RepoAuth = Callable[[str], StorageAuth | None]  # a repository location -> its credential


@dataclass(frozen=True)
class Spec:
    text: str
    repo: Path | str | None = None  # a folder (Path) or a container URL (str)
    snapshot: str | None = None  # None: the latest
    live: str | None = None
    auth: StorageAuth | None = None  # the repository's credential


def is_repository(path: Path) -> bool:
    return (path / CONFIG).is_file()


def parse_spec(
    text: str, repo_auth: RepoAuth | None = None, *, where: str = "diff argument"
) -> Spec:
    """One side: ``REPO[@SNAPSHOT]`` (parsed as every command parses a repository,
    bundle/reference.py) or a live SOURCE. A URL with ``@SNAPSHOT`` is a repository; a URL
    without one is a repository when its container (and prefix) holds an amlport
    ``config.json`` (asked with ``repo_auth``'s credential), else a live source."""
    if not text:
        raise UsageError("empty diff argument", hint="give REPO, REPO@SNAPSHOT or a source")
    if is_account_url(text):  # no container: a live workspace, never a repository
        return Spec(text, live=text)
    ref = parse_reference(text, where=where)
    auth = repo_auth(ref.location) if repo_auth is not None else None
    if ref.remote:
        if ref.snapshot is not None or _remote_repository(ref.location, auth):
            return Spec(text, repo=ref.location, snapshot=ref.snapshot, auth=auth)
        return Spec(text, live=text)
    if is_repository(Path(ref.location)):
        return Spec(text, repo=Path(ref.location), snapshot=ref.snapshot, auth=auth)
    if ref.snapshot is not None and not Path(text).is_dir():
        raise UsageError(
            f"{ref.location!r} is not an amlport repository (no {CONFIG}), so "
            f"'@{ref.snapshot}' names no snapshot",
            hint="give the folder an export or backup created",
        )
    if not Path(text).is_dir():
        raise UsageError(
            f"{text!r} is neither a repository, REPO@SNAPSHOT, a workspace folder nor a URL",
            hint="give a repository folder (with config.json), REPO@<snapshot id>, a workspace "
            "storage copy or an account URL",
        )
    return Spec(text, live=text)


def is_account_url(text: str) -> bool:
    """An https/http storage URL naming an account and no container (``diff``, ``map init``)."""
    if is_fsspec(text):
        return False  # a repository on an fsspec filesystem (bundle/fsspec_store.py)
    if text.lower().startswith(("az://", "abfs://", "abfss://")) or not is_url(text):
        return False
    return parse_location(text).container is None


def _remote_repository(location: str, auth: StorageAuth | None) -> bool:
    """Does the container URL hold a repository? False for an account URL (no container),
    and when the container cannot be read with the repository's credential: the URL is then
    opened as a live source, with the source's credential."""
    try:
        store = open_store(location, auth)
    except AmlportError:
        return False
    try:
        return store.exists(CONFIG)
    except Exception:  # no access, no container: not a repository this credential reads
        return False
    finally:
        store.close()


def diff_specs(
    a_text: str,
    b_text: str,
    open_source: OpenSource,
    *,
    source_name: str | None = None,
    repo_auth: RepoAuth | None = None,
    mapped: Callable[[Side, Side], tuple[Side, Side]] | None = None,
) -> DiffReport:
    """``source_name`` (``--source``): whose latest snapshot a bare REPO means;
    ``repo_auth``: the credential of a repository given as a URL (``--repo-*``)."""
    a, b = parse_spec(a_text, repo_auth), parse_spec(b_text, repo_auth)
    named = parse_source(source_name)
    with ExitStack() as stack:
        sources = {
            id(s): stack.enter_context(open_source(s.live)) for s in (a, b) if s.live is not None
        }
        live_keys = [source_key(src.descriptor.to_dict()) for src in sources.values()]
        # In phases (B, session 10; docs/design/0003-scale.md): first each snapshot's audit
        # facts, walking its files and redaction records while nothing else is held (the
        # walks came last, on top of what the comparison had left, and were the peak);
        # then both snapshots are read for the comparison, sharing one string per path and
        # per digest (most of both are equal), without their rewrite and redaction records,
        # and with only what a comparison reads of each asset (``compared_asset``).
        shared = LoadPlan.only("files", "lineage", strings={}, digests={})
        walked = [_walked(s, live_keys, named) for s in (a, b) if s.repo is not None]
        snaps = {
            id(s): _snapshot_side(s, repo, snapshot_id, facts, shared)
            for s, repo, snapshot_id, facts in walked
        }
        del shared  # the tables: the loaded snapshots hold the strings
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
        if mapped is not None:  # --map: A as it would be in B (backup/mapped.py)
            return diff_sides(*mapped(sides[0], sides[1]), consume=True)
        return diff_sides(sides[0], sides[1], consume=True)


#: the attributes of an asset a comparison reads (``mapped.own_records``)
COMPARED_ATTRS = ("unclassified",)


def compared_asset(asset: AssetEntry, strings: dict[str, str]) -> AssetEntry:
    """What a comparison reads of an asset (``diff._sections``, ``mapped.py``): its kind,
    name, id, files and v2 YAML, and of its attributes only ``COMPARED_ATTRS``; its strings
    shared through ``strings`` (the paths are the files' own, the id a lineage node's). A
    100k-blob snapshot's assets held 42 MB, mostly attributes no comparison reads, and the
    second snapshot was read beside the first (B, session 10)."""
    share = strings.setdefault
    return AssetEntry(
        kind=share(asset.kind, asset.kind),
        name=share(asset.name, asset.name),
        id=share(asset.id, asset.id),
        files=[share(p, p) for p in asset.files],
        v2_yaml=None if asset.v2_yaml is None else share(asset.v2_yaml, asset.v2_yaml),
        portable=asset.portable,
        attrs={k: asset.attrs[k] for k in COMPARED_ATTRS if k in asset.attrs},
    )


def _walked(
    spec: Spec, live_keys: list[str], named: SourceRef | None
) -> tuple[Spec, Repository, str, list[AuditFact]]:
    """REPO@ID, or REPO: the latest of ``named`` (``--source``), else of the live side's
    source when the repository has one, else of the repository's only source; with its
    id and its audit facts (``facts.snapshot_facts``: the walk reads its files and
    redaction records, and lets go of them)."""
    assert spec.repo is not None
    repo = Repository.open(spec.repo, auth=spec.auth)
    if spec.snapshot is not None:  # an id says which snapshot; --source is for bare REPOs
        named = None
    elif named is None:
        live = [i for i in repo.list_snapshots() if i.source_key in live_keys]
        if live:
            named = SourceRef(live[-1].source_key, live[-1].source_key)
    keep = LoadPlan.only("files", "redactions")
    read = [select_snapshot(repo, spec.snapshot, named, plan=keep)]
    snapshot_id = str(read[0].snapshot_id)
    # Passed on alone: the walk lets go of the files once it has their names
    return spec, repo, snapshot_id, snapshot_facts(repo, read.pop())


def _snapshot_side(
    spec: Spec, repo: Repository, snapshot_id: str, facts: list[AuditFact], plan: LoadPlan
) -> SnapshotSide:
    """The snapshot ``_walked`` chose, read for the comparison (``plan``), its assets as
    ``compared_asset`` keeps them."""
    assets: list[AssetEntry] = []
    strings = plan.strings if plan.strings is not None else {}

    def take(key: str, entry: Any) -> None:
        if key == "assets":
            assets.append(compared_asset(entry, strings))

    manifest = repo.snapshots.load_exact(snapshot_id, plan, on_entry=take)
    manifest.assets = assets
    where = spec.repo if isinstance(spec.repo, Path) else repo.location  # a URL: no SAS
    label = f"{where}@{snapshot_id[:16]}"
    return SnapshotSide(repo, manifest, label=label, partial=True, _facts=facts)
