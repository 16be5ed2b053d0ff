"""Import records kept in the target under the reserved prefix ``amlport/`` of its artifact
container: what was imported from where (the source → target id map), and the hops so far,
so that provenance survives dev → qa → prod.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from amlport.errors import ParseError
from amlport.model.manifest import Manifest
from amlport.model.mapping import Mapping
from amlport.safeload import load_json

RESERVED_PREFIX = "amlport/"
IMPORTS_PREFIX = "amlport/imports/"
RECORD_FORMAT = "amlport.import/1"
# A record is a few KiB (one line per asset); one past this is not read whole (hostile, or not
# ours), so a workspace cannot make an export hold an arbitrary blob in memory.
MAX_RECORD_BYTES = 4 * 1024 * 1024


def this_hop(manifest: Manifest) -> dict[str, Any]:
    return {
        "account": manifest.source.get("account"),
        "workspace": manifest.source.get("workspace"),
        "snapshot": manifest.snapshot_id,
        "time": manifest.created,
    }


def hops(manifest: Manifest) -> list[dict[str, Any]]:
    """Earlier hops carried by the snapshot, then the snapshot's own source."""
    return [*manifest.provenance, this_hop(manifest)]


def record(manifest: Manifest, mapping: Mapping, counts: dict[str, int]) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "snapshot": manifest.snapshot_id,
        "imported": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
        "source": manifest.source,
        "target": mapping.target.to_dict(),
        "hops": hops(manifest),
        "counts": dict(sorted(counts.items())),
        "assets": {a.id: mapping.asset_name(a.name) for a in manifest.assets},
    }


def record_name(manifest: Manifest) -> str:
    return f"{IMPORTS_PREFIX}{manifest.snapshot_id}.json"


def provenance_from(records: list[tuple[str, bytes]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The hops a workspace's import records (name, bytes read: at most one past
    ``MAX_RECORD_BYTES``) describe, oldest first, each once; and one problem per record that
    could not be read as one (too large, not JSON, nested past the parser's bound)."""
    seen: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for name, raw in records:
        try:
            doc = _parse(name, raw)
        except ParseError as exc:
            problems.append(f"{exc.message}: its provenance is not carried")
            continue
        if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
            continue
        hop_list = doc.get("hops")
        for hop in hop_list if isinstance(hop_list, list) else []:
            if isinstance(hop, dict):
                seen.setdefault(
                    str(hop.get("snapshot")),
                    {k: hop.get(k) for k in ("account", "workspace", "snapshot", "time")},
                )
    return sorted(seen.values(), key=lambda h: str(h.get("time"))), problems


def _parse(name: str, raw: bytes) -> Any:
    if len(raw) > MAX_RECORD_BYTES:
        raise ParseError(name, f"larger than {MAX_RECORD_BYTES} bytes, not an import record")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParseError(name, "not UTF-8 text, not an import record") from None
    return load_json(text, name)  # bounded: nesting is refused before the parser recurses
