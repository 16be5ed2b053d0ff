"""``ObjectStore.put_stream``'s ``judge`` (the secret scan of a streamed file) and ``again``:
every byte stored is judged, and a stream that holds the bytes an earlier stream of the store
stored after its judge let them pass is neither judged nor staged again (docs/design/0005,
"CPU per MiB of a large-model backup (G, session 9)"). Local repositories, plain and
(``AMLPORT_TEST_ENCRYPT=1``) encrypted."""

from __future__ import annotations

import contextlib
import hashlib
import io
import random
import threading
from collections import Counter
from pathlib import Path
from typing import BinaryIO, cast

import pytest
from helpers.bundle import new_repo

from amlport.bundle import Repository
from amlport.bundle.objects import CHUNK_SIZE
from amlport.errors import IntegrityError
from amlport.secrets import ByteScanner

KEY = "AccountKey=" + "Zm9vYmFy" * 11 + "=="  # what the scan calls an account key


class Refused(Exception):
    pass


class Judge:
    """The secret scan as the transfer's sink does it: refuses at the end when it found
    one; counts the bytes it was shown."""

    def __init__(self) -> None:
        self.scanner = ByteScanner()
        self.seen = 0
        self.ended = 0

    def __call__(self, data: bytes | memoryview) -> None:
        if data:
            self.seen += len(data)
            self.scanner.feed(data)
            return
        self.ended += 1
        found: Counter[str] = self.scanner.close()
        if found:
            raise Refused(dict(found))


def _body(size: int, seed: int, tail: bytes = b"") -> bytes:
    """Random bytes of ``size`` (the same for a seed), ``tail`` near the end."""
    data = bytearray(random.Random(seed).randbytes(size))
    if tail:
        at = size - 4096
        data[at : at + len(tail) + 2] = b"\x01" + tail + b"\x01"
    return bytes(data)


def _objects(root: Path) -> list[Path]:
    return sorted(p for p in (root / "objects").rglob("*") if p.is_file())


class Again:
    """``put_stream``'s ``again``: the same bytes read anew, counted."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.calls = 0

    def __call__(self) -> contextlib.AbstractContextManager[BinaryIO]:
        self.calls += 1
        return contextlib.nullcontext(cast(BinaryIO, io.BytesIO(self.body)))


def _store(repo: Repository, body: bytes, judge: Judge, again: Again | None = None) -> str:
    again = Again(body) if again is None else again
    return repo.objects.put_stream(io.BytesIO(body), judge=judge, again=again)[0]


def test_equal_streams_are_judged_and_staged_once_and_every_one_is_stored(
    tmp_path: Path,
) -> None:
    repo = new_repo(tmp_path)
    body = _body(3 * CHUNK_SIZE + 5, 1)
    judges = [Judge() for _ in range(3)]
    agains = [Again(body) for _ in range(3)]
    digests = {_store(repo, body, j, a) for j, a in zip(judges, agains, strict=True)}
    assert len(digests) == 1
    assert repo.objects.get_bytes(digests.pop()) == body
    assert [j.seen for j in judges] == [len(body), 0, 0]
    assert [j.ended for j in judges] == [1, 0, 0]
    assert [a.calls for a in agains] == [0, 0, 0]  # read once each
    assert len(_objects(tmp_path / "repo")) == 1
    # without ``again`` every stream is judged as it is read
    alone = Judge()
    repo.objects.put_stream(io.BytesIO(body), judge=alone)
    assert alone.seen == len(body)


def test_a_stream_that_begins_alike_but_differs_is_read_again_and_judged(
    tmp_path: Path,
) -> None:
    """Same first chunk, other bytes after it, a key near the end: read again, judged whole
    and refused, nothing stored for it; a short stream (less than a chunk) is judged as read."""
    repo = new_repo(tmp_path)
    clean = _body(2 * CHUNK_SIZE + 77, 2)
    _store(repo, clean, Judge())
    stored = _objects(tmp_path / "repo")
    planted = _body(2 * CHUNK_SIZE + 77, 2, KEY.encode())
    assert planted[:CHUNK_SIZE] == clean[:CHUNK_SIZE]
    for _ in range(2):
        judge, again = Judge(), Again(planted)
        with pytest.raises(Refused, match="account_key"):
            _store(repo, planted, judge, again)
        assert (judge.seen, again.calls) == (len(planted), 1)
    assert _objects(tmp_path / "repo") == stored
    short = Judge()
    _store(repo, clean[: CHUNK_SIZE // 2], short)
    assert short.seen == CHUNK_SIZE // 2


def test_a_lead_refused_leaves_its_twins_to_be_read_again_and_refused(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    planted = _body(2 * CHUNK_SIZE + 9, 3, KEY.encode())
    for _ in range(3):
        judge = Judge()
        with pytest.raises(Refused):
            _store(repo, planted, judge)
        assert judge.seen == len(planted)
    assert _objects(tmp_path / "repo") == []


def test_a_twin_whose_md5_is_wrong_is_refused_unread_again(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    body = _body(2 * CHUNK_SIZE + 1, 5)
    _store(repo, body, Judge())
    again = Again(body)
    wrong = hashlib.md5(body[:-1], usedforsecurity=False).hexdigest()
    with pytest.raises(IntegrityError, match="content MD5 mismatch"):
        repo.objects.put_stream(io.BytesIO(body), expected_md5=wrong, judge=Judge(), again=again)
    assert again.calls == 0


class _Gated(io.RawIOBase):
    """``body`` read in chunks; at its second chunk it says so (``reached``) and waits for
    ``gate`` (so that several streams are in flight at once), and it may fail there."""

    def __init__(
        self, body: bytes, gate: threading.Barrier, reached: threading.Event, fail: bool
    ) -> None:
        self._body, self._at, self._gate, self._reached = body, 0, gate, reached
        self._fail = fail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if self._at == CHUNK_SIZE:
            self._reached.set()
            self._gate.wait(timeout=30)
            if self._fail:
                raise OSError("the connection broke")
        n = min(len(buffer), len(self._body) - self._at, CHUNK_SIZE)
        memoryview(buffer)[:n] = self._body[self._at : self._at + n]
        self._at += n
        return n


@pytest.mark.parametrize("lead_fails", [False, True])
def test_streams_in_flight_at_once_wait_for_their_lead(tmp_path: Path, lead_fails: bool) -> None:
    """Three equal streams read at the same time (as a backup's workers read three copies of
    a model): the first is judged as read, the others wait for it and take its verdict, or
    are read again and judged when it failed; whatever happens, each stored stream was
    judged."""
    repo = new_repo(tmp_path)
    body = _body(3 * CHUNK_SIZE + 11, 4)
    gate = threading.Barrier(3)
    led = threading.Event()  # the first stream has taken its first chunk
    judges = [Judge() for _ in range(3)]
    results: dict[int, object] = {}

    def run(i: int) -> None:
        if i:
            led.wait(timeout=30)
        stream = _Gated(body, gate, led if i == 0 else threading.Event(), lead_fails and i == 0)
        try:
            reader = io.BufferedReader(stream)
            results[i] = repo.objects.put_stream(reader, judge=judges[i], again=Again(body))[0]
        except Exception as exc:  # recorded for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert isinstance(results[0], OSError) == lead_fails
    stored = {results[i] for i in (1, 2)}
    assert len(stored) == 1 and repo.objects.get_bytes(str(stored.pop())) == body
    seen = [j.seen for j in judges]
    if lead_fails:  # each twin read again and judged
        assert seen[1:] == [len(body), len(body)]
    else:
        assert seen == [len(body), 0, 0]
