"""``amlport.memory.trim_heap``: glibc's ``malloc_trim(0)`` between the phases of a long
command (docs/design/0007, C session 8); a no-op where the C library has none."""

from __future__ import annotations

import pytest

import amlport.memory as memory


def test_trim_heap_returns_whether_pages_went_back() -> None:
    blocks = [bytearray(256 * 1024) for _ in range(64)]  # heap pages, then free ones
    del blocks
    assert memory.trim_heap() in (True, False)
    assert memory.trim_heap() in (True, False)  # again: nothing breaks


def test_without_malloc_trim_it_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "_malloc_trim", lambda: None)
    assert memory.trim_heap() is False
