"""Storage restore: every ``files/<datastore>/<path>`` of a snapshot written to the mapped
container of the target at the same path, re-bound to the target where the file binds to
storage (pointer JSON, MLmodel, YAML, logs), byte for byte otherwise.

Whole assets: a file blocked (an unmapped datastore, a pointer to one, an unmappable URI)
blocks every other file of its asset, so a model's ``Trained_model`` pointer is never written
without the folder it points to (a catch-all group of unclassified blobs is not one asset).
A name the target cannot hold (``Target.unholdable``: a local folder and a 300-byte segment,
or ``x/model`` beside ``x/model/weights.bin``) is a ``failed`` item; the rest is written.

Idempotency: every written blob carries its SHA-256 (``amlport_sha256``); a blob already there
with the same digest is a ``skip``. Nothing is written by ``plan``; ``apply`` writes only
through the ``GuardedTarget`` it was given (storage/guard.py).
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from amlport.errors import IntegrityError, ParseError
from amlport.importers.base import ImportAction, ImportContext
from amlport.model.manifest import FileEntry, Manifest
from amlport.model.pointer import looks_like_pointer
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Change, Unmappable
from amlport.safeload import load_json
from amlport.storage.guard import GuardedTarget
from amlport.storage.target import DIGEST_METADATA, TargetConflict

MAX_REWRITE_BYTES = 64 * 1024 * 1024
FILES_PREFIX = "files/"


class FileFacts(Mapping[str, Any]):
    """What the plan keeps of one file (``ImportAction.details``): where it lands, the
    digest it will have, its object, whether its bytes are rewritten (``apply`` rewrites
    them again) and its rewrites. One small object per file, not a dict and not the file's
    bytes: a 100k-file plan is held whole until every file is written (docs/design/0007,
    "Peak memory of restore, ls and diff at 100k (C, session 7)"). Read as a mapping:
    ``container``, ``name`` (in the container), ``digest``, ``object``, ``rewritten``,
    ``size``, ``rewrites``. The name is not kept: it is the end of the file's bundle path
    (``subject``, from ``skip`` on), made when asked (C, session 8)."""

    __slots__ = ("container", "digest", "object", "rewrites", "rewritten", "size", "skip",
                 "subject")  # fmt: skip
    KEYS = ("container", "name", "digest", "object", "rewritten", "size", "rewrites")

    def __init__(
        self, container: str, subject: str, skip: int, digest: str, obj: str, rewritten: bool,
        size: int, rewrites: list[dict[str, str]],
    ) -> None:  # fmt: skip
        self.container, self.subject, self.skip = container, subject, skip
        self.digest, self.object, self.rewritten, self.size = digest, obj, rewritten, size
        self.rewrites: Sequence[dict[str, str]] = rewrites or ()  # one shared empty tuple

    @property
    def where(self) -> str:
        """``container/name``: where the file lands."""
        return f"{self.container}/{self.subject[self.skip :]}"

    def __getitem__(self, key: str) -> Any:
        if key == "name":
            return self.subject[self.skip :]
        if key in self.KEYS:
            return getattr(self, key)
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)


class FileAction(ImportAction):
    """The action of one stored file: its ``target`` (``container/name``) is made from its
    facts when asked, not kept (one string per file of a 100k-file plan, ~18 MB; C,
    session 8). What is given for it when made is ignored: the facts say where."""

    __slots__ = ()

    @property
    def target(self) -> str:
        facts = self.details
        assert isinstance(facts, FileFacts)
        return facts.where

    @target.setter
    def target(self, value: str) -> None:
        pass


class DatastoreImporter:
    name = "datastore"

    def __init__(self, target: GuardedTarget) -> None:
        if not isinstance(target, GuardedTarget):  # no write may bypass the guard
            raise TypeError("DatastoreImporter needs a GuardedTarget (WriteGuard.wrap)")
        self.target = target

    def plan(self, ctx: ImportContext) -> list[ImportAction]:
        entries = sorted(
            (f for f in ctx.manifest.files if f.path.startswith(FILES_PREFIX)),
            key=lambda f: f.path,
        )
        cannot = self._unholdable(entries, ctx)
        actions = [self._plan_file(entry, ctx, cannot.get(entry.path)) for entry in entries]
        return block_whole_assets(actions, ctx.manifest)

    def _unholdable(self, entries: list[FileEntry], ctx: ImportContext) -> dict[str, str]:
        """Bundle path -> why the target cannot hold its name (asked per container, with
        every name at once: whether ``x/model`` fits depends on ``x/model/…``)."""
        by_container: defaultdict[str, dict[str, str]] = defaultdict(dict)
        for entry in entries:
            datastore, _, name = entry.path[len(FILES_PREFIX) :].partition("/")
            mapped = ctx.mapping.target_datastore(datastore)
            if mapped is not None:
                container = str(ctx.mapping.target.container_of(mapped))
                by_container[container][name] = entry.path
        found: dict[str, str] = {}
        for container, names in by_container.items():
            for name, reason in self.target.unholdable(container, names.keys()).items():
                found[names[name]] = reason
        return found

    def _plan_file(
        self, entry: FileEntry, ctx: ImportContext, cannot_hold: str | None = None
    ) -> ImportAction:
        datastore, _, path = entry.path[len(FILES_PREFIX) :].partition("/")
        mapped = ctx.mapping.target_datastore(datastore)
        if mapped is None:
            return ImportAction(
                self.name,
                "blocked",
                entry.path,
                "-",
                f"datastore {datastore!r} is not mapped to a target datastore "
                "(add it under 'datastores:' in the map file)",
            )
        container = str(ctx.mapping.target.container_of(mapped))
        where = f"{container}/{path}"
        if cannot_hold is not None:
            reason = f"{self.target.describe()} cannot hold this name: {cannot_hold}"
            return ImportAction(self.name, "failed", entry.path, where, reason)
        rewritten_bytes = False
        digest = entry.digest
        rewrites: list[dict[str, str]] = []
        if needs_rewrite(path, entry.size) and entry.size <= MAX_REWRITE_BYTES:
            raw = ctx.read_object(entry.digest, entry.size)
            needed = pointer_datastore(raw)
            if needed is not None and ctx.mapping.target_datastore(needed) is None:
                reason = (
                    f"pointer to datastore {needed!r}, which is not mapped to a target "
                    "datastore (add it under 'datastores:' in the map file); written, it "
                    "would point at nothing"
                )
                return ImportAction(self.name, "blocked", entry.path, where, reason)
            try:
                rewritten = rewrite_file(path, raw, ctx.rules, bundle_path=entry.path)
            except Unmappable as exc:
                return ImportAction(self.name, "blocked", entry.path, where, exc.message)
            rewrites = changes_of(where, rewritten.changes)
            digest = "sha256:" + hashlib.sha256(rewritten.data).hexdigest()
            # Only facts are kept: ``apply`` reads and rewrites the file again (a 100k-file
            # plan held every file's bytes; docs/design/0007, C session 7). A file the rules
            # leave as it is is streamed from its object like any other.
            rewritten_bytes = rewritten.data != raw
        elif ctx.repo.objects.codec.sealed:  # keyed name: hash the content
            digest = _content_digest(ctx, entry)
        action = self._decide(container, path, digest, ctx)
        skip = len(entry.path) - len(path)  # the name: the end of the bundle path
        facts = FileFacts(container, entry.path, skip, digest, entry.digest, rewritten_bytes,
                          entry.size, rewrites)  # fmt: skip
        return FileAction(self.name, action[0], entry.path, "", action[1], facts)

    def _decide(
        self, container: str, name: str, digest: str, ctx: ImportContext
    ) -> tuple[str, str]:
        found = self.target.stat(container, name)
        return ctx.gate.decide(found is not None, found is not None and found.sha256 == digest)

    def apply(self, action: ImportAction, ctx: ImportContext) -> ImportAction:
        if action.action not in ("create", "update"):
            return action
        d = action.details
        metadata = {DIGEST_METADATA: d["digest"], "amlport_snapshot": ctx.snapshot_id}
        try:
            if d["rewritten"]:
                self.target.write_bytes(
                    d["container"],
                    d["name"],
                    self._rewrite_again(action, ctx),
                    metadata=metadata,
                    overwrite=action.action == "update",
                )
            else:
                with ctx.repo.open_object(d["object"]) as stream:
                    self.target.write_stream(
                        d["container"],
                        d["name"],
                        stream,
                        metadata=metadata,
                        overwrite=action.action == "update",
                    )
        except TargetConflict:
            # Appeared since the plan (a concurrent or resumed import): same content is fine.
            found = self.target.stat(d["container"], d["name"])
            same = found is not None and found.sha256 == d["digest"]
            return ImportAction(
                self.name,
                "skip" if same else "conflict",
                action.subject,
                action.target,
                "appeared meanwhile",
                d,
            )
        return action

    def _rewrite_again(self, action: ImportAction, ctx: ImportContext) -> bytes:
        """The bytes the plan rewrote, made again from the (hash-checked) stored file; they
        must be the ones the plan decided on (its digest), or nothing is written."""
        d = action.details
        raw = ctx.read_object(d["object"], d["size"])
        data = rewrite_file(d["name"], raw, ctx.rules, bundle_path=action.subject).data
        if "sha256:" + hashlib.sha256(data).hexdigest() != d["digest"]:
            raise IntegrityError(
                f"{action.subject}: rewritten again, it is not what the plan decided on",
                hint="nothing was written for this file; run the import again",
            )
        return data


def changes_of(where: str, changes: list[Change]) -> list[dict[str, str]]:
    """A file's rewrites as the import record and ``--json`` list them: the file where it
    lands (``container/name``), where in it, before, after and the rule."""
    return [
        {"file": where, "location": c.location, "before": c.before, "after": c.after,
         "rule": c.rule}
        for c in changes
    ]  # fmt: skip


def pointer_datastore(data: bytes) -> str | None:
    """The ``AmlDataStoreName`` a designer pointer needs, None for any other file (or a
    pointer that does not parse: the rewriter handles it as text)."""
    if not looks_like_pointer(data):
        return None
    try:
        doc = load_json(data.decode("utf-8", "replace"), "pointer")
    except ParseError:
        return None
    name = doc.get("AmlDataStoreName") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and name else None


def block_whole_assets(actions: list[ImportAction], manifest: Manifest) -> list[ImportAction]:
    """Block every file still to be written of an asset one of whose files is blocked (one
    pass, from the files blocked by the plan itself: a block does not spread further)."""
    by_path = {a.subject: a for a in actions}
    blocked = {a.subject: a for a in actions if a.action == "blocked"}
    for asset in manifest.assets:
        if asset.attrs.get("unclassified"):
            continue  # the catch-all groups independent blobs by folder
        cause = next((blocked[p] for p in asset.files if p in blocked), None)
        if cause is None:
            continue
        for path in asset.files:
            a = by_path.get(path)
            if a is not None and a.action in ("create", "update", "conflict"):
                reason = (
                    f"part of {asset.kind} {asset.name!r}, whose file {cause.subject} is blocked "
                    f"({cause.reason})"
                )
                by_path[path] = ImportAction(a.importer, "blocked", a.subject, a.target, reason)
    return [by_path[a.subject] for a in actions]


def _content_digest(ctx: ImportContext, entry: FileEntry) -> str:
    """The SHA-256 of a file's bytes, read from an encrypted repository (whose object names
    are keyed hashes, docs/design/0013): what the target, its metadata and ``restore
    --check`` compare with."""
    sha = hashlib.sha256()
    with ctx.repo.open_object(entry.digest) as fh:
        while chunk := fh.read(1 << 20):
            sha.update(chunk)
    return "sha256:" + sha.hexdigest()
