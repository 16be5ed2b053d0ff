"""Export: select assets through the lineage closure, run the exporters, write a snapshot."""

from amlport.export.engine import ExportRequest, ExportResult, complete_previous, run_export

__all__ = ["ExportRequest", "ExportResult", "complete_previous", "run_export"]
