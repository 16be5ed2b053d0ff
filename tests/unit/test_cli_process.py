"""The CLI process tunes glibc's malloc (peak RSS of threaded transfers) and stops on
SIGTERM as on Ctrl-C."""

from __future__ import annotations

import ctypes.util
import os
import signal
import sys
import time

import pytest

from amlport.cli import process

GLIBC = sys.platform.startswith("linux") and "libc.so.6" in str(ctypes.util.find_library("c"))
ENV = {"arena_max": "MALLOC_ARENA_MAX", "mmap_threshold": "MALLOC_MMAP_THRESHOLD_"}


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_both_settings_are_made_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    assert process.tune_malloc() == {"arena_max": True, "mmap_threshold": True}


@pytest.mark.parametrize("setting", sorted(ENV))
def test_the_environment_wins(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv(ENV[setting], "8")
    tuned = process.tune_malloc()
    assert tuned[setting] is False
    assert all(done == GLIBC for name, done in tuned.items() if name != setting)


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setattr(process.sys, "platform", "darwin")
    assert process.tune_malloc() == {"arena_max": False, "mmap_threshold": False}


def test_the_first_sigterm_stops_like_ctrl_c_and_later_ones_wait_for_it() -> None:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt: every Ctrl-C clean-up runs); a
    second one while that clean-up runs is ignored instead of cutting it short."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        process.stop_on_sigterm()
        with pytest.raises(process.Terminated) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this ends
        assert isinstance(stopped.value, KeyboardInterrupt)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored now: the process goes on
        time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)
