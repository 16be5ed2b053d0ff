"""Export: select assets through the lineage closure, run the exporters, write a snapshot.

The engine (``run_export``, ``complete_previous``) is imported on first use: it brings the
walk, the lineage graph and the exporters, which a backup decided from its listing never
needs (docs/design/0007, "Re-backup from the listing").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from amlport.export.request import ExportRequest, ExportResult

if TYPE_CHECKING:
    from amlport.export.engine import complete_previous, run_export

__all__ = ["ExportRequest", "ExportResult", "complete_previous", "run_export"]


def __getattr__(name: str) -> Any:
    if name in ("complete_previous", "run_export"):
        from amlport.export import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
