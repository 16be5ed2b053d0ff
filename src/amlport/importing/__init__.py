"""Import: plan and apply a snapshot into a target workspace, idempotently."""

from amlport.importing.engine import ImportRequest, ImportResult, run_import

__all__ = ["ImportRequest", "ImportResult", "run_import"]
