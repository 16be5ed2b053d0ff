"""Throttling of the obstore data path, with ``Retry-After`` (design 0005, "Retries").

obstore (object_store) keeps the status and body of a failed answer, never its headers, so
amlport cannot see the ``Retry-After`` of a 429/503 that obstore received. It waits its own
backoff after that answer, then asks storage whether the throttle is over with one HEAD of
the same blob through the SDK's pipeline, whose answer it can read: each throttled answer
is one retry (``retries`` in ``--json``) and is waited out for its ``Retry-After`` (or the
backoff, when longer), within ``RetryConfig``'s budget.

What ``retries`` covers of multipart uploads: an ``az://`` repository's object larger than
a block is uploaded by a store without obstore retries, so a failed part fails the upload and
amlport sends it again whole from the spool, counted once; the import target's streamed
uploads are retried by obstore itself (tests/reliability/test_obstore_target_faults.py).

The proxy here throttles one blob the way a front end does: every request for it during a
window that starts at the first one is answered 429 with ``Retry-After`` set to the seconds
left. Without the probe, obstore's retries came back at the backoff's 1, 2, 4 … s whatever
``Retry-After`` said.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.rel_azurite import PrivateAzurite
from helpers.rel_proxy import Fault, FaultProxy
from helpers.rel_workspace import (
    ARTIFACTS,
    Workspace,
    assert_clean_failure,
    error_lines,
    new_workspace,
)
from helpers.rel_workspace import run_measured as amlport

from amlport.bundle import Repository
from amlport.errors import ExitCode, TransientStorageError
from amlport.storage.auth import StorageAuth
from amlport.storage.azure import open_azure_source
from amlport.storage.retry import RetryConfig

pytestmark = [pytest.mark.azurite, pytest.mark.slow]
ACCOUNT = "relwait"
RUN_FILE = "outputs/[w]..eights.bin"  # a hostile but legal name obstore can address


class ThrottleWindow:
    """429 + ``Retry-After`` (whole seconds left, rounded up) for every request to ``path``
    for ``seconds`` after the first one (forever when ``seconds`` is None); records each
    throttled answer as (time, Retry-After)."""

    def __init__(self, path: str, seconds: float | None, retry_after: str | None = None):
        self.path, self.seconds, self.fixed = path, seconds, retry_after
        self.start: float | None = None
        self.answers: list[tuple[float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, method: str, path: str, seen: int) -> Fault | None:
        if path != self.path:
            return None
        with self.lock:
            now = time.monotonic()
            self.start = now if self.start is None else self.start
            if self.seconds is not None and now >= self.start + self.seconds:
                return None
            if self.fixed is not None:
                after = self.fixed
            else:
                assert self.seconds is not None
                after = str(max(1, math.ceil(self.start + self.seconds - now)))
            self.answers.append((now, float(after)))
            return Fault(429, retry_after=after)


def _workspace(root: Path) -> tuple[Workspace, str]:
    ws = new_workspace(root, ACCOUNT)
    ws.put_run_file("r1", RUN_FILE, os.urandom(4096))
    ws.put_run_file("r1", "user_logs/std_log.txt", "step 1\n")
    return ws, f"/{ACCOUNT}/{ARTIFACTS}/ExperimentRun/dcid.r1/{RUN_FILE}"


def _requests_after(proxy: FaultProxy, path: str, when: float) -> list[float]:
    times = [t for (_, p), ts in proxy.times.items() if p == path for t in ts]
    return sorted(t for t in times if t > when)


def test_a_retry_after_is_waited_out_and_the_export_counts_it(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    """``export --json`` (the document that reports ``retries``; a backup reads through the
    same engine) completes, and counts each throttled answer once."""
    ws, path = _workspace(tmp_path / "ws")
    account = rel_emulator.account(ACCOUNT)
    az.upload_workspace(account.connection_string, ws.root)
    throttle = ThrottleWindow(path, seconds=6.0)
    repo = tmp_path / "repo"
    with FaultProxy(rel_emulator.port, throttle) as proxy:
        ran = amlport(
            "export", f"{proxy.endpoint}/{ACCOUNT}", "--repo", str(repo), "--json",
            "--account-key", account.key, "--workspace-file", str(ws.root / "workspace.yaml"),
        )  # fmt: skip
    assert ran.returncode == 0, ran.explain()
    done = ran.json()
    assert not done["transfer"]["failures"]
    assert len(throttle.answers) >= 2  # obstore's GET, then at least one probe
    assert done["retries"] == len(proxy.injected) == len(throttle.answers)  # each counted once
    # Every throttled answer amlport could read (all but obstore's first) was waited out:
    # nothing was sent for the blob again before its Retry-After had passed.
    for when, after in throttle.answers[1:]:
        following = _requests_after(proxy, path, when)
        assert following and following[0] - when >= after - 0.05, (when, after, following)
    assert throttle.start is not None
    served = _requests_after(proxy, path, throttle.start + 6.0)
    assert served, "the blob was never read once the throttle was over"
    assert amlport("verify", str(repo)).returncode == 0


def test_a_throttle_that_outlasts_the_budget_is_a_transient_error_naming_the_blob(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    ws, path = _workspace(tmp_path / "ws")
    account = rel_emulator.account(ACCOUNT)
    az.upload_workspace(account.connection_string, ws.root)
    throttle = ThrottleWindow(path, seconds=None, retry_after="1")
    retry = RetryConfig(total=3, initial_backoff=0.1, increment_base=1.0, jitter=0.0)
    name = f"ExperimentRun/dcid.r1/{RUN_FILE}"
    with FaultProxy(rel_emulator.port, throttle) as proxy:
        source = open_azure_source(
            f"{proxy.endpoint}/{ACCOUNT}", auth=StorageAuth(account_key=account.key), retry=retry
        )
        with source, pytest.raises(TransientStorageError) as caught:
            source.read_bytes(ARTIFACTS, name)
        assert source.retry_count == retry.total == len(proxy.injected) - 1
    error = caught.value
    assert error.exit_code == ExitCode.ERROR
    assert f"{ARTIFACTS}/{name}" in str(error) and "HTTP 429" in str(error), str(error)
    assert account.key not in str(error)
    times = [t for t, _ in throttle.answers]
    waits = [b - a for a, b in itertools.pairwise(times)]
    assert waits[0] >= 0.1 - 0.02  # the backoff after obstore's answer (Retry-After unseen)
    assert all(w >= 1.0 - 0.02 for w in waits[1:]), waits  # each probe's Retry-After: 1


def test_the_command_line_ends_with_the_documented_code_and_names_the_blob(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    """With the default budget (5 retries, about 31 s of backoff): a partial failure (exit 3)
    whose one line names the blob, no traceback; the rest of the workspace is backed up."""
    ws, path = _workspace(tmp_path / "ws")
    account = rel_emulator.account(ACCOUNT)
    az.upload_workspace(account.connection_string, ws.root)
    throttle = ThrottleWindow(path, seconds=None, retry_after="1")
    with FaultProxy(rel_emulator.port, throttle) as proxy:
        ran = amlport(
            "backup", f"{proxy.endpoint}/{ACCOUNT}", "--repo", str(tmp_path / "repo"),
            "--account-key", account.key, "--workspace-file", str(ws.root / "workspace.yaml"),
        )  # fmt: skip
    assert_clean_failure(ran, code=3)
    [line] = error_lines(ran)
    assert f"dcid.r1/{RUN_FILE}" in line and "429" in line, line
    assert account.key not in ran.stdout + ran.stderr
    assert len(proxy.injected) == 6  # obstore's GET and five probes: the budget, no more


def test_a_repository_upload_sent_again_whole_is_counted(
    rel_emulator: PrivateAzurite, tmp_path: Path
) -> None:
    account = rel_emulator.account(ACCOUNT)
    container = f"repo-{uuid.uuid4().hex[:12]}"

    def second_put_of_an_object_busy(method: str, path: str, seen: int) -> Fault | None:
        return Fault(503) if method == "PUT" and "/objects/" in path and seen == 1 else None

    data = os.urandom(9 * (1 << 20))  # three blocks: a multipart upload
    with FaultProxy(rel_emulator.port, second_put_of_an_object_busy) as proxy:
        url = f"{proxy.endpoint}/{ACCOUNT}/{container}/r"
        repo = Repository.init(url, auth=StorageAuth(account_key=account.key))
        try:
            digest, size = repo.put_stream(io.BytesIO(data))
            assert size == len(data) and repo.get_bytes(digest) == data
            assert len(proxy.injected) == 1
            assert repo.store.retry_count == 1  # type: ignore[attr-defined]
        finally:
            repo.close()
