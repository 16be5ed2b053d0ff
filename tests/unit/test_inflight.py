"""``InFlight``: the bounded window of parallel work behind ``read_many`` and the export's
transfer. Its finished futures come through a queue; a Ctrl-C while it waits must leave no
future locked (``concurrent.futures.wait`` did: an interrupted export hung in CI)."""

from __future__ import annotations

import os
import signal
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from amlport.storage.base import InFlight


def test_take_hands_back_each_finished_future_with_its_key() -> None:
    window: InFlight[int, str] = InFlight()
    futures = {name: Future[int]() for name in "abcd"}
    for name, fut in futures.items():
        window.add(fut, name)
    futures["c"].set_result(3)
    futures["a"].set_result(1)
    assert [(f.result(), k) for f, k in window.take()] == [(3, "c"), (1, "a")]
    assert len(window) == 2
    futures["d"].set_exception(ValueError("d"))
    [(fut, key)] = list(window.take())
    assert key == "d" and isinstance(fut.exception(), ValueError)
    assert len(window) == 1


def test_cancel_all_cancels_what_has_not_started_and_take_still_returns_it() -> None:
    started, release = threading.Event(), threading.Event()

    def slow() -> str:
        started.set()
        release.wait(10)
        return "ran"

    with ThreadPoolExecutor(max_workers=1) as pool:
        window: InFlight[str, int] = InFlight()
        for n in range(5):
            window.add(pool.submit(slow), n)
        assert started.wait(10)
        window.cancel_all()
        release.set()
        outcome = {}
        while window:
            for fut, n in window.take():
                outcome[n] = "cancelled" if fut.cancelled() else fut.result()
    assert outcome == {0: "ran", 1: "cancelled", 2: "cancelled", 3: "cancelled", 4: "cancelled"}


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(), reason="signals")
def test_ctrl_c_while_waiting_leaves_no_future_locked() -> None:
    """The CI hang, made certain: a worker holds one future's lock (as ``set_result`` does for
    a moment) while SIGINT arrives. ``concurrent.futures.wait`` had taken the locks of the
    futures before it and never gave them back; completing those then blocked for ever."""
    futures = sorted((Future[int]() for _ in range(6)), key=id)  # wait() locks in id order
    held, release = threading.Event(), threading.Event()

    def hold_one_lock() -> None:
        with futures[3]._condition:  # type: ignore[attr-defined]
            held.set()
            release.wait(10)

    window: InFlight[int, int] = InFlight()
    for n, fut in enumerate(futures):
        window.add(fut, n)
    holder = threading.Thread(target=hold_one_lock, daemon=True)
    holder.start()
    assert held.wait(10)
    interrupt = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT))
    interrupt.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            list(window.take())
    finally:
        interrupt.cancel()
        release.set()
        holder.join(10)

    completed = []

    def complete(fut: Future[int]) -> None:
        fut.set_result(1)
        completed.append(fut)

    finishers = [threading.Thread(target=complete, args=(f,), daemon=True) for f in futures]
    for t in finishers:
        t.start()
    for t in finishers:
        t.join(10)
    assert len(completed) == len(futures), "a future stayed locked after the interrupt"
    assert sorted(n for _, n in window.take()) == list(range(6))
