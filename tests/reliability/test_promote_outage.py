"""``promote`` stops when its source goes down, as ``export`` does (storage/outage.py).

Before: with the emulator stopped mid-promote, every remaining blob waited out its own
connection retries, worker after worker, and promote was still retrying long after export
would have reported the outage. Now after 4 source failures in a row no other blob is tried:
exit 3 within seconds, the reason first among the failures, the rest ``not attempted``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.rel_azurite import start_private
from helpers.rel_workspace import (
    OUTAGE_PARTS,
    TRACEBACK,
    finish,
    identity_map,
    outage_workspace,
    start,
)

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

# From the emulator's stop to promote's exit. Without the outage stop the remaining ~390
# blobs each wait out their connection retries (8 workers): minutes.
STOPS_WITHIN_S = 30.0


def _written(target: Path) -> int:
    return sum(1 for p in target.rglob("part_*.bin")) if target.is_dir() else 0


def test_promote_stops_at_an_outage_like_export(azurite_required: None, tmp_path: Path) -> None:
    ws = outage_workspace(tmp_path / "ws", "relpromoteout")
    emulator = start_private(tmp_path / "azurite", [ws.account])
    try:
        account = emulator.account(ws.account)
        az.upload_workspace(account.connection_string, ws.root)
        target = tmp_path / "target"
        mapping = identity_map(tmp_path / "m.yaml")
        args = (
            "promote", account.url, "--to", str(target), "--map", str(mapping),
            "--connection-string", account.connection_string, "--json",
        )  # fmt: skip
        proc = start(*args)
        deadline = time.monotonic() + 120
        while _written(target) < 40:  # the copy is under way
            assert proc.popen.poll() is None, "promote ended before storage could be stopped"
            assert time.monotonic() < deadline, "promote did not start copying"
            time.sleep(0.01)
        emulator.stop()
        stopped_at = time.monotonic()
        ran = finish(proc, args)
        took = time.monotonic() - stopped_at

        assert ran.returncode == 3, ran.explain()
        assert TRACEBACK not in ran.stderr, ran.explain()
        assert took < STOPS_WITHIN_S, f"promote went on for {took:.0f} s after the outage"
        doc = json.loads(ran.stdout)
        assert doc["failures"][0].startswith("promote stopped: the source failed 4 times")
        not_attempted = [f for f in doc["failures"] if "not attempted" in f]
        assert len(not_attempted) > OUTAGE_PARTS // 2
        assert account.key not in ran.stdout + ran.stderr
    finally:
        emulator.stop()
