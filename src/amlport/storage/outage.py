"""When the source is down, a transfer stops trying the rest: one policy for every transfer.

``export``/``backup`` (``export/writer.py``) and ``promote`` (``promote/engine.py``) copy
file after file from a source. Each storage call already rides out brief trouble
(``storage/retry.py``); a failure that survives its retries and says the *whole* source is down
(unreachable, throttled past its retries, access lost) counts towards a streak, any other
outcome resets it. After ``OUTAGE_AFTER`` in a row the source is declared down: no other file is
started (each is reported ``NOT_ATTEMPTED``), so an outage is reported at once instead of every
remaining file waiting out its own retries.
"""

from __future__ import annotations

import threading

from amlport.errors import AccessDenied, AmlportError, SourceError, TransientStorageError

OUTAGE_AFTER = 4  # consecutive source failures that mean the source is down
NOT_ATTEMPTED = "not attempted: the transfer stopped when the source went down"


def is_outage(exc: AmlportError) -> bool:
    """Does this failure say the whole source is down (unreachable, throttled past its
    retries, access lost), rather than that one blob is missing or unreadable?"""
    return isinstance(exc, (TransientStorageError, AccessDenied)) or type(exc) is SourceError


class OutageBreaker:
    """Counts consecutive outage failures across worker threads; ``stopped`` says why the
    transfer stopped (None while it goes on)."""

    def __init__(self, after: int = OUTAGE_AFTER) -> None:
        self.after = after
        self.stopped: str | None = None
        self._streak = 0
        self._lock = threading.Lock()

    def check(self) -> None:
        """Before a file: ``SourceError(NOT_ATTEMPTED)`` once the source is down."""
        if self.stopped is not None:
            raise SourceError(NOT_ATTEMPTED)

    def failed(self, exc: AmlportError) -> None:
        with self._lock:
            self._streak = self._streak + 1 if is_outage(exc) else 0
            if self._streak >= self.after and self.stopped is None:
                self.stopped = f"the source failed {self._streak} times in a row: {exc.message}"

    def succeeded(self) -> None:
        with self._lock:
            self._streak = 0
