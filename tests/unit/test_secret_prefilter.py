"""The native prefilter of the byte scan (``amlport.secret_prefilter``, docs/design/0005,
"Native secret prefilter"): the scan with it counts exactly what the pure Python scan counts,
on random files fed whole and in chunks, UTF-16 text with any NUL bytes between characters,
and hostile inputs; without the native package the pure scan runs alone."""

from __future__ import annotations

import base64
import random
import re
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bytescan import scan_reusing_one_buffer

from amlport import secret_prefilter, secrets
from amlport.secrets import (
    MIN_RUN,
    OVERLAP,
    PREFILTER_TRIGGERS,
    TRIGGERS,
    ByteScanner,
    find_secrets_in_bytes,
)

NATIVE = secret_prefilter.available()
secret_prefilter.force("auto")  # (available() loaded it: the other tests start as a command)
needs_native = pytest.mark.skipif(not NATIVE, reason="no hyperscan wheel on this platform")

KEY = base64.b64encode(b"K" * 20 + bytes(range(44))).decode()  # 88 characters, ends "=="
SIG = "Zm9vYmFyYmF6cXV4cXV1eHh5ejEyMzQ1Njc4OTAxMjM%3D"
SECRETS = [
    f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY}",
    f"AccountKey={KEY}",
    f"key for the account is {KEY} (rotate)",
    f"https://a.blob.core.windows.net/c/b?sv=2021-08-06&sp=r&sig={SIG}",
    f"x%253Fsv%253D1%2526sig%253D{SIG.replace('%', '%2525')}",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIzNDU2Nzg",
    "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + "q" * 40 + "\n-----END",
    "postgresql://admin:Us3rInf0Pass@db.example.org/x",
    "aws_access_key_id = AKIAQWERTYUIOPASDFGH",
    "GH=ghp_" + "Ab1Cd2Ef3G" * 4,
    "login(hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678)",
    "OpenAI(api_key=sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2)",
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz0123",
    '{"key": "' + base64.b64encode(bytes(range(32))).decode() + '"}',
    'DB_PASSWORD = "PyP4sswordValue"',
    "client_secret: Qx8Q~cl1entS3cretValue",
    "ENV AZURE_CLIENT_SECRET d0ckerS3cretVal",
    base64.b64encode(f"DefaultEndpointsProtocol=https;AccountKey={KEY}".encode()).decode(),
    '"SasToken": "sv=2020&sig=abc"',
]
# Triggers without a secret: places the prefilter reports, runs the Python scan searches.
DECOYS = ["key=", "password: none", "://", "==", "@", "token", "sig=", "hf_", "KEY ", "EyJ"]


def scan(data: bytes, how: str, chunk: int = 0) -> Counter[str]:
    """Count ``data``'s secrets with the pure scan or the prefilter, whole or in chunks fed
    from one reused buffer (as a transfer feeds them)."""
    secret_prefilter.force(how)
    try:
        if not chunk:
            return find_secrets_in_bytes(data)
        return scan_reusing_one_buffer(data, chunk)
    finally:
        secret_prefilter.force("auto")


def _gapped(text: str, rnd: random.Random) -> bytes:
    """``text`` as UTF-16 (either byte order), or with any number of NUL bytes between its
    characters (the scan's UTF-16 runs are any run of printable and NUL bytes)."""
    pick = rnd.random()
    if pick < 0.4:
        return text.encode(rnd.choice(["utf-16-le", "utf-16-be"]))
    out = bytearray()
    for c in text:
        out += c.encode() + b"\x00" * rnd.choice([0, 1, 1, 1, 2, 3])
    return bytes(out)


def _noise(rnd: random.Random, size: int) -> bytes:
    kind = rnd.random()
    if kind < 0.4:
        return rnd.randbytes(size)
    if kind < 0.55:
        return bytes(size)  # zero padding of weights
    if kind < 0.75:  # printable noise with stray NUL and control bytes
        return bytes(rnd.choice(b"abcXYZ019 =@:/\"'\x00\x01\n") for _ in range(size))
    if kind < 0.9:  # UTF-16 noise
        return "".join(rnd.choice("abc key= ://@ ==") for _ in range(size // 2)).encode("utf-16-le")
    return bytes(rnd.choice(b"\x00a\x00b\xff=") for _ in range(size))


def random_file(rnd: random.Random, size: int) -> bytes:
    parts = [_noise(rnd, rnd.randint(0, size)) for _ in range(rnd.randint(1, 5))]
    for _ in range(rnd.randint(0, 4)):
        text = rnd.choice(SECRETS + DECOYS)
        if rnd.random() < 0.3:
            text = text.upper() if rnd.random() < 0.5 else text.swapcase()
        raw = _gapped(text, rnd) if rnd.random() < 0.5 else text.encode()
        parts.insert(rnd.randint(0, len(parts)), raw)
    if rnd.random() < 0.8:
        parts.append(b"\x00")  # mostly binary: the text path is not the prefilter's
    return b"".join(parts)


@needs_native
def test_four_thousand_random_files_whole_count_alike() -> None:
    rnd = random.Random(5)
    found = 0
    for i in range(4000):
        data = random_file(rnd, 1500)
        pure = scan(data, "pure")
        assert scan(data, "native") == pure, (i, data[:200])
        found += bool(pure)
    assert found > 1000  # the seeded secrets are found, not only agreed upon


@needs_native
def test_random_files_fed_in_chunks_count_alike() -> None:
    """Secrets straddle chunk and round boundaries (rounds of 2 * OVERLAP and more)."""
    rnd = random.Random(11)
    for i in range(150):
        data = random_file(rnd, 12_000)
        assert scan(data, "native") == scan(data, "pure"), i
        for chunk in (rnd.randint(1, 50), rnd.randint(1000, 20_000), 1 << 20):
            assert scan(data, "native", chunk) == scan(data, "pure", chunk), (i, chunk)


@needs_native
@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("form", ["bytes", "utf16", "gapped", "utf32le", "utf32be"])
def test_a_secret_straddling_a_round_is_found_by_both(secret: str, form: str) -> None:
    rnd = random.Random(secret)
    raw = {
        "bytes": secret.encode(),
        "utf16": secret.encode("utf-16-le"),
        # numpy's ``<U`` string arrays (.npy, pickles): three NULs beside every character
        "utf32le": secret.encode("utf-32-le"),
        "utf32be": secret.encode("utf-32-be"),
        # UTF-16 with an odd NUL byte more here and there: still one run, one text
        "gapped": b"".join(
            c.encode() + b"\x00" * (1 + 2 * (i % 12 == 11)) for i, c in enumerate(secret)
        ),
    }[form]
    noise = rnd.randbytes(3 * OVERLAP)
    for cut in (1, 9, len(raw) // 2, len(raw) - 1):
        at = 2 * OVERLAP + 100 - cut
        data = noise[:at] + b"\x01" + raw + b"\x01" + noise[at:] + b"\x00"
        pure = scan(data, "pure")
        assert pure, (secret, form)
        assert scan(data, "native") == pure
        chunk = 2 * OVERLAP + 100
        assert scan(data, "native", chunk) == scan(data, "pure", chunk), (secret, form, cut)


def _hostile() -> Iterator[tuple[str, bytes]]:
    mib = 1 << 20
    # (b"eyJ" 16 KiB only: the jwt expression is quadratic on it, in both scans alike)
    for prefix in (b"AccountKey=", b"sig=", b"==", b"://", b"key ", b"eyJ", b"-----BEGIN"):
        size = mib if prefix != b"eyJ" else 16 << 10
        yield f"{size} B of {prefix!r}", b"\x00" + prefix * (size // len(prefix))
        yield (
            f"{size} B of UTF-16 {prefix!r}",
            b"\x00" + prefix.decode().encode("utf-16-le") * (size // (2 * len(prefix))),
        )
    rnd = random.Random(3)
    printable = bytes(rnd.choice(range(32, 127)) for _ in range(mib))
    yield "all-printable binary", b"\x00" + printable
    yield (
        "a huge single line with secrets",
        (b"\x01" + b"x" * mib + f" {SECRETS[5]} ".encode() + b"y" * mib + SECRETS[3].encode()),
    )
    yield (
        "places past the hit limit",
        b"\x00".join(b"ab key=x " + bytes([i % 256]) for i in range(4 * secret_prefilter.MAX_HITS)),
    )
    yield "runs of NUL-split triggers", (b"s\x00\x00e\x00c\x00r\x00e\x00t\x00=\x00" * 50_000)
    yield "UTF-16 probe everywhere", b"a\x00" * mib


@needs_native
@pytest.mark.parametrize("name", [n for n, _ in _hostile()])
def test_hostile_inputs_count_alike(name: str) -> None:
    data = dict(_hostile())[name]
    pure = scan(data, "pure")
    assert scan(data, "native") == pure, name
    assert scan(data, "native", 1 << 20) == scan(data, "pure", 1 << 20), name


@needs_native
def test_more_places_than_the_limit_fall_back_to_the_pure_scan() -> None:
    data = b"\x00" + b"ab key=x \x01" * (2 * secret_prefilter.MAX_HITS)
    secret_prefilter.force("native")
    try:
        prefilter = secret_prefilter.for_buffer(len(data))
        assert prefilter is not None
        assert prefilter.places(data) is None
        assert prefilter.places(data[: 100 * 10]) is not None
    finally:
        secret_prefilter.force("auto")
    assert scan(data, "native") == scan(data, "pure")


@needs_native
def test_every_run_with_a_trigger_holds_a_place() -> None:
    """The expressions are a superset: each trigger, in any case, in the shortest run of
    either kind that the scan searches, at either end of the run, is a place."""
    secret_prefilter.force("native")
    try:
        prefilter = secret_prefilter.for_buffer(1)
        assert prefilter is not None
        for trigger in PREFILTER_TRIGGERS:
            for text in (trigger, trigger.upper()):
                pad = "." * max(0, MIN_RUN - len(text))
                for run in (pad + text, text + pad):
                    data = b"\x01" + run.encode() + b"\x00"
                    assert any(k == secret_prefilter.ONE_BYTE for k, _ in prefilter.places(data))
                for run in ((pad * 2 + text), (text + pad * 2)):
                    for gaps in (1, 2, 0):
                        data = b"\x01" + b"".join(c.encode() + b"\x00" * gaps for c in run)
                        assert any(k == secret_prefilter.WIDE for k, _ in prefilter.places(data))
    finally:
        secret_prefilter.force("auto")


def test_the_prefilter_triggers_cover_every_pattern() -> None:
    """Each pattern needs one of its triggers, and each trigger holds a prefilter trigger;
    url_password's "@" gives way to "://", which its expression spells literally."""
    for pattern in secrets._PATTERNS:
        if pattern.kind == "url_password":
            assert "://" in pattern.regex.pattern
            continue
        for trigger in pattern.triggers:
            assert any(t in trigger for t in PREFILTER_TRIGGERS), trigger
    assert set(PREFILTER_TRIGGERS) - {"://"} <= set(TRIGGERS)


def test_url_password_never_matches_without_its_scheme_separator() -> None:
    rnd = random.Random(8)
    alphabet = "ab:/@.x1 "
    for _ in range(3000):
        text = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(1, 40)))
        if "://" not in text:
            assert not secrets.find_secrets(text)["url_password"], text


def test_redaction_never_makes_a_scheme_separator() -> None:
    """What the prefilter's "://" relies on: replacements insert only REDACTED, null and line
    breaks."""
    for pattern in secrets._PATTERNS:
        assert not re.search(r"[:/]", pattern.replacement)


def test_without_the_native_package_the_pure_scan_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "hyperscan", None)  # import fails as on such a platform
    monkeypatch.setattr(secret_prefilter, "_built", [])  # nothing compiled yet
    secret_prefilter.force("native")
    try:
        assert not secret_prefilter.available()
        assert secret_prefilter.for_buffer(1 << 20) is None
        rnd = random.Random(2)
        for _ in range(50):
            data = random_file(rnd, 4000)
            assert find_secrets_in_bytes(data) == scan(data, "pure")
        secret_prefilter.force("native")
        data = b"\x00" + SECRETS[5].encode() + b"\x00"
        assert find_secrets_in_bytes(data)["jwt"] == 1
    finally:
        secret_prefilter.force("auto")


def test_the_environment_switch_turns_it_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMLPORT_SECRET_PREFILTER", "0")
    secret_prefilter.force("native")
    try:
        assert secret_prefilter.for_buffer(1 << 20) is None
    finally:
        secret_prefilter.force("auto")


@needs_native
def test_it_is_loaded_only_after_the_warm_up() -> None:
    secret_prefilter.force("auto")
    try:
        step = 1 << 20
        for _ in range(secret_prefilter.WARM_UP // step - 1):
            assert secret_prefilter.for_buffer(step) is None
        assert secret_prefilter.for_buffer(step) is not None
        assert secret_prefilter.for_buffer(1) is not None
    finally:
        secret_prefilter.force("auto")


@needs_native
def test_scans_in_several_threads_at_once_count_alike() -> None:
    rnd = random.Random(4)
    files = [random_file(rnd, 30_000) for _ in range(40)]
    expected = [scan(f, "pure") for f in files]
    secret_prefilter.force("native")
    results: dict[int, Counter[str]] = {}

    def work(i: int) -> None:
        for j in range(i, len(files), 4):
            scanner = ByteScanner()
            for at in range(0, len(files[j]), 5000):
                scanner.feed(files[j][at : at + 5000])
            results[j] = scanner.close()

    try:
        threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        secret_prefilter.force("auto")
    assert [results[i] for i in range(len(files))] == expected


# --- the compiled database kept in a cache folder (docs/design/0005, "CPU per MiB and scan
# (F, session 6)") ---


@pytest.fixture
def fresh_process(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """As a new process: nothing compiled, nothing loaded, no folder to keep it in."""
    monkeypatch.setattr(secret_prefilter, "_built", [])
    secret_prefilter.force("auto")
    try:
        yield
    finally:
        secret_prefilter.keep_compiled_in(None)
        secret_prefilter.force("auto")


def _restart(folder: Path) -> None:
    """The next process: the compiled database is gone from memory, the folder stays."""
    secret_prefilter._built.clear()
    secret_prefilter.force("auto")
    secret_prefilter.keep_compiled_in(folder)


def _counts_alike_from_the_first_buffer() -> None:
    rnd = random.Random(11)
    files = [random_file(rnd, 20_000) for _ in range(60)]
    expected = []
    for f in files:
        expected.append(scan(f, "pure"))
        secret_prefilter.force("auto")  # (scan() left auto mode, as a new command starts)
    secret_prefilter.force("auto")
    assert secret_prefilter.for_buffer(1) is not None  # no warm-up: the kept one is loaded
    assert [find_secrets_in_bytes(f) for f in files] == expected


@needs_native
def test_a_kept_database_is_used_from_the_first_buffer(fresh_process: None, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    secret_prefilter.keep_compiled_in(folder)
    assert secret_prefilter.for_buffer(1 << 20) is None  # nothing kept yet: the warm-up
    assert secret_prefilter.available()  # compiles, and keeps it
    kept = list(folder.iterdir())
    assert [p.name for p in kept] == [secret_prefilter._kept_path().name]
    assert kept[0].stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    before = kept[0].read_bytes()
    _restart(folder)
    assert secret_prefilter._built == []
    _counts_alike_from_the_first_buffer()
    assert kept[0].read_bytes() == before  # loaded, not compiled and written again


@needs_native
@pytest.mark.parametrize("damage", ["flipped", "truncated", "empty", "garbage", "foreign"])
def test_a_damaged_or_foreign_kept_database_is_compiled_anew(
    fresh_process: None, tmp_path: Path, damage: str
) -> None:
    import hyperscan

    folder = tmp_path / "cache"
    secret_prefilter.keep_compiled_in(folder)
    assert secret_prefilter.available()
    path = secret_prefilter._kept_path()
    assert path is not None
    good = path.read_bytes()
    if damage == "flipped":
        bad = bytearray(good)
        bad[len(bad) // 2] ^= 0xFF
        path.write_bytes(bytes(bad))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 3])
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "garbage":
        path.write_bytes(random.Random(1).randbytes(len(good)))
    else:  # a valid database of another mode: loads, but cannot scan a block
        db = hyperscan.Database(mode=hyperscan.HS_MODE_STREAM)
        db.compile(expressions=[b"key"], ids=[1], elements=1, flags=0)
        path.write_bytes(hyperscan.dumpb(db))
    _restart(folder)
    _counts_alike_from_the_first_buffer()
    replaced = hyperscan.loadb(path.read_bytes(), hyperscan.HS_MODE_BLOCK)  # a good one now
    again = secret_prefilter.Prefilter(hyperscan, PREFILTER_TRIGGERS, MIN_RUN, database=replaced)
    assert again.finds_every_trigger(PREFILTER_TRIGGERS, MIN_RUN)


@needs_native
@pytest.mark.parametrize("left_out", ["==", "key=", "://", "accountkey%3d"])
def test_a_kept_database_missing_a_trigger_is_not_trusted(
    fresh_process: None, tmp_path: Path, left_out: str
) -> None:
    """A valid database that would miss places (one compiled from other expressions, kept
    under this name) fails the self-check: it is compiled anew, and the secret behind the
    missing trigger is still found from the first buffer."""
    import hyperscan

    folder = tmp_path / "cache"
    secret_prefilter.keep_compiled_in(folder)
    path = secret_prefilter._kept_path()
    assert path is not None
    fewer = [t for t in PREFILTER_TRIGGERS if t != left_out]
    assert len(fewer) == len(PREFILTER_TRIGGERS) - 1
    db = secret_prefilter.compile_database(hyperscan, secret_prefilter.expressions(fewer, MIN_RUN))
    folder.mkdir()
    path.write_bytes(hyperscan.dumpb(db))
    partial = secret_prefilter.Prefilter(hyperscan, fewer, MIN_RUN, database=db)
    assert not partial.finds_every_trigger(PREFILTER_TRIGGERS, MIN_RUN)
    _restart(folder)
    prefilter = secret_prefilter.for_buffer(1)
    assert prefilter is not None
    assert prefilter.finds_every_trigger(PREFILTER_TRIGGERS, MIN_RUN)
    data = b"\x00\xff" + f"AccountKey={KEY}".encode() + b"\x00\xff"
    assert find_secrets_in_bytes(data)["account_key"] == 1
    assert path.read_bytes() != hyperscan.dumpb(db)  # replaced by the compiled one


@needs_native
def test_a_folder_that_cannot_be_written_only_means_compiling(
    fresh_process: None, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"not a folder")
    secret_prefilter.keep_compiled_in(blocker / "cache")
    assert secret_prefilter.for_buffer(1 << 20) is None  # nothing kept: the warm-up applies
    assert secret_prefilter.available()
    assert blocker.read_bytes() == b"not a folder"
    assert [p.name for p in tmp_path.iterdir()] == ["a-file"]


@needs_native
def test_without_a_folder_nothing_is_kept(
    fresh_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    secret_prefilter.keep_compiled_in(None)
    assert secret_prefilter._kept_path() is None
    assert secret_prefilter.available()
    assert list(tmp_path.iterdir()) == []


@needs_native
def test_a_dry_run_uses_a_kept_database_and_writes_none(
    fresh_process: None, tmp_path: Path
) -> None:
    """``keep_compiled_in(folder, write=False)`` (``export --dry-run``): no folder made, no
    database written when there is none; one kept there is used, and left as it was."""
    folder = tmp_path / "cache"
    secret_prefilter.keep_compiled_in(folder, write=False)
    assert secret_prefilter.available()  # compiled here, kept nowhere
    assert not folder.exists()
    _restart(folder)  # a real run keeps one
    assert secret_prefilter.available()
    kept = secret_prefilter._kept_path()
    assert kept is not None and kept.is_file()
    stamp = kept.stat().st_mtime_ns
    secret_prefilter._built.clear()  # the next process, a dry run
    secret_prefilter.force("auto")
    secret_prefilter.keep_compiled_in(folder, write=False)
    _counts_alike_from_the_first_buffer()  # the kept one, from the first buffer
    assert [p.name for p in folder.iterdir()] == [kept.name]
    assert kept.stat().st_mtime_ns == stamp


@needs_native
def test_the_environment_switch_wins_over_a_kept_database(
    fresh_process: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "cache"
    secret_prefilter.keep_compiled_in(folder)
    assert secret_prefilter.available()
    _restart(folder)
    monkeypatch.setenv("AMLPORT_SECRET_PREFILTER", "0")
    assert secret_prefilter.for_buffer(1) is None


@needs_native
def test_backup_keeps_the_compiled_database_in_its_cache_folder(tmp_path: Path) -> None:
    """End to end: the first backup that scans more than the warm-up of binary bytes keeps
    the database in ``--cache-dir``; the next backup uses it (the file is not written again)
    and still withholds a UTF-16 account key at the end of a large binary file."""
    import shutil

    from helpers.cliutil import amlport

    source = tmp_path / "ws"
    shutil.copytree(Path(__file__).parents[2] / "fixtures/workspaces/designer-autoprice", source)
    model = next(source.rglob("trained_model_outputs/data.ilearner"))
    weights = random.Random(5).randbytes(secret_prefilter.WARM_UP + (1 << 20))
    model.write_bytes(weights)
    cache = tmp_path / "cache"
    first = amlport(
        "backup", str(source), "--repo", str(tmp_path / "r1"), "--cache-dir", str(cache)
    )
    assert first.returncode in (0, 1), first.stderr
    kept = list(cache.glob("secret-prefilter-*.hsdb"))
    assert len(kept) == 1 and kept[0].stat().st_mode & 0o777 == 0o600
    stamp = kept[0].stat().st_mtime_ns, kept[0].read_bytes()

    model.write_bytes(weights + f"\x00AccountKey={KEY}\x00".encode("utf-16-le"))
    second = amlport(
        "backup", str(source), "--repo", str(tmp_path / "r2"), "--cache-dir", str(cache)
    )
    assert second.returncode in (0, 1), second.stderr
    assert "data.ilearner" in second.stderr and "account_key" in second.stderr  # withheld
    assert (kept[0].stat().st_mtime_ns, kept[0].read_bytes()) == stamp
