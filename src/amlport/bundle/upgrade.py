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

``--packs`` (``packs=True``) also turns pack files on (docs/bundle-format.md, *Pack files*):

4. ``config.json`` gets the ``packs`` key first (with step 1 when the repository is in
   format 1: both in one go): from then on new runs pack their small objects, and a pack
   no index names is garbage ``prune`` deletes. The loose objects all stay readable.
5. Unless ``repack=False``, every loose object whose stored size is below
   ``packs.PACK_BELOW`` and that no sound pack holds is read, checked against its name and
   appended to a new pack (``Packer``); the packs are made durable, then the index piece
   naming them, and only then are the loose copies deleted. Killed before the index: the
   packs are garbage, the loose objects untouched; killed while deleting: an object is in
   its pack and perhaps still loose (readers look in the index first). Run again, it packs
   what is still loose. A loose object whose bytes do not check stays loose (a warning;
   ``verify`` names it).

Every write passes the write guard (``storage/guard.py``): a dry run plans and writes
nothing (not even the config), and nothing is written before the plan is made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.bundle import packs as packfiles
from amlport.bundle.config import FORMAT_MAJOR
from amlport.bundle.objects import FOLDER, digest_of_name
from amlport.bundle.packs import Packer
from amlport.bundle.repository import CONFIG, Repository
from amlport.bundle.snapshots import SHORT_ID_LENGTH
from amlport.errors import IntegrityError, UsageError
from amlport.progress import Progress
from amlport.storage.guard import WriteGuard


@dataclass
class UpgradeReport:
    location: str
    from_version: int
    to_version: int = FORMAT_MAJOR
    dry_run: bool = False
    converted: dict[str, str] = field(default_factory=dict)  # format-1 id -> format-2 id
    already: int = 0  # snapshots that were in format 2 before this run
    packs_before: bool = False  # config.json declared packs before this run
    packs: bool = False  # it declares them after it (would, in a dry run)
    repacked: int = 0  # loose objects packed (would be)
    packs_written: int = 0
    left_loose: list[str] = field(default_factory=list)  # loose objects that did not check

    def to_dict(self) -> dict[str, Any]:
        return {
            "repository": self.location,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "dry_run": self.dry_run,
            "converted": [{"from": a, "to": b} for a, b in sorted(self.converted.items())],
            "already_format_2": self.already,
            "packs_before": self.packs_before,
            "packs": self.packs,
            "repacked_objects": self.repacked,
            "packs_written": self.packs_written,
            "left_loose": list(self.left_loose),
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
        return out + self._pack_lines()

    def _pack_lines(self) -> list[str]:
        if not self.packs:
            return ["pack files: off (`amlport repo upgrade REPO --packs` turns them on)"]
        would = self.dry_run
        if self.packs_before:
            out = ["pack files: already on (config.json declares packs); nothing to turn on"]
        else:
            verb = "would turn" if would else "turned"
            out = [f"pack files: {verb} on: new backups pack objects below 512 KiB"]
        if self.repacked or not self.packs_before:
            verb = "would pack" if would else "packed"
            into = "" if would else f" into {self.packs_written} pack(s)"
            out.append(f"{verb} {self.repacked} loose object(s){into}")
        if self.left_loose:
            out.append(
                f"left {len(self.left_loose)} damaged object(s) loose (run `amlport verify`)"
            )
        return out


def upgrade(
    repo: Repository,
    *,
    dry_run: bool = False,
    progress: Progress | None = None,
    packs: bool = False,
    repack: bool = True,
    guard: WriteGuard | None = None,
) -> UpgradeReport:
    """Convert ``repo`` to the current format (see the module docstring); ``packs``: turn
    pack files on too, and (``repack``) pack the loose small objects stored so far."""
    report = UpgradeReport(repo.location, repo.config.version, dry_run=dry_run)
    report.packs_before = repo.config.packs
    report.packs = repo.config.packs or packs
    guard = guard if guard is not None else WriteGuard(dry_run=dry_run)
    repack = packs and repack
    if repack and not repo.has_key:
        raise UsageError(
            f"repository {repo.location} is encrypted: packing its loose objects needs its key "
            "(each object is checked before it is packed)",
            hint="give --key-file or $AMLPORT_REPO_KEY, or add --no-repack to only turn "
            "pack files on",
        )
    snaps = repo.snapshots
    # A dry run only reads: a shared lock (none at all where the repository is read-only to
    # this credential), so that it can be asked of an off-site copy (F, session 7).
    with repo.lock(exclusive=not dry_run):
        old_ids = snaps.format1_ids()
        roots = [i for i in snaps.ids() if snaps.format_of(i) == 2]
        mapping: dict[str, str] = {}
        for sid in roots if old_ids else ():  # (without format-1 ones: no key needed)
            origin = snaps.read_root(sid).get("upgraded_from")
            if isinstance(origin, str):
                mapping[origin] = sid
        report.already = len(roots)
        loose = _loose_small(repo) if repack else []
        if dry_run:
            report.converted = {sid: mapping.get(sid, "") for sid in old_ids}
            report.repacked = len(loose)
            return report
        guard.open()  # planned: the writes may pass
        if repo.config.version < FORMAT_MAJOR or report.packs != report.packs_before:
            config = repo.config.upgraded(packs=packs)
            guard.admit(f"{CONFIG} of repository {repo.location}")
            repo.store.write(CONFIG, config.to_bytes())  # atomic, durable: first
            repo.config = config
            snaps.version = config.version
            repo.objects.packing = config.packs
            repo.objects.forget_pack_index()
        # oldest first, so that a parent is converted before its children
        infos = sorted((snaps.info_of_format1(sid) for sid in old_ids), key=lambda i: i.created)
        for done, info in enumerate(infos, start=1):
            sid = info.id
            new = mapping.get(sid)
            if new is None:
                manifest = snaps.load_exact(sid)
                if manifest.parent is not None:
                    manifest.parent = mapping.get(manifest.parent, manifest.parent)
                guard.admit(f"snapshot {sid[:SHORT_ID_LENGTH]} in format 2")
                new = snaps.write_tree(manifest, extra={"upgraded_from": sid})
                mapping[sid] = new
            snaps.delete_format1(sid)
            report.converted[sid] = new
            if progress is not None:
                progress("upgrade", done, len(infos))
        if loose:
            _repack(repo, loose, report, guard, progress)
    return report


def _loose_small(repo: Repository) -> list[tuple[str, int]]:
    """(digest, stored size) of each loose object ``repack`` packs: below the pack
    threshold (one listing of ``objects/``); size -1 when a sound pack holds it already (a
    killed run's loose copy: deleted once the packed copy checks)."""
    objects = repo.objects
    found: list[tuple[str, int]] = []
    for name, size in objects.store.list_sizes(FOLDER):
        digest = digest_of_name(name)
        if digest is None or size >= packfiles.PACK_BELOW:
            continue
        packed = objects.packing and objects.location(digest).startswith(packfiles.FOLDER)
        found.append((digest, -1 if packed else size))  # -1: a sound pack holds it already
    return found


def _repack(
    repo: Repository,
    loose: list[tuple[str, int]],
    report: UpgradeReport,
    guard: WriteGuard,
    progress: Progress | None,
) -> None:
    """Pack the loose objects ``loose`` names: packs durable, then their index piece, then
    the loose copies deleted (see the module docstring, step 5)."""
    objects = repo.objects
    packer = Packer(objects.store.put_once)
    packed: list[str] = []
    guard.admit(f"pack files of repository {repo.location}")
    with objects.store.synced_together():  # the packs durable before their index
        for done, (digest, size) in enumerate(loose, start=1):
            try:
                if size < 0:  # packed already: its loose copy goes once the packed one checks
                    objects.stored_checked(digest)
                    packed.append(digest)
                    continue
                stored = objects.store.read(objects.key(digest), limit=size)
                packer.add(digest.split(":", 1)[1], objects.checked(digest, stored))
            except FileNotFoundError:
                continue  # gone meanwhile (nothing else writes: the lock is exclusive)
            except IntegrityError as exc:
                report.left_loose.append(digest)
                repo._warn(f"left loose, not packed: {exc.message}")
                continue
            packed.append(digest)
            if progress is not None:
                progress("pack", done, len(loose))
        packer.flush()
    plain = packer.index_plain()
    if plain is not None:
        objects.write_index_piece(plain)  # durable: from here the packed copies are read
        objects.forget_pack_index()
    report.repacked, report.packs_written = len(packed), packer.packs
    if not packed:
        return
    guard.admit(f"loose objects of repository {repo.location}")
    for digest in packed:
        objects.store.delete(objects.key(digest))
