"""amlport.bundle: the content-addressed repository that exports and backups write to.

Pure I/O library: no printing, no CLI. See docs/bundle-format.md for the on-disk format.

The names below load on first use (PEP 562): a command that only needs a small module of the
package (``amlport scan`` through the CLI's ``notices.Warnings``, ``repo_options``'s parsing of
a repository reference) does not import the whole repository machinery with it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

_WHERE = {
    "PackReport": "archive",
    "UnpackReport": "archive",
    "PruneReport": "garbage",
    "IndexEntry": "index",
    "SourceIndex": "index",
    "HeldLock": "lock",
    "LockInfo": "lock",
    "RepositoryLocked": "lock",
    "digest_of": "objects",
    "Repository": "repository",
    "ForgetPlan": "retention",
    "RetentionPolicy": "retention",
    "plan_forget": "retention",
    "SnapshotInfo": "snapshots",
    "VerifyProblem": "verification",
    "VerifyReport": "verification",
}


def __getattr__(name: str) -> Any:
    if name == "unpack":
        value: Any = __getattr__("Repository").unpack
    elif name in _WHERE:
        value = getattr(import_module(f"amlport.bundle.{_WHERE[name]}"), name)
    else:  # a submodule (``from amlport.bundle import archive``) is imported by the caller
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


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
