"""amlport.bundle: the content-addressed repository that exports and backups write to.

Pure I/O library: no printing, no CLI. See docs/bundle-format.md for the on-disk format.
"""

from amlport.bundle.archive import PackReport, UnpackReport
from amlport.bundle.garbage import PruneReport
from amlport.bundle.index import IndexEntry, SourceIndex
from amlport.bundle.lock import HeldLock, LockInfo, RepositoryLocked
from amlport.bundle.objects import digest_of
from amlport.bundle.repository import Repository
from amlport.bundle.retention import ForgetPlan, RetentionPolicy, plan_forget
from amlport.bundle.snapshots import SnapshotInfo
from amlport.bundle.verification import VerifyProblem, VerifyReport

unpack = Repository.unpack

__all__ = [
    "ForgetPlan",
    "HeldLock",
    "IndexEntry",
    "LockInfo",
    "PackReport",
    "PruneReport",
    "Repository",
    "RepositoryLocked",
    "RetentionPolicy",
    "SnapshotInfo",
    "SourceIndex",
    "UnpackReport",
    "VerifyProblem",
    "VerifyReport",
    "digest_of",
    "plan_forget",
    "unpack",
]
