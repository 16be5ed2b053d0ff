"""Storage faults against Azurite: an outage in the middle of an export, and throttling.

- The emulator is stopped while an export reads from it: amlport exits 3 with one line
  saying why, no traceback; the snapshot of what was done is kept, marked incomplete. The
  emulator restarts on the same port and location, the same export completes, and
  ``verify`` passes. Into a repository with pack files (the default) and one without: the
  packs written before the outage are indexed, and their objects are not read again.
- A proxy answers 503 ServerBusy / 429 Too Many Requests to the first request for some
  blobs and for the listing: the calls are retried after a backoff, and ``scan --json`` and
  ``export --json`` report exactly as many ``retries`` as faults were injected.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.backup import objects_on_disk
from helpers.cliutil import manifest_of
from helpers.rel_azurite import PrivateAzurite, start_private
from helpers.rel_proxy import Fault, FaultProxy
from helpers.rel_workspace import (
    ARTIFACTS,
    BLOBSTORE,
    OUTAGE_PARTS,
    TRACEBACK,
    Workspace,
    error_lines,
    finish,
    manifest_paths,
    new_workspace,
    outage_workspace,
    start,
)
from helpers.rel_workspace import (
    run_measured as amlport,
)

from amlport.bundle.packs import PACK_TARGET

pytestmark = [pytest.mark.azurite, pytest.mark.slow]


# Loose: 16 KiB parts, storage is stopped once 40 object files are written. Packed: the
# parts are held in memory until ``packs.PACK_TARGET`` bytes fill a pack; with 64 KiB parts
# the first pack is written after PACK_TARGET / 64 KiB of them (64 of 4 MiB), and storage is
# stopped then.
LAYOUTS = {"loose": (16 << 10, 40), "packed": (64 << 10, 1)}


def _written(repo: Path, layout: str) -> int:
    """Object files (loose) or pack files (packed) written so far."""
    folder = repo / ("objects" if layout == "loose" else "packs")
    found = folder.rglob("*") if folder.is_dir() else iter(())
    return sum(1 for p in found if p.is_file() and "index" not in p.parts and ".tmp-" not in p.name)


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_outage_mid_export_exits_3_then_a_rerun_completes(
    azurite_required: None, tmp_path: Path, layout: str
) -> None:
    part, under_way = LAYOUTS[layout]
    env = {"AMLPORT_PACKS": "0" if layout == "loose" else "1"}
    ws = outage_workspace(tmp_path / "ws", "reloutage", part)
    emulator = start_private(tmp_path / "azurite", [ws.account])
    try:
        account = emulator.account(ws.account)
        az.upload_workspace(account.connection_string, ws.root)
        repo = tmp_path / "repo"
        args = (
            "export", account.url, "--to", str(repo), "--workers", "4",
            "--connection-string", account.connection_string,
            "--workspace-file", str(ws.root / "workspace.yaml"),
        )  # fmt: skip
        proc = start(*args, env=env)
        deadline = time.monotonic() + 120
        while _written(repo, layout) < under_way:  # the transfer is under way
            assert proc.popen.poll() is None, "the export ended before storage could be stopped"
            assert time.monotonic() < deadline, "the export did not start transferring"
            time.sleep(0.01)
        emulator.stop()
        first = finish(proc, args)

        assert first.returncode == 3, first.explain()
        assert TRACEBACK not in first.stderr, first.explain()
        [reason] = error_lines(first)  # exactly one line says what happened
        assert reason.startswith("amlport: partial failure: "), reason
        assert "cannot reach" in reason or "connection broke" in reason, reason
        assert ws.account in reason, reason
        assert account.key not in first.stdout + first.stderr
        stats = manifest_of(repo)["stats"]  # one snapshot, of the partial run
        assert stats["complete"] is False and stats["failures"] > 0
        assert stats["stopped"].startswith("the source failed")

        if layout == "packed":  # what was packed before the outage is indexed
            in_a_pack = PACK_TARGET // part  # the parts the first pack holds
            assert len(objects_on_disk(repo)) >= in_a_pack * 3 // 4, first.explain()

        emulator.start()  # same port, same --location: the blobs are still there
        second = amlport(*args, "--json", env=env)
        assert second.returncode in (0, 1), second.explain()
        done = second.json()
        assert not done["transfer"]["failures"]
        assert done["transfer"]["reused"] >= 30  # what the first run stored is not read again
        paths = manifest_paths(repo)
        for i in range(OUTAGE_PARTS):
            assert any(p.endswith(f"bigrun/outputs/model/part_{i:04d}.bin") for p in paths)
        check = amlport("verify", str(repo))
        assert check.returncode == 0, check.explain()
    finally:
        emulator.stop()


def _throttle_workspace(root: Path) -> tuple[Workspace, dict[str, Fault]]:
    ws = new_workspace(root, "relthrottle")
    ws.put_run_file("r1", "user_logs/std_log.txt", "step 1\n")
    ws.put_run_file("r2", "user_logs/std_log.txt", "step 2\n")
    ws.put_run_file("r2", "outputs/weights.bin", os.urandom(4096))
    ws.put_run_file("r3", "outputs/weights.bin", os.urandom(4096))
    account = ws.account
    faults = {
        f"/{account}/{ARTIFACTS}/ExperimentRun/dcid.r1/user_logs/std_log.txt": Fault(503),
        f"/{account}/{ARTIFACTS}/ExperimentRun/dcid.r2/user_logs/std_log.txt": Fault(
            429, retry_after="1"
        ),
        f"/{account}/{ARTIFACTS}/ExperimentRun/dcid.r2/outputs/weights.bin": Fault(503),
        f"/{account}/{ARTIFACTS}/ExperimentRun/dcid.r3/outputs/weights.bin": Fault(500),
        f"/{account}/{BLOBSTORE}": Fault(503),  # the listing of the blobstore
    }
    return ws, faults


def _first_get_fails(faults: dict[str, Fault]) -> object:
    def rule(method: str, path: str, seen: int) -> Fault | None:
        return faults.get(path) if method == "GET" and seen == 0 else None

    return rule


def _assert_backed_off(proxy: FaultProxy) -> None:
    for method, path, _ in proxy.injected:
        times = proxy.times[(method, path)]
        assert len(times) >= 2, f"{path} was not retried"
        assert times[1] - times[0] >= 0.4, f"{path} was retried without a backoff"


def test_throttling_is_retried_with_backoff_and_counted(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    ws, faults = _throttle_workspace(tmp_path / "ws")
    account = rel_emulator.account(ws.account)
    az.upload_workspace(account.connection_string, ws.root)
    common = ("--account-key", account.key, "--workspace-file", str(ws.root / "workspace.yaml"))

    with FaultProxy(rel_emulator.port, _first_get_fails(faults)) as proxy:  # type: ignore[arg-type]
        scan = amlport("scan", f"{proxy.endpoint}/{ws.account}", "--json", *common)
    assert scan.returncode == 0, scan.explain()
    report = scan.json()
    assert len(proxy.injected) >= 3  # the listing and the two logs the walk reads
    assert report["retries"] == len(proxy.injected)
    assert report["inventory"]["counts"]["blobs"] == len(ws.files())
    _assert_backed_off(proxy)

    repo = tmp_path / "repo"
    with FaultProxy(rel_emulator.port, _first_get_fails(faults)) as proxy:  # type: ignore[arg-type]
        export = amlport(
            "export", f"{proxy.endpoint}/{ws.account}", "--to", str(repo), "--json", *common
        )
    assert export.returncode == 0, export.explain()
    result = export.json()
    assert len(proxy.injected) == len(faults)  # every fault was met once ...
    assert result["retries"] == len(faults)  # ... and counted once
    assert not result["transfer"]["failures"]
    _assert_backed_off(proxy)
    assert amlport("verify", str(repo)).returncode == 0


def test_a_local_source_reports_zero_retries(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    scan = amlport("scan", str(ws.root), "--json")
    export = amlport("export", str(ws.root), "--to", str(tmp_path / "repo"), "--json")
    assert scan.json()["retries"] == 0 and export.json()["retries"] == 0
