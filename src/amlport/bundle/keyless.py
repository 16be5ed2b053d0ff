"""``verify`` of an encrypted repository opened without its key (docs/bundle-format.md).

Without the key nothing can be decrypted, so neither the snapshots' contents nor the GCM
tags can be checked, nor which objects a snapshot references (its root and pieces are
sealed). What is checked, reading only the first 35 bytes of each stored object:

- every wrapped key in ``keys/`` is one amlport wrote (format, types, bounded KDF);
- every snapshot is a format-2 root whose header says it is sealed metadata;
- every object in ``objects/`` has a sealed envelope header (magic, version, codec, flag) and
  a stored size that some plain size gives for its kind (a data object shorter than its
  header, salt and one segment, or whose last segment is shorter than a nonce and a tag,
  is caught);
- in a repository with pack files, every index piece has a sealed metadata header and every
  pack starts with a sealed data header (which objects a pack holds, and where, is sealed).

Everything else needs the key (``verify --key-file``): a flipped byte inside a segment (the
GCM tag), a swapped or replayed object (the name bound in the final segment), an object cut
at a segment boundary or by a few bytes (a shorter, valid-looking layout), which objects a
snapshot references and whether they are all present.
"""

from __future__ import annotations

from amlport.bundle import crypto, envelope, keys, packs
from amlport.bundle.objects import FOLDER, ObjectStore, digest_of_name
from amlport.bundle.snapshots import SHORT_ID_LENGTH, SnapshotStore
from amlport.bundle.store import RepoStore
from amlport.bundle.verification import (
    CORRUPT_OBJECT,
    CORRUPT_SNAPSHOT,
    VerifyProblem,
    VerifyReport,
)
from amlport.errors import IntegrityError
from amlport.progress import Progress

HEAD = envelope.HEADER_SIZE + crypto.SALT_SIZE


def keyless_verify(
    store: RepoStore,
    objects: ObjectStore,
    snapshots: SnapshotStore,
    progress: Progress | None = None,
) -> VerifyReport:
    report = VerifyReport()
    try:
        if not keys.list_keys(store):
            raise IntegrityError("keys/ holds no wrapped key: nothing can open this repository")
    except IntegrityError as exc:
        report.problems.append(VerifyProblem(CORRUPT_OBJECT, exc.message))
    for sid in snapshots.ids():
        report.snapshots.append(sid)
        where = f"snapshot {sid[:SHORT_ID_LENGTH]}"
        if snapshots.format_of(sid) != 2:
            problem: str | None = f"{where}: a format-1 manifest, in an encrypted repository"
        else:
            problem = _check(store, snapshots.root_key(sid), meta=True, where=where, report=report)
        if problem is not None:
            report.problems.append(VerifyProblem(CORRUPT_SNAPSHOT, problem, snapshot_id=sid))
    listed = [  # loose objects only: without the key the pack index cannot be read
        (digest, size)
        for name, size in store.list_sizes(FOLDER)
        if (digest := digest_of_name(name)) is not None
    ]
    if objects.packing:
        _check_packs(store, objects, report)
    for done, (digest, size) in enumerate(listed, start=1):
        report.objects_checked += 1
        problem = _check(store, objects.key(digest), meta=None, where=f"object {digest}",
                         report=report, size=size)  # fmt: skip
        if problem is not None:
            report.problems.append(VerifyProblem(CORRUPT_OBJECT, problem, digest=digest))
        if progress is not None:
            progress("verify", done, len(listed))
    return report


def _check_packs(store: RepoStore, objects: ObjectStore, report: VerifyReport) -> None:
    for name, size in store.list_sizes(packs.INDEX_FOLDER):
        key = packs.index_key(name)
        problem = _check(store, key, meta=True, where=key, report=report, size=size)
        if problem is not None:
            report.problems.append(VerifyProblem(CORRUPT_OBJECT, problem))
    for pack, _ in objects.iter_pack_keys():
        key = packs.pack_key(pack)
        try:
            with store.open(key) as fh:
                head = fh.read(HEAD)
        except (FileNotFoundError, IntegrityError) as exc:
            report.problems.append(VerifyProblem(CORRUPT_OBJECT, f"{key}: {exc}"))
            continue
        report.packs_checked += 1
        report.bytes_checked += len(head)
        try:
            header = envelope.parse_header(head, where=key)
        except IntegrityError as exc:
            report.problems.append(VerifyProblem(CORRUPT_OBJECT, exc.message))
            continue
        if not header.sealed or len(head) < HEAD:
            report.problems.append(VerifyProblem(CORRUPT_OBJECT, f"{key}: not sealed objects"))


def _check(
    store: RepoStore,
    key: str,
    *,
    meta: bool | None,
    where: str,
    report: VerifyReport,
    size: int | None = None,
) -> str | None:
    try:
        with store.open(key) as fh:
            head = fh.read(HEAD)
    except FileNotFoundError:
        return f"{where}: removed while being checked"
    except IntegrityError as exc:
        return exc.message
    size = store.size(key) if size is None else size
    if size is None:
        return f"{where}: removed while being checked"
    report.bytes_checked += len(head)
    return crypto.check_layout(head, size, meta=meta, where=where)
