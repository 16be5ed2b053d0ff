"""The CLI process limits glibc's malloc arenas (peak RSS of threaded transfers)."""

from __future__ import annotations

import ctypes.util
import sys

import pytest

from amlport.cli import process

GLIBC = sys.platform.startswith("linux") and "libc.so.6" in str(ctypes.util.find_library("c"))


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_arenas_are_limited_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert process.limit_malloc_arenas() is True


def test_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert process.limit_malloc_arenas() is False


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.setattr(process.sys, "platform", "darwin")
    assert process.limit_malloc_arenas() is False
