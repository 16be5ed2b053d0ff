"""Retries for Azure storage calls: exponential backoff that also counts what it did.

The SDK's ``ExponentialRetry`` already retries 408, 5xx (but 501/505) and connection/read
errors with exponential backoff and jitter; we reuse its counters, backoff and body rewind.
Two things it lacks, hence ``azure_transport.PipelineRetry`` (built from a
``CountingRetry``, which holds the rules and the count without importing the SDK):

- **429 Too Many Requests** is not retried by the storage policy (only by azure-core's
  generic one). Storage throttles with 503 ServerBusy, but proxies, private endpoints and
  other front ends answer 429, so we treat it as throttling too, and honour ``Retry-After``.
- **A count.** A run summary reports how often storage pushed back; the policy keeps a
  thread-safe total (``count``) that ``AzureSource.retry_count`` exposes. The obstore data
  path (``objects.py``) retries in Python through the same policy, so its retries are
  counted and back off alike.

Only connection trouble (``ServiceRequestError``/``ServiceResponseError``) and the statuses
in ``RETRIED_STATUSES`` are retried. A DNS failure is not: the account name or endpoint
suffix is wrong, and waiting will not make it resolve. Nor is a credential that cannot get a
token.
"""

from __future__ import annotations

import random
import socket
import threading
from dataclasses import dataclass
from typing import Any

from amlport.storage.retry_tally import (
    RETRIED_STATUSES,
    THROTTLING_STATUSES,
    RetryTally,
    register,
)

__all__ = ["RETRIED_STATUSES", "THROTTLING_STATUSES", "CountingRetry", "RetryConfig"]
MAX_RETRY_AFTER_S = 60.0


@dataclass(frozen=True)
class RetryConfig:
    """How hard to retry. The defaults ride out about half a minute of throttling per call.

    The wait before retry *n* (1-based) is ``initial_backoff * increment_base ** (n - 1)``,
    at most ``max_backoff``, ± ``jitter`` seconds; or the server's ``Retry-After`` when that
    is longer (capped at a minute). Defaults: 1, 2, 4, 8, 16 s. A connection that cannot be
    opened at all is retried only ``connect_total`` times: that is usually a wrong URL or a
    firewall, and the user should hear so in seconds rather than half a minute.
    """

    total: int = 5
    connect_total: int = 2
    initial_backoff: float = 1.0
    increment_base: float = 2.0
    max_backoff: float = 30.0
    jitter: float = 0.5


# HTTP methods that only read: a retry of anything else counts as a write.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


FAST_RETRY = RetryConfig(total=2, initial_backoff=0.05, increment_base=1.0, jitter=0.0)
"""For tests and tools that prefer a quick answer to patience."""


class CountingRetry:
    """The retry rules of one storage client: backoff, ``Retry-After``, and a count.

    Pure (no SDK import): amlport's own listing client (``azure_list``) retries through it
    before ``azure.storage.blob`` is loaded. An SDK client retries through
    ``azure_transport.PipelineRetry`` (an ``ExponentialRetry`` that also retries 429 and
    honours ``Retry-After``, built from this by ``client_options``), which counts here: one
    count for every client path (SDK, obstore, own listing).
    """

    def __init__(self, config: RetryConfig | None = None) -> None:
        self.config = config or RetryConfig()
        self._lock = threading.Lock()
        self._count = 0
        self._throttled = 0
        self._tally = RetryTally()
        register(self)

    @property
    def count(self) -> int:
        """Retries done so far, over every call through this policy."""
        return self._count

    @property
    def throttled(self) -> int:
        """Of those, how many answered a 429/503."""
        return self._throttled

    @property
    def tally(self) -> RetryTally:
        """Of those, reads and writes, and why (a copy)."""
        with self._lock:
            return RetryTally(**self._tally.to_dict())

    def backoff(self, n: int) -> float:
        """The wait before retry ``n`` (1-based), jittered.

        The SDK's formula waits initial + base**n, so even its first retry waits long; ours
        starts at ``initial_backoff`` and doubles (by default). The obstore data path
        (``objects.Retrying``) waits the same.
        """
        cfg = self.config
        n = max(1, n)
        backoff = min(cfg.initial_backoff * cfg.increment_base ** (n - 1), cfg.max_backoff)
        return max(0.0, backoff + random.uniform(-cfg.jitter, cfg.jitter))

    def delay(self, n: int, retry_after: float | None) -> float:
        """The wait before retry ``n``: the backoff, or the server's ``Retry-After`` when that
        is longer (capped at ``MAX_RETRY_AFTER_S``). The SDK path and the obstore path alike."""
        backoff = self.backoff(n)
        if retry_after is not None:
            backoff = max(backoff, min(retry_after, MAX_RETRY_AFTER_S))
        return backoff

    def note(self, status: int | None, *, write: bool = False) -> None:
        """Count one retry (``status``: the answer that caused it, None for no answer;
        ``write``: the retried call writes)."""
        with self._lock:
            self._count += 1
            if status in THROTTLING_STATUSES:
                self._throttled += 1
            self._tally.add(status, write=write)


def retry_after_seconds(headers: Any) -> float | None:
    """The ``Retry-After`` of an answer's headers in seconds; None when absent or a date."""
    value = headers.get("Retry-After") if headers is not None else None
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare for storage; fall back to our own backoff


def is_dns_failure(err: BaseException) -> bool:
    """True when the host name did not resolve (wrong account or suffix, or no DNS)."""
    from azure.core.exceptions import ServiceRequestError

    if not isinstance(err, ServiceRequestError):
        return False
    seen: set[int] = set()
    todo: list[BaseException | None] = [err]
    while todo:
        exc = todo.pop()
        if exc is None or id(exc) in seen:
            continue
        seen.add(id(exc))
        if isinstance(exc, socket.gaierror) or type(exc).__name__ == "NameResolutionError":
            return True
        todo.extend([exc.__cause__, exc.__context__, getattr(exc, "inner_exception", None)])
        todo.extend(a for a in getattr(exc, "args", ()) if isinstance(a, BaseException))
        reason = getattr(exc, "reason", None)
        if isinstance(reason, BaseException):
            todo.append(reason)
    return False
