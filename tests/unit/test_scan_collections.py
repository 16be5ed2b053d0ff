"""``amlport scan`` collects the youngest generation less often while it walks (design 0005,
"Scan speed and retry reporting"), and gives the process its thresholds back afterwards, also
when the walk fails (an in-process caller, a test runner, keeps its own)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from amlport.cli import app


@pytest.fixture
def thresholds() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield gc.get_threshold()
    finally:
        gc.set_threshold(*before)


def test_young_collections_are_rarer_inside_and_restored_after(
    thresholds: tuple[int, int, int],
) -> None:
    with app._young_collections_less_often():
        assert gc.get_threshold() == (app.YOUNG_COLLECTION_EVERY, 10, 10)
    assert gc.get_threshold() == thresholds


def test_the_thresholds_come_back_when_the_block_fails(thresholds: tuple[int, int, int]) -> None:
    with pytest.raises(RuntimeError), app._young_collections_less_often():
        raise RuntimeError("the walk failed")
    assert gc.get_threshold() == thresholds


def test_a_process_that_collects_less_often_already_is_left_so(
    thresholds: tuple[int, int, int],
) -> None:
    gc.set_threshold(100_000, 10, 10)
    with app._young_collections_less_often():
        assert gc.get_threshold()[0] == 100_000
    assert gc.get_threshold() == (100_000, 10, 10)
