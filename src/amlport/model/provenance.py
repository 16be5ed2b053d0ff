"""Provenance records: what amlport keeps in a workspace's own storage about the workspace.

Both directions use them, so they live here (pure: no I/O), below export, import and promote:

- **import records** (``amlport/imports/<snapshot>.json`` in the artifact container): what an
  import, a restore or a promotion brought from where — the source, the target, the source →
  target asset names, every rewrite (before, after, rule) and the **hops** so far. Exporting
  the workspace later carries the hops into the next snapshot, so dev → qa → prod keeps both
  earlier hops.
- **the identity record** (``amlport/identity.json``): the target's own identity (account,
  containers, datastores, workspace) as the map named it, so a scan by URL alone binds the
  target's datastore names to its containers (docs/design/0014-dr-and-promotion.md).

Everything under ``RECORDS_PREFIX`` is amlport's: the walker lists it apart from the
workspace's blobs (never an asset), and it is read bounded (``MAX_RECORD_BYTES``, bounded JSON).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from amlport.errors import ParseError, UsageError
from amlport.model.manifest import Manifest
from amlport.model.mapping import Mapping
from amlport.model.workspace import WorkspaceDescriptor
from amlport.safeload import load_json

RECORDS_PREFIX = "amlport/"  # the reserved prefix of the artifact container: amlport's own
IMPORTS_PREFIX = f"{RECORDS_PREFIX}imports/"
IDENTITY_NAME = f"{RECORDS_PREFIX}identity.json"
RECORD_FORMAT = "amlport.import/1"
IDENTITY_FORMAT = "amlport.identity/1"
# A record is a few KiB (one line per asset); one past this is not read whole (hostile, or not
# ours), so a workspace cannot make an export hold an arbitrary blob in memory.
MAX_RECORD_BYTES = 4 * 1024 * 1024
# An identity is a few hundred bytes; 64 KiB holds hundreds of datastores.
MAX_IDENTITY_BYTES = 64 * 1024
HOP_KEYS = ("account", "workspace", "snapshot", "time")


def now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def hop_of(source: dict[str, Any], snapshot: str | None, time: str | None) -> dict[str, Any]:
    return {
        "account": source.get("account"),
        "workspace": source.get("workspace"),
        "snapshot": snapshot,
        "time": time,
    }


def this_hop(manifest: Manifest) -> dict[str, Any]:
    return hop_of(manifest.source, manifest.snapshot_id, manifest.created)


def hops(manifest: Manifest) -> list[dict[str, Any]]:
    """Earlier hops carried by the snapshot, then the snapshot's own source."""
    return [*manifest.provenance, this_hop(manifest)]


def record(
    manifest: Manifest,
    mapping: Mapping,
    counts: dict[str, int],
    rewrites: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "snapshot": manifest.snapshot_id,
        "imported": now(),
        "source": manifest.source,
        "target": mapping.target.to_dict(),
        "hops": hops(manifest),
        "counts": dict(sorted(counts.items())),
        "assets": {a.id: mapping.asset_name(a.name) for a in manifest.assets},
        "rewrites": list(rewrites or []),
    }


def promote_record(
    source: dict[str, Any],
    earlier: list[dict[str, Any]],
    mapping: Mapping,
    counts: dict[str, int],
    assets: dict[str, str],
    rewrites: list[dict[str, Any]],
) -> tuple[str, dict[str, Any]]:
    """A promotion's record and its name: the source's earlier hops (its own import records),
    then the promotion's hop from the source."""
    time = now()
    doc = {
        "format": RECORD_FORMAT,
        "snapshot": None,
        "promoted": True,
        "source": source,
        "target": mapping.target.to_dict(),
        "hops": [*earlier, hop_of(source, f"promote@{time}", time)],
        "counts": dict(sorted(counts.items())),
        "assets": assets,
        "rewrites": rewrites,
    }
    digest = hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()
    return f"{IMPORTS_PREFIX}promote-{digest[:16]}.json", doc


def record_name(manifest: Manifest) -> str:
    return f"{IMPORTS_PREFIX}{manifest.snapshot_id}.json"


def encode(doc: dict[str, Any]) -> bytes:
    """``json.dumps(doc, indent=2, sort_keys=True)`` and a newline, as UTF-8 (the bytes
    ``encoded_pieces`` yields, joined)."""
    return b"".join(encoded_pieces(doc))


#: bytes of text ``encoded_pieces`` gathers before it yields them
PIECE_BYTES = 64 << 10


def encoded_pieces(doc: dict[str, Any], size: int = PIECE_BYTES) -> Iterator[bytes]:
    """``encode(doc)`` in pieces of about ``size`` bytes, made as they are asked for: the
    import record of a 100k-file restore is ~10 MB of JSON, and its text, its join and its
    bytes were the restore's peak (B, session 10; ``json.dumps`` joins a list of every
    piece). The encoder escapes every non-ASCII character (``ensure_ascii``), so each piece
    encodes alone to the bytes of the whole."""
    buffer: list[str] = []
    held = 0
    for piece in json.JSONEncoder(indent=2, sort_keys=True).iterencode(doc):
        buffer.append(piece)
        held += len(piece)
        if held >= size:
            yield "".join(buffer).encode("utf-8")
            buffer.clear()
            held = 0
    buffer.append("\n")
    yield "".join(buffer).encode("utf-8")


def provenance_from(records: list[tuple[str, bytes]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The hops a workspace's import records (name, bytes read: at most one past
    ``MAX_RECORD_BYTES``) describe, oldest first, each once; and one problem per record that
    could not be read as one (too large, not JSON, nested past the parser's bound)."""
    seen: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, raw in records:
        try:
            doc = _parse(name, raw, MAX_RECORD_BYTES, "an import record")
        except ParseError as exc:
            problems.append(f"{exc.message}: its provenance is not carried")
            continue
        if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
            continue
        hop_list = doc.get("hops")
        for hop in hop_list if isinstance(hop_list, list) else []:
            if isinstance(hop, dict):
                seen.setdefault(str(hop.get("snapshot")), {k: hop.get(k) for k in HOP_KEYS})
    return sorted(seen.values(), key=lambda h: str(h.get("time"))), problems


def identity_record(target: WorkspaceDescriptor) -> dict[str, Any]:
    """The identity a target keeps of itself (``IDENTITY_NAME``)."""
    return {"format": IDENTITY_FORMAT, "workspace": target.to_dict()}


def identity_from(name: str, raw: bytes) -> WorkspaceDescriptor:
    """The descriptor an identity record holds (read at most one past ``MAX_IDENTITY_BYTES``).
    Bounded JSON, then the workspace.yaml schema (control characters, path-like container
    names and unknown keys are refused): ``ParseError`` naming ``name`` when it is not one."""
    doc = _parse(name, raw, MAX_IDENTITY_BYTES, "an identity record")
    if not isinstance(doc, dict) or doc.get("format") != IDENTITY_FORMAT:
        raise ParseError(name, f"not an identity record (format {IDENTITY_FORMAT!r} expected)")
    try:
        return WorkspaceDescriptor.from_dict(doc.get("workspace"), where=name)
    except UsageError as exc:
        raise ParseError(name, f"not a valid identity: {exc.message}") from None


def _parse(name: str, raw: bytes, limit: int, what: str) -> Any:
    if len(raw) > limit:
        raise ParseError(name, f"larger than {limit} bytes, not {what}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(name, f"not UTF-8 text, not {what}") from None
    return load_json(text, name)  # bounded: nesting is refused before the parser recurses
