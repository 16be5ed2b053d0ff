"""The bad-input corpus (``corpus/cases.py``): every case scans and exports with its expected
exit code and message, no traceback, and nothing lost: the scan counts every blob, the export
carries every file of the selected runs, and the result verifies.

Also: a 100 MB single-line log (generated here, never checked in) is scanned and exported with
bounded memory, and the account key at its very end is found and removed; the odd blob names
survive a round trip through Azurite.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.backup import stored_files
from helpers.bundle import stored_bytes
from helpers.cliutil import manifest_of
from helpers.corpus_cases import CASES, ODD_NAMES, Case, long_name
from helpers.encrypted_mode import ENCRYPTED, sha
from helpers.rel_azurite import PrivateAzurite
from helpers.rel_workspace import (
    ARTIFACTS,
    TRACEBACK,
    Workspace,
    all_bytes_under,
    assert_clean_failure,
    finding_messages,
    manifest_paths,
    new_workspace,
)
from helpers.rel_workspace import (
    run_in_process as cli,
)
from helpers.rel_workspace import (
    run_measured as amlport,
)

from amlport.bundle import Repository

MAX_RSS_MB = 250


def _run_paths(ws: Workspace) -> list[str]:
    """Bundle paths of every file under a run record (runs are exported by default)."""
    return [
        "files/workspaceartifactstore/" + p.relative_to(ws.artifacts).as_posix()
        for p in ws.files()
        if p.is_relative_to(ws.artifacts / "ExperimentRun")
    ]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_bad_input_is_reported_not_crashed_on(case: Case, tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    case.build(ws)

    scan = cli("scan", str(ws.root), "--json")
    assert_clean_failure(scan, code=case.scan_code)
    report = scan.json()
    messages = finding_messages(report)
    assert any(case.scan_says in m for m in messages) if case.scan_says else True, messages
    assert report["inventory"]["counts"]["blobs"] == len(ws.files())  # every blob is counted

    for args in (("lineage", str(ws.root)), ("audit", str(ws.root), "--format", "json")):
        ran = cli(*args)
        assert TRACEBACK not in ran.stderr and ran.returncode in (0, 1, 5), ran.explain()

    repo = tmp_path / "repo"
    export = cli("export", str(ws.root), "--to", str(repo), "--json")
    assert_clean_failure(export, code=case.export_code)
    warnings = export.json()["warnings"]
    assert any(case.export_says in w for w in warnings) if case.export_says else True, warnings
    carried = set(manifest_paths(repo))
    assert set(_run_paths(ws)) <= carried  # every file of every run is in the snapshot
    assert cli("verify", str(repo)).returncode == 0
    exported = all_bytes_under(stored_files(repo))  # loose objects and packs
    exported += json.dumps(manifest_of(repo), ensure_ascii=False).encode()  # pieces: compressed
    for value in case.never_exported:
        assert value.encode() not in exported


def test_non_utf8_bytes_are_exported_unchanged(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    data = b"Temp\xe9rature 25\xb0C \x80\x81\xfe\xff\n" * 3
    ws.put_run_file("latin1", "user_logs/std_log.txt", data)
    repo = tmp_path / "repo"
    assert cli("export", str(ws.root), "--to", str(repo)).returncode == 0
    with Repository.open(repo) as opened:  # the object named for those bytes holds them
        assert opened.get_bytes(sha(data)) == data
        if not ENCRYPTED:  # and, unencrypted, they are what is stored (in a pack, or loose)
            assert stored_bytes(opened, sha(data)) == data


# --- a 100 MB single-line log --------------------------------------------------------------

KEY = "QmlnTG9nS2V5Rm9yVGhlUmVsaWFiaWxpdHlTdWl0ZU5vdEFSZWFsT25lMTIzNDU2Nzg5MEFCQ0RFRkdISUpL=="
LOG_BYTES = 100 << 20


def _big_log(path: Path) -> None:
    """100 MiB without a newline, then an account key: past the 8 MiB parse limit and the
    64 MiB that exports used to copy raw."""
    unit = b"step=000123 loss=0.2500 lr=0.001 throughput=812.5/s "
    block = unit * ((1 << 20) // len(unit) + 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        written = 0
        while written < LOG_BYTES:
            n = min(len(block), LOG_BYTES - written)
            fh.write(block[:n])
            written += n
        fh.write(f" DefaultEndpointsProtocol=https;AccountName=x;AccountKey={KEY};\n".encode())
        fh.write(f"AccountKey={KEY}".encode())


@pytest.mark.slow
def test_a_100_mb_single_line_log_streams_with_bounded_memory(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    log = ws.run("huge") / "user_logs" / "std_log.txt"
    _big_log(log)

    scan = amlport("scan", str(ws.root), "--json")
    assert scan.returncode == 1, scan.explain()
    findings = scan.json()["inventory"]["findings"]
    assert [f["code"] for f in findings] == ["secret-in-file"], findings
    assert "connection_string x1" in findings[0]["message"]
    assert "account_key x1" in findings[0]["message"]
    assert scan.peak_rss_mb < MAX_RSS_MB, f"scan peak RSS {scan.peak_rss_mb:.0f} MiB"

    repo = tmp_path / "repo"
    export = amlport("export", str(ws.root), "--to", str(repo), "--json")
    assert export.returncode == 0, export.explain()
    assert export.json()["transfer"]["streamed"] == 1
    assert export.peak_rss_mb < MAX_RSS_MB, f"export peak RSS {export.peak_rss_mb:.0f} MiB"
    assert amlport("verify", str(repo)).returncode == 0
    if ENCRYPTED:  # what is stored is sealed: check what the key reads back instead
        with Repository.open(repo) as opened:
            (sid,) = [i.id for i in opened.list_snapshots()]
            manifest = opened.load_snapshot(sid)
            [big] = [f for f in manifest.files if f.size > LOG_BYTES]
            with opened.open_object(big.digest) as fh:
                fh.read(LOG_BYTES - 4096)
                tail = fh.read()
            assert KEY not in json.dumps(manifest.to_dict())
            assert all(KEY.encode() not in opened.get_bytes(f.digest)
                       for f in manifest.files if f != big)  # fmt: skip
    else:
        objects = stored_files(repo)  # the big log is loose (512 KiB and more), the rest packed
        [big_file] = [p for p in objects if p.stat().st_size > LOG_BYTES]
        with big_file.open("rb") as fh:
            fh.seek(LOG_BYTES - 4096)
            tail = fh.read()
        assert all(KEY.encode() not in p.read_bytes() for p in objects if p != big_file)
    assert KEY.encode() not in tail and tail.endswith(b"AccountKey=REDACTED")
    assert b"REDACTED" in tail and b"DefaultEndpointsProtocol" not in tail


# --- odd names through Azurite ----------------------------------------------------------------


@pytest.mark.azurite
def test_odd_blob_names_round_trip_through_azurite(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    ws = new_workspace(tmp_path / "ws", "relnames")
    CASES_BY_NAME["odd_blob_names"].build(ws)
    account = rel_emulator.account("relnames")
    az.upload_workspace(account.connection_string, ws.root)
    auth = ("--account-key", account.key, "--workspace-file", str(ws.root / "workspace.yaml"))

    remote = cli("scan", account.url, "--json", *auth)
    local = cli("scan", str(ws.root), "--json")
    assert remote.returncode == local.returncode == 0, remote.explain()
    assert remote.json()["inventory"]["counts"] == local.json()["inventory"]["counts"]

    repo = tmp_path / "repo"
    export = cli("export", account.url, "--to", str(repo), "--json", *auth)
    assert export.returncode == 0, export.explain()
    carried = set(manifest_paths(repo))
    for name in ODD_NAMES:
        assert f"files/workspaceartifactstore/ExperimentRun/dcid.names/outputs/{name}" in carried
    longest = long_name(f"{ARTIFACTS}/ExperimentRun/dcid.names/outputs/")
    assert "files/workspaceartifactstore/" + longest.split("/", 1)[1] in carried
    assert cli("verify", str(repo)).returncode == 0


CASES_BY_NAME = {c.name: c for c in CASES}
