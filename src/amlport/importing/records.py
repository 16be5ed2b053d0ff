"""Import records kept in the target under the reserved prefix ``amlport/`` of its artifact
container: what was imported from where (the source → target id map), and the hops so far,
so that provenance survives dev → qa → prod.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from amlport.model.manifest import Manifest
from amlport.model.mapping import Mapping

RESERVED_PREFIX = "amlport/"
IMPORTS_PREFIX = "amlport/imports/"
RECORD_FORMAT = "amlport.import/1"


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


def provenance_from(records: list[bytes]) -> list[dict[str, Any]]:
    """The hops a workspace's import records describe, oldest first, each once."""
    seen: dict[str, dict[str, Any]] = {}
    for raw in records:
        try:
            doc = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(doc, dict) or doc.get("format") != RECORD_FORMAT:
            continue
        for hop in doc.get("hops") or []:
            if isinstance(hop, dict):
                seen.setdefault(
                    str(hop.get("snapshot")),
                    {k: hop.get(k) for k in ("account", "workspace", "snapshot", "time")},
                )
    return sorted(seen.values(), key=lambda h: str(h.get("time")))
