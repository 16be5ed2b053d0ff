"""``objects.Retrying``: the obstore path's retries, budget and ``Retry-After`` (design 0005,
"Behaviour gaps closed"). Pure logic: obstore's errors are built from the text object_store
gives them, the probe is a list of answers, and ``time.sleep`` is recorded, not waited.
The same behaviour against Azurite: tests/reliability/test_obstore_throttling.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from obstore.exceptions import GenericError

from amlport.errors import TransientStorageError
from amlport.storage import objects
from amlport.storage.azure_errors import ErrorTranslator, Where
from amlport.storage.azure_location import AzureLocation
from amlport.storage.objects import Retrying, Throttled
from amlport.storage.retry import MAX_RETRY_AFTER_S, CountingRetry, RetryConfig

CONFIG = RetryConfig(total=4, initial_backoff=1.0, increment_base=2.0, jitter=0.0)
WHERE = Where("reading", "azureml", "ExperimentRun/[r]/..x.bin")


def _error(status: int, retries: int = 0) -> GenericError:
    after = (
        f", after {retries} retries, max_retries: {retries}, retry_timeout: 5s " if retries else ""
    )
    return GenericError(
        f"Generic MicrosoftAzure error: Error performing GET http://127.0.0.1/a/c/x?sig=SECRET "
        f"in 1ms{after} - Server returned non-2xx status code: {status} Too Many Requests: "
    )


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(objects.time, "sleep", waits.append)
    return waits


def _retrying(probe: list[Throttled | None] | None) -> tuple[Retrying, list[Where]]:
    policy = CountingRetry(CONFIG)
    translator = ErrorTranslator(AzureLocation("https", "acct.blob.core.windows.net", "acct"),
                                 policy, False)  # fmt: skip
    asked: list[Where] = []

    def answer(where: Where) -> Throttled | None:
        asked.append(where)
        return probe.pop(0) if probe else None

    return Retrying(policy, translator, answer if probe is not None else None), asked


def _failing(*errors: BaseException) -> Callable[[], bytes]:
    left = list(errors)

    def fn() -> bytes:
        if left:
            raise left.pop(0)
        return b"ok"

    return fn


def test_a_retry_after_seen_by_the_probe_is_waited_out_and_counted(slept: list[float]) -> None:
    retrying, asked = _retrying([Throttled(429, "TooManyRequests", 30.0), None])
    assert retrying.call(WHERE, _failing(_error(429))) == b"ok"
    assert slept == [1.0, 30.0]  # the backoff (obstore's Retry-After is unseen), the probe's
    assert retrying.policy.count == 2 and retrying.policy.throttled == 2
    assert asked == [WHERE, WHERE]


def test_a_retry_after_is_capped_and_a_short_one_loses_to_the_backoff(slept: list[float]) -> None:
    retrying, _ = _retrying([Throttled(503, "ServerBusy", 600.0), Throttled(503, "", 0.5), None])
    assert retrying.call(WHERE, _failing(_error(503))) == b"ok"
    assert slept == [1.0, MAX_RETRY_AFTER_S, 4.0]


def test_a_throttle_past_the_budget_names_the_blob(slept: list[float]) -> None:
    retrying, asked = _retrying([Throttled(429, "TooManyRequests", None)] * 10)
    with pytest.raises(TransientStorageError) as caught:
        retrying.call(WHERE, _failing(_error(429)))
    assert retrying.policy.count == CONFIG.total and slept == [1.0, 2.0, 4.0, 8.0]
    assert len(asked) == CONFIG.total  # the last throttled answer is the error, not a retry
    message = str(caught.value)
    assert f"blob azureml/{WHERE.blob}" in message and "HTTP 429 TooManyRequests" in message
    assert "SECRET" not in message and "http" not in message.replace("HTTP", "")


def test_a_probe_that_finds_the_throttle_over_lets_obstore_retry(slept: list[float]) -> None:
    retrying, asked = _retrying([None])
    fn = _failing(_error(503), _error(503))
    assert retrying.call(WHERE, fn) == b"ok"
    assert slept == [1.0, 2.0] and retrying.policy.count == 2 and len(asked) == 2


def test_no_probe_for_what_is_not_throttling_nor_without_a_probe(slept: list[float]) -> None:
    retrying, asked = _retrying([Throttled(503, "", 9.0)])
    assert retrying.call(WHERE, _failing(_error(500))) == b"ok"
    assert asked == [] and slept == [1.0]
    bare, _ = _retrying(None)
    assert bare.call(WHERE, _failing(_error(429))) == b"ok"
    assert bare.policy.count == 1


def test_obstores_own_retries_are_counted_from_its_error() -> None:
    retrying, _ = _retrying(None)
    assert retrying.note_reported(_error(503, retries=3)) == 3
    assert retrying.note_reported(_error(503)) == 0  # no retries reported
    assert retrying.note_reported(ValueError("after 9 retries, max_retries")) == 0  # not obstore's
    assert retrying.policy.count == 3 and retrying.policy.throttled == 3
