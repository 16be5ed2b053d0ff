"""Waiting for the repository lock in the backup commands (``--retry-lock``).

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

from amlport.bundle import HeldLock, Repository, RepositoryLocked

POLL_SECONDS = 0.5


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
