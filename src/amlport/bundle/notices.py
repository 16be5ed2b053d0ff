"""Where a repository's warnings go (``Warnings``): a module of its own so that the CLI can
set the sink at start-up without importing the repository (``amlport scan`` never opens one)."""

from __future__ import annotations

from collections.abc import Callable

Warn = Callable[[str], None]


class Warnings:
    """Where a repository's warnings go when its opener names no ``on_warning``: nowhere for
    a library caller, the CLI's warning line once the CLI has set ``sink`` (every command
    then shows a stale lock removed, an index ignored, a lock-free read, without each call
    site remembering to pass a callback)."""

    sink: Warn | None = None

    @classmethod
    def emit(cls, message: str) -> None:
        if cls.sink is not None:
            cls.sink(message)
