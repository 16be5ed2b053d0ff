"""The byte scanner of binary files (``find_secrets_in_bytes``, ``ByteScanner``): one mask
for one-byte and UTF-16 runs, a stream fed from a buffer its caller reuses, secrets across
chunk boundaries, and runs far longer than a chunk (docs/design/0005, "Large blobs")."""

from __future__ import annotations

import base64
import itertools
import random
import re
from collections.abc import Iterator

import pytest
from helpers.bytescan import scan_reusing_one_buffer

from amlport import secret_prefilter
from amlport.secrets import (
    _MASK,
    _PROBES,
    MIN_RUN,
    OVERLAP,
    ByteScanner,
    _printable_runs,
    find_secrets_in_bytes,
)


@pytest.fixture(autouse=True, params=["pure", "native"])
def scan_mode(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test here runs with the pure scan and with the native prefilter forced on
    (amlport.secret_prefilter; without its package both runs are the pure scan)."""
    secret_prefilter.force(request.param)
    yield
    secret_prefilter.force("auto")


KEY = base64.b64encode(b"K" * 20 + bytes(range(44))).decode()  # 88 characters, ends "=="
SECRETS = {
    "connection_string": f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY}",
    "sas_signature": "https://a.blob.core.windows.net/c/b?sv=2021-08-06&sp=r&sig="
    + "Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1Njc4OTAxMjM%3D",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIzNDU2Nzg",
    "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEA"
    + "q" * 40
    + "\n-----END PRIVATE KEY-----",
}
NOISE = bytes(range(256)) * 4  # binary: NUL bytes, control bytes, a printable run of 95


@pytest.mark.parametrize("kind", sorted(SECRETS))
@pytest.mark.parametrize("wide", [False, True], ids=["bytes", "utf16"])
def test_a_secret_straddling_a_chunk_boundary_is_found(kind: str, wide: bool) -> None:
    secret = SECRETS[kind].encode("utf-16-le" if wide else "ascii")
    chunk = 4 * OVERLAP  # a round per feed: every boundary is a real one
    for cut in (1, 2, 9, 10, len(secret) // 2, len(secret) - 1):
        data = NOISE * 40
        at = 3 * chunk - cut  # the secret's first ``cut`` bytes end the third chunk
        data = data[:at] + secret + data[at:]
        whole = find_secrets_in_bytes(data)
        assert whole[kind] >= 1, (kind, wide)
        assert dict(scan_reusing_one_buffer(data, chunk)) == dict(whole), (kind, wide, cut)


def test_a_printable_run_far_longer_than_a_chunk_is_searched_everywhere() -> None:
    """A 1 GiB-like printable run (simulated: 40 chunks of one), a NUL before it so that it
    is binary: secrets at its start, across chunk boundaries and at its end are found."""
    chunk = 64 * 1024
    text = bytearray(b"lorem ipsum dolor sit amet " * (40 * chunk // 27))
    jwt = f" {SECRETS['jwt']} ".encode()
    for at in (0, 5 * chunk - 20, 17 * chunk - 3, len(text) - len(jwt)):
        text[at : at + len(jwt)] = jwt
    data = b"\x00\x01" + bytes(text) + b"\x00"
    whole = find_secrets_in_bytes(data)
    assert whole["jwt"] == 4
    assert dict(scan_reusing_one_buffer(data, chunk)) == dict(whole)


def _reference_runs(mask: bytes, probe: bytes, stops: bytes) -> list[tuple[int, int]]:
    """Every longest run of bytes not in ``stops`` that holds ``probe``, the slow way."""
    stop_class = b"".join(re.escape(bytes([s])) for s in stops)
    return [m.span() for m in re.finditer(b"[^" + stop_class + b"]+", mask) if probe in m.group(0)]


def _masks() -> Iterator[bytes]:
    rnd = random.Random(19)
    for _ in range(300):
        alphabet = rnd.choice([b"a\x00z", b"aaaa\x00z", b"az", b"a\x00", b"aaaaaaaaaz"])
        yield bytes(rnd.choice(alphabet) for _ in range(rnd.randint(0, 400)))
    # hostile: many runs and a single stop byte of one kind, at the very end or start
    yield (b"a" * MIN_RUN + b"z") * 500 + b"\x00"
    yield b"\x00" + (b"a" * MIN_RUN + b"z") * 500
    yield (b"az" * MIN_RUN + b"\x00") * 300 + b"a" * 5000


def test_printable_runs_match_a_reference_on_every_mask() -> None:
    for mask in _masks():
        for probe, stops in _PROBES:
            assert list(_printable_runs(mask, probe, stops)) == _reference_runs(
                mask, probe, stops
            ), (mask[:80], probe, stops)


def test_the_mask_classes() -> None:
    assert _MASK[0] == ord("z")
    printable = {b for b in range(256) if _MASK[b] == ord("a")}
    assert printable == set(range(32, 127)) | {9, 10, 13}
    assert all(_MASK[b] == 0 for b in range(256) if b and b not in printable)


def test_text_and_binary_agree_with_the_stream_on_random_data() -> None:
    rnd = random.Random(7)
    for _ in range(40):
        parts = [rnd.randbytes(rnd.randint(0, 3000)) for _ in range(6)]
        secret = SECRETS[rnd.choice(sorted(SECRETS))].encode()
        if rnd.random() < 0.5:
            secret = secret.decode().encode("utf-16-be")
        parts.insert(rnd.randint(0, len(parts)), b"\x00" + secret + b"\x00\x00")
        data = b"".join(parts)
        whole = find_secrets_in_bytes(data)
        assert whole, "the seeded secret is found"
        for chunk in (1, 1000, 3 * OVERLAP + 1):
            assert dict(scan_reusing_one_buffer(data, chunk)) == dict(whole)


def test_short_feeds_are_kept_until_a_round_and_not_aliased() -> None:
    scanner = ByteScanner()
    buffer = bytearray(SECRETS["jwt"].encode() + b"\x00")
    scanner.feed(memoryview(buffer))  # under a round: kept as a copy
    buffer[:] = b"\x01" * len(buffer)
    assert scanner.close() == find_secrets_in_bytes(SECRETS["jwt"].encode() + b"\x00")


@pytest.mark.parametrize("gap", [10, 3 * OVERLAP], ids=["near", "rounds-apart"])
def test_two_utf16_secrets_apart_count_twice_whole_or_in_tiny_chunks(gap: int) -> None:
    """Two UTF-16 account keys with NUL bytes between them: a whole-file scan joined them
    into one text (one match) while a scan fed 13 bytes at a time saw them in two rounds
    (two); both say two now, and a one-byte key beside a UTF-16 one is two as well."""
    key = f"AccountKey={KEY}"
    for first in (key.encode("utf-16-le"), key.encode()):
        data = b"\x00" + first + b"\x00" * gap + key.encode("utf-16-le") + b"\x00"
        assert find_secrets_in_bytes(data)["account_key"] == 2
        assert dict(scan_reusing_one_buffer(data, 13)) == {"account_key": 2}


@pytest.mark.parametrize("order", ["<", ">"])
def test_a_secret_in_a_numpy_string_array_is_found(order: str) -> None:
    """numpy's fixed-width string arrays hold UTF-32 (three NUL bytes beside every ASCII
    character): a key saved in one (.npy) was not found, whole or fed in chunks, before the
    scan took UTF-32 runs for text."""
    np = pytest.importorskip("numpy")
    import io

    out = io.BytesIO()
    values = ["column-a", SECRETS["connection_string"], "x" * 40]
    np.save(out, np.array(values, dtype=f"{order}U200"))
    data = out.getvalue()
    assert find_secrets_in_bytes(data) == {"connection_string": 1}
    assert dict(scan_reusing_one_buffer(data, 13)) == {"connection_string": 1}


def _feeds(data: bytes, sizes: list[int]) -> Iterator[bytes]:
    at, turn = 0, 0
    while at < len(data):
        size = sizes[turn % len(sizes)]
        yield data[at : at + size]
        at, turn = at + size, turn + 1


@pytest.mark.parametrize(
    "sizes",
    [
        [4 * OVERLAP],  # rounds of one size: one round buffer, overwritten each round
        [3 * OVERLAP + 1, 5 * OVERLAP - 7, 3 * OVERLAP + 1],  # a size change each round
        [6 * OVERLAP, 7, 2 * OVERLAP + 1, 6 * OVERLAP],  # short feeds kept between rounds
    ],
    ids=["same-size", "changing", "short-between"],
)
@pytest.mark.parametrize("form", ["bytes", "bytearray", "view", "wide-view"])
def test_a_scanner_fed_rounds_of_any_size_and_form_counts_what_the_whole_holds(
    sizes: list[int], form: str
) -> None:
    """The scanner copies each round into one buffer it keeps (docs/design/0005, "CPU per
    MiB (E, session 10)"): what it carries to the next round (the context before, the
    overlap) must be its own bytes, not a view of that buffer, and a round of another size
    must not see a longer round's stale bytes. Secrets, one-byte and UTF-16, stand across
    every kind of boundary, in the overlap and at the very end (in a short last chunk),
    beside a look-alike (a token cut one byte short); fed as bytes, bytearray, a reused
    buffer's view, or a view of 4-byte items, the counts are the whole file's."""
    from array import array

    wide = SECRETS["connection_string"].encode("utf-16-le")
    jwt = SECRETS["jwt"].encode()
    data = bytearray(NOISE * 200)  # 200 KiB: some twenty rounds
    ends = list(itertools.accumulate(len(p) for p in _feeds(data, sizes)))[1:6]
    for n, end in enumerate(ends):
        secret = (wide, jwt)[n % 2]
        at = end - len(secret) // 2 - n  # across a boundary, a little earlier each time
        data[at : at + len(secret)] = secret
    data[ends[-1] + 2 * OVERLAP : ends[-1] + 2 * OVERLAP + len(jwt) - 1] = jwt[:-1]  # look-alike
    data += b"\x00" + wide  # a key that is the very last bytes of the stream
    data = bytes(data)
    whole = find_secrets_in_bytes(data)
    assert whole["connection_string"] == 4 and whole["jwt"] >= 2
    scanner = ByteScanner()
    reused = bytearray(max(sizes))
    for piece in _feeds(data, sizes):
        if form == "bytes":
            scanner.feed(piece)
        elif form == "bytearray":
            scanner.feed(bytearray(piece))
        elif form == "view":
            reused[: len(piece)] = piece
            scanner.feed(memoryview(reused)[: len(piece)])
            reused[:] = b"\x01" * len(reused)  # the next read lands here
        elif len(piece) % 4 == 0:
            scanner.feed(memoryview(array("I", piece)))
        else:
            scanner.feed(piece)
    assert dict(scanner.close()) == dict(whole)
