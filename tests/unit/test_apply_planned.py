"""``apply_planned`` takes each importer with the list of actions it planned, and hands the
storage actions to its threads one at a time: no (importer, action) pair per file is held
through the apply (a 100k-file restore held 100k of them, ~7 MB; docs/design/0007, "Peak
memory of backup, restore and diff (B, session 9)"). Storage first, in order, then the rest."""

from __future__ import annotations

import gc
import threading
from typing import Any

from amlport.importers.base import ImportAction
from amlport.importing.engine import apply_planned

NAMES = ["[x]", "a..b", "ctl\x01name", "n" * 1024, "caf\u00e9"]


class _Importer:
    def __init__(self, name: str, log: list[str], probe: Any = None) -> None:
        self.name, self.log, self.probe = name, log, probe
        self.lock = threading.Lock()

    def plan(self, ctx: Any) -> list[ImportAction]:  # pragma: no cover - not called
        return []

    def apply(self, action: ImportAction, ctx: Any) -> ImportAction:
        with self.lock:
            self.log.append(f"{self.name}:{action.subject}")
        if self.probe is not None:
            self.probe(action)
        return ImportAction(action.importer, "create", action.subject, action.target)


def _actions(importer: str, n: int) -> list[ImportAction]:
    return [
        ImportAction(importer, "create", f"files/ds/{NAMES[i % len(NAMES)]}/{i}", f"c/{i}")
        for i in range(n)
    ]


def test_each_importer_brings_its_actions_and_no_pair_per_file_is_held() -> None:
    log: list[str] = []
    storage_actions = _actions("datastore", 200)
    first = storage_actions[0]
    pairs_seen: list[int] = []

    def probe(action: ImportAction) -> None:
        if action is storage_actions[-1]:  # the last file: every other one was handed over
            pairs_seen.append(
                sum(
                    1
                    for o in gc.get_referrers(first)
                    if isinstance(o, tuple) and len(o) == 2 and o[1] is first
                )
            )

    datastore = _Importer("datastore", log, probe)
    assets = _Importer("azureml_assets", log)
    asset_actions = _actions("azureml_assets", 3)
    progress: list[tuple[str, int, int | None]] = []
    failures: list[str] = []
    done = apply_planned(
        [(assets, asset_actions), (datastore, storage_actions)],  # type: ignore[list-item]
        None,  # type: ignore[arg-type]
        failures,
        4,
        lambda stage, n, total: progress.append((stage, n, total)),
    )
    assert pairs_seen == [0]  # the first file's pair was let go long before the last file
    assert [a.subject for a in done] == [a.subject for a in storage_actions + asset_actions]
    assert all(a.action == "create" for a in done) and failures == []
    assert log[-3:] == [f"azureml_assets:{a.subject}" for a in asset_actions]  # storage first
    assert progress[-1] == ("import", 200, 200) and len(progress) == 200
