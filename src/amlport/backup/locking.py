"""Opening the repository for the backup commands, and waiting for its lock (``--retry-lock``).

``Repository.lock`` fails at once when a conflicting lock is held. A scheduled job would
rather wait a while: ``locked`` retries with a jittered pause (so two waiters do not keep
backing off in step) until ``wait`` seconds have passed, then raises ``RepositoryLocked``.
Only taking the lock is retried, never the work done under it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from amlport.bundle import HeldLock, Repository, RepositoryLocked
from amlport.errors import UsageError

POLL_SECONDS = 0.5
_URL_PREFIXES = ("az:", "abfs:", "abfss:", "http:", "https:", "wasb:", "wasbs:")


def local_repository(path: Path) -> Path:
    """REPO must be a folder: an Azure container as repository is not supported (yet)."""
    if str(path).lower().startswith(_URL_PREFIXES):
        raise UsageError(
            f"{path} is not a folder: a repository in an Azure container is not supported yet",
            hint="put the repository on a disk or an Azure Files (NFS) share in another region "
            "and give its path (docs/backup.md)",
        )
    return path


@contextmanager
def locked(repo: Repository, *, exclusive: bool, wait: float = 0.0) -> Iterator[HeldLock]:
    deadline = time.monotonic() + max(wait, 0.0)
    with ExitStack() as stack:
        while True:
            try:
                held = stack.enter_context(repo.lock(exclusive=exclusive))
                break
            except RepositoryLocked:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise
                time.sleep(min(left, POLL_SECONDS * (0.5 + random.random())))
        yield held
