"""amlport.backup: scheduled backups, retention, diff and disaster-recovery restore.

Library only (no printing): ``run_backup`` (a whole-workspace snapshot with a catch-all for
every blob no exporter claims), ``run_forget`` (retention + prune), ``diff_specs`` (two
snapshots, or a snapshot and a live source), ``run_restore`` (import plus proof).
"""

from amlport.backup.diff import DiffReport, diff_sides
from amlport.backup.run import BackupRequest, BackupResult, run_backup

__all__ = ["BackupRequest", "BackupResult", "DiffReport", "diff_sides", "run_backup"]
