"""An export leaves the cyclic collector as it found it (docs/design/0007, "First-backup
time (A, session 8)"): it freezes what lives through its walk, planning and transfer
(``engine._frozen``) and thaws it when each phase ends, when it fails, and when it is
interrupted, so that a caller's later garbage (a test process that exports many times, a
long-running tool) is collected again, and the reference cycles it drops are collected."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest
from helpers.rel_workspace import new_workspace

from amlport.errors import AmlportError
from amlport.export import ExportRequest, engine, run_export
from amlport.storage.local import LocalSource


def _workspace(root: Path) -> LocalSource:
    ws = new_workspace(root)
    for name in ("a[1].txt", "..b..", "tab\there", "c" * 200, "caf\u00e9.json"):
        ws.put_run_file("r", f"outputs/{name}", b"x")
    return LocalSource(ws.root)


def test_an_export_thaws_what_it_froze(tmp_path: Path) -> None:
    before = gc.get_freeze_count()
    result = run_export(_workspace(tmp_path / "ws"), tmp_path / "repo", ExportRequest())
    assert result.snapshot_id
    assert gc.get_freeze_count() == before
    result = run_export(_workspace(tmp_path / "ws2"), tmp_path / "dry", ExportRequest(dry_run=True))
    assert gc.get_freeze_count() == before


@pytest.mark.parametrize("error", [AmlportError("the walk failed"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_walk_thaws_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: BaseException
) -> None:
    def failing(*_args: object) -> None:
        assert gc.get_freeze_count() > 0  # frozen while it walks
        raise error

    monkeypatch.setattr(engine, "_walk", failing)
    before = gc.get_freeze_count()
    with pytest.raises(type(error)):
        run_export(_workspace(tmp_path / "ws"), tmp_path / "repo", ExportRequest())
    assert gc.get_freeze_count() == before


def test_a_cycle_dropped_inside_the_frozen_block_is_collected_after_it() -> None:
    class Node:
        other: object = None

    with engine._frozen():
        a, b = Node(), Node()
        a.other, b.other = b, a
        gc.freeze()  # as run_export freezes what the walk made
        gone = weakref.ref(a)
        del a, b
        gc.collect()
        assert gone() is not None  # frozen: not collected inside the block
    gc.collect()
    assert gone() is None
