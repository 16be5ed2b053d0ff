"""Storage restore: every ``files/<datastore>/<path>`` of a snapshot written to the mapped
container of the target at the same path, re-bound to the target where the file binds to
storage (pointer JSON, MLmodel, YAML, logs), byte for byte otherwise.

Idempotency: every written blob carries its SHA-256 (``amlport_sha256``); a blob already there
with the same digest is a ``skip``. Nothing is written by ``plan``.
"""

from __future__ import annotations

import hashlib

from amlport.importers.base import ImportAction, ImportContext
from amlport.model.manifest import FileEntry
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Unmappable
from amlport.storage.target import DIGEST_METADATA, Target, TargetConflict

MAX_REWRITE_BYTES = 64 * 1024 * 1024
FILES_PREFIX = "files/"


class DatastoreImporter:
    name = "datastore"

    def __init__(self, target: Target) -> None:
        self.target = target

    def plan(self, ctx: ImportContext) -> list[ImportAction]:
        return [
            self._plan_file(entry, ctx)
            for entry in sorted(
                (f for f in ctx.manifest.files if f.path.startswith(FILES_PREFIX)),
                key=lambda f: f.path,
            )
        ]

    def _plan_file(self, entry: FileEntry, ctx: ImportContext) -> ImportAction:
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
        data: bytes | None = None
        digest = entry.digest
        if needs_rewrite(path, entry.size) and entry.size <= MAX_REWRITE_BYTES:
            try:
                data = rewrite_file(
                    path, ctx.read(entry.path), ctx.rules, bundle_path=entry.path
                ).data
            except Unmappable as exc:
                return ImportAction(self.name, "blocked", entry.path, where, exc.message)
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
        action = self._decide(container, path, digest, ctx)
        return ImportAction(
            self.name,
            action[0],
            entry.path,
            where,
            action[1],
            {
                "container": container,
                "name": path,
                "digest": digest,
                "object": entry.digest,
                "data": data,
                "size": entry.size,
            },
        )

    def _decide(
        self, container: str, name: str, digest: str, ctx: ImportContext
    ) -> tuple[str, str]:
        found = self.target.stat(container, name)
        if found is None:
            return "create", ""
        if found.sha256 == digest:
            return "skip", "already there with the same content"
        if ctx.on_conflict == "overwrite":
            return "update", "exists with other content; --on-conflict overwrite"
        if ctx.on_conflict == "skip":
            return "skip", "exists with other content; left alone (--on-conflict skip)"
        return "conflict", "exists with other content (use --on-conflict overwrite|skip)"

    def apply(self, action: ImportAction, ctx: ImportContext) -> ImportAction:
        if action.action not in ("create", "update"):
            return action
        d = action.details
        metadata = {DIGEST_METADATA: d["digest"], "amlport_snapshot": ctx.snapshot_id}
        try:
            if d["data"] is not None:
                self.target.write_bytes(
                    d["container"],
                    d["name"],
                    d["data"],
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
