"""What a command reports of its retries (design 0005, "Scan speed and retry reporting"):
``RetryTally`` (reads, writes, why), ``counting`` (every client's policy of the run) and the
CLI's ``with_retries``/``say_retries``. Pure logic; ``time.sleep`` is recorded, not waited.
The same against Azurite with injected faults: tests/reliability/test_retry_reporting.py."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from obstore.exceptions import GenericError

from amlport.cli import common
from amlport.storage import objects
from amlport.storage.azure_errors import ErrorTranslator, Where
from amlport.storage.azure_location import AzureLocation
from amlport.storage.objects import Retrying
from amlport.storage.retry import CountingRetry, RetryConfig
from amlport.storage.retry_tally import RetryTally, counting

CONFIG = RetryConfig(total=3, initial_backoff=0.0, increment_base=1.0, jitter=0.0)


def _busy(status: int, retries: int = 0) -> GenericError:
    after = (
        f", after {retries} retries, max_retries: {retries}, retry_timeout: 5s " if retries else ""
    )
    return GenericError(
        f"Generic MicrosoftAzure error: Error performing PUT http://127.0.0.1/a/c/x?sig=SECRET "
        f"in 1ms{after} - Server returned non-2xx status code: {status} Server Busy: "
    )


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(objects.time, "sleep", lambda _: None)


def _retrying(policy: CountingRetry) -> Retrying:
    location = AzureLocation("https", "acct.blob.core.windows.net", "acct")
    return Retrying(policy, ErrorTranslator(location, policy, False))


def _once(error: BaseException) -> Callable[[], bytes]:
    left = [error]

    def fn() -> bytes:
        if left:
            raise left.pop()
        return b"ok"

    return fn


def test_reads_and_writes_are_told_apart_by_what_the_call_does() -> None:
    policy = CountingRetry(CONFIG)
    retrying = _retrying(policy)
    assert retrying.call(Where("reading", "c", "a/[b]/..c"), _once(_busy(503))) == b"ok"
    assert retrying.call(Where("writing", "c", "objects/ab"), _once(_busy(429))) == b"ok"
    assert retrying.call(Where("refreshing", "c", "locks/x"), _once(_busy(500))) == b"ok"
    assert policy.count == 3
    assert policy.tally == RetryTally(reads=1, writes=2, throttled=2, server_errors=1)


def test_the_retries_obstore_reports_of_a_failed_upload_are_writes() -> None:
    policy = CountingRetry(CONFIG)
    assert _retrying(policy).note_reported(_busy(503, retries=2)) == 2
    assert policy.tally == RetryTally(writes=2, throttled=2)


def test_a_retry_without_an_answer_is_a_connection_retry() -> None:
    policy = CountingRetry(CONFIG)
    policy.note(None)
    policy.note(504, write=True)
    assert policy.tally.to_dict() == {
        "reads": 1, "writes": 1, "throttled": 0, "server_errors": 1, "connection": 1,
    }  # fmt: skip


def test_counting_collects_every_policy_made_inside_it_in_any_thread() -> None:
    outside = CountingRetry(CONFIG)
    with counting() as ledger:
        source = CountingRetry(CONFIG)
        made: list[CountingRetry] = []
        worker = threading.Thread(target=lambda: made.append(CountingRetry(CONFIG)))
        worker.start()
        worker.join()
        with counting() as inner:  # a nested block sees its own clients only
            target = CountingRetry(CONFIG)
    after = CountingRetry(CONFIG)
    for policy, status, write in (
        (outside, 503, False), (source, 503, False), (made[0], 500, True),
        (target, None, True), (after, 429, True),
    ):  # fmt: skip
        policy.note(status, write=write)
    assert ledger.policies == [source, made[0], target]
    assert ledger.tally() == RetryTally(reads=1, writes=2, throttled=1, server_errors=1,
                                        connection=1)  # fmt: skip
    assert inner.tally() == RetryTally(writes=1, connection=1)


def test_the_json_keeps_retries_an_integer_and_adds_what_was_retried() -> None:
    with counting() as ledger:
        CountingRetry(CONFIG).note(503, write=True)
    doc = common.with_retries({"snapshot": "x", "retries": 0, "warnings": []}, ledger)
    assert list(doc) == ["snapshot", "retries", "warnings", "retried"]  # the place is kept
    assert doc["retries"] == 1
    assert doc["retried"] == {
        "reads": 0, "writes": 1, "throttled": 1, "server_errors": 0, "connection": 0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("tally", "said"),
    [
        (RetryTally(reads=1, throttled=1), "1 storage call (1 read; 1 throttled)"),
        (
            RetryTally(reads=3, writes=1, throttled=1, server_errors=2, connection=1),
            "4 storage calls (3 reads, 1 write; 1 throttled, 2 server errors, 1 connection)",
        ),
    ],
)
def test_the_summary_line(tally: RetryTally, said: str) -> None:
    assert tally.summary() == said


def test_nothing_is_said_when_nothing_was_retried(capsys: pytest.CaptureFixture[str]) -> None:
    with counting() as ledger:
        CountingRetry(CONFIG)
    common.say_retries(ledger)
    assert capsys.readouterr().err == ""
