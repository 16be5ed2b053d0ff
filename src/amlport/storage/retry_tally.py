"""What a command retried: the tally of every storage client it opened.

Kept apart from ``storage/retry.py`` (the SDK's retry policy) so that a command can collect
retries (``counting``) without importing the Azure SDK: a local backup never loads it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

THROTTLING_STATUSES = frozenset({429, 503})
RETRIED_STATUSES = frozenset({408, 429, 500, 502, 503, 504})  # retried by every client


class _Tallied(Protocol):
    @property
    def tally(self) -> RetryTally: ...


@dataclass
class RetryTally:
    """What a command retried, over every storage client it opened (``counting``): reads
    and writes, and why (``throttled``: 429/503; ``server_errors``: 408/500/502/504;
    ``connection``: no answer at all, a refused or broken connection)."""

    reads: int = 0
    writes: int = 0
    throttled: int = 0
    server_errors: int = 0
    connection: int = 0

    @property
    def total(self) -> int:
        return self.reads + self.writes

    def add(self, status: int | None, *, write: bool) -> None:
        if write:
            self.writes += 1
        else:
            self.reads += 1
        if status is None:
            self.connection += 1
        elif status in THROTTLING_STATUSES:
            self.throttled += 1
        else:
            self.server_errors += 1

    def merge(self, other: RetryTally) -> None:
        for name in ("reads", "writes", "throttled", "server_errors", "connection"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def to_dict(self) -> dict[str, int]:
        """The ``retried`` object of a command's ``--json``."""
        return {
            "reads": self.reads,
            "writes": self.writes,
            "throttled": self.throttled,
            "server_errors": self.server_errors,
            "connection": self.connection,
        }

    def summary(self) -> str:
        """What a human summary says after ``retried``: "3 storage calls (1 read, 2 writes;
        2 throttled, 1 connection)"."""
        sides = [_plural(self.reads, "read"), _plural(self.writes, "write")]
        causes = [
            f"{self.throttled} throttled",
            _plural(self.server_errors, "server error"),
            f"{self.connection} connection",
        ]
        counts = (self.reads, self.writes, self.throttled, self.server_errors, self.connection)
        side, cause = (
            ", ".join(text for text, n in zip(group, ns, strict=True) if n)
            for group, ns in ((sides, counts[:2]), (causes, counts[2:]))
        )
        return f"{_plural(self.total, 'storage call')} ({side}; {cause})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@dataclass
class RetryLedger:
    """The retry policies created while ``counting`` is active: one per storage client a
    command opens (source, target, repository). ``tally`` adds up what they retried."""

    policies: list[_Tallied] = field(default_factory=list)

    def tally(self) -> RetryTally:
        out = RetryTally()
        for policy in list(self.policies):
            out.merge(policy.tally)
        return out


_LEDGERS: list[RetryLedger] = []
_LEDGERS_LOCK = threading.Lock()


@contextmanager
def counting() -> Iterator[RetryLedger]:
    """Collect every ``CountingRetry`` created inside the block (in any thread), so that a
    command reports the retries of all its clients, not only its source's."""
    ledger = RetryLedger()
    with _LEDGERS_LOCK:
        _LEDGERS.append(ledger)
    try:
        yield ledger
    finally:
        with _LEDGERS_LOCK:
            _LEDGERS.remove(ledger)


def register(policy: _Tallied) -> None:
    """Called by every retry policy as it is created: the ledgers open now collect it."""
    with _LEDGERS_LOCK:
        for ledger in _LEDGERS:
            ledger.policies.append(policy)
