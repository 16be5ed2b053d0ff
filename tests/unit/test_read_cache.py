"""The walk's read cache (``walk/cache.py``) on its own: a real SQLite file in a temp folder."""

from __future__ import annotations

import hashlib
import sqlite3
import stat
from pathlib import Path

from amlport.storage.base import BlobInfo
from amlport.walk.cache import MAX_CACHED_FILE, ReadCache

DATA = b"2024-01-01 step finished\n"
MD5 = hashlib.md5(DATA).hexdigest()


def _blob(name: str = "logs/a.txt", data: bytes = DATA, **kw: object) -> BlobInfo:
    fields: dict[str, object] = {"etag": "0x1", "content_md5": hashlib.md5(data).hexdigest()}
    fields.update(kw)
    return BlobInfo("azureml", name, len(data), **fields)  # type: ignore[arg-type]


def _open(folder: Path, warnings: list[str] | None = None) -> ReadCache:
    cache = ReadCache.open(
        folder, "acct-0123", on_warning=(warnings if warnings is not None else []).append
    )
    assert cache is not None
    return cache


def _stored(folder: Path, blob: BlobInfo, data: bytes = DATA) -> None:
    cache = _open(folder)
    cache.put(blob, data)
    cache.finish()


def test_a_file_put_comes_back_while_the_listing_matches(tmp_path: Path) -> None:
    _stored(tmp_path, _blob())
    cache = _open(tmp_path)
    assert cache.get(_blob()) == DATA
    assert cache.hits == 1


def test_a_changed_etag_size_or_md5_is_a_miss(tmp_path: Path) -> None:
    _stored(tmp_path, _blob())
    cache = _open(tmp_path)
    assert cache.get(_blob(etag="0x2")) is None
    assert cache.get(_blob(data=DATA + b"more\n", etag="0x1")) is None  # another size
    assert cache.get(_blob(content_md5="0" * 32)) is None  # same etag, other bytes listed
    assert cache.get(_blob(content_md5=None)) == DATA  # no MD5 listed: the etag decides
    assert cache.hits == 1


def test_nothing_without_an_etag_or_above_the_size_limit(tmp_path: Path) -> None:
    big = b"x" * (MAX_CACHED_FILE + 1)
    cache = _open(tmp_path)
    cache.put(_blob(etag=None), DATA)
    cache.put(_blob("big.txt", big), big)
    cache.put(_blob("part.txt"), DATA[:5])  # a part of the file, not all of it
    cache.finish()
    rows = sqlite3.connect(cache.path).execute("SELECT count(*) FROM reads").fetchone()
    assert rows == (0,)


def test_a_complete_walk_drops_the_files_it_did_not_keep(tmp_path: Path) -> None:
    kept, gone = _blob("kept.txt"), _blob("gone.txt")
    cache = _open(tmp_path)
    cache.put(kept, DATA)
    cache.put(gone, DATA)
    cache.finish()

    cache = _open(tmp_path)
    assert cache.get(kept) == DATA and cache.get(gone) == DATA
    cache.touch(kept)  # `gone` was read but had a finding this time: not touched
    cache.finish()

    cache = _open(tmp_path)
    assert cache.get(kept) == DATA
    assert cache.get(gone) is None


def test_an_incomplete_walk_drops_nothing(tmp_path: Path) -> None:
    _stored(tmp_path, _blob())
    cache = _open(tmp_path)
    cache.close()  # what an interrupted walk does
    assert _open(tmp_path).get(_blob()) == DATA


def test_a_damaged_row_is_a_miss(tmp_path: Path) -> None:
    _stored(tmp_path, _blob())
    cache = _open(tmp_path)
    with sqlite3.connect(cache.path) as db:
        db.execute("UPDATE reads SET data = ?", (b"not zlib",))
    assert cache.get(_blob()) is None


def test_a_file_that_is_not_a_database_is_reported_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "walk-acct-0123.sqlite"
    path.write_bytes(b"this is no SQLite file, but it is someone's " * 50)
    before = path.read_bytes()
    warnings: list[str] = []
    assert ReadCache.open(tmp_path, "acct-0123", on_warning=warnings.append) is None
    assert len(warnings) == 1 and str(path) in warnings[0] and "delete it" in warnings[0]
    assert path.read_bytes() == before


def test_a_folder_that_cannot_be_made_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    warnings: list[str] = []
    assert ReadCache.open(tmp_path / "file" / "sub", "k", on_warning=warnings.append) is None
    assert len(warnings) == 1 and "not used" in warnings[0]


def test_the_cache_is_private_to_its_user(tmp_path: Path) -> None:
    cache = _open(tmp_path / "cache")
    cache.close()
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    assert stat.S_IMODE(cache.path.stat().st_mode) == 0o600


def test_a_write_failure_stops_the_cache_for_the_run_with_one_warning(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = _open(tmp_path, warnings)
    with sqlite3.connect(cache.path) as db:
        db.execute("DROP TABLE reads")
    cache.put(_blob(), DATA)
    cache.finish()
    assert cache.get(_blob()) is None  # closed: no more use
    assert len(warnings) == 1 and "not used further" in warnings[0]


HOSTILE = ["x[/]y.yaml", "[bold]", "a..b/../c", "tab\there", "cr\rlf\n", "del\x7f\x85", "L" * 1024]


def test_a_finished_walk_is_read_back_from_many_threads(tmp_path: Path) -> None:
    """``reader``: what the walk kept, for the transfer's threads, checked against the
    listing as ``get`` checks it; hostile names come back exactly."""
    from concurrent.futures import ThreadPoolExecutor

    files = {name: f"{name!r}\n".encode() * 40 for name in HOSTILE}
    cache = _open(tmp_path)
    for name, data in files.items():
        assert cache.put(_blob(name, data), data)
    cache.finish()
    reader = cache.reader()
    assert reader is not None
    try:
        with ThreadPoolExecutor(4) as pool:
            got = dict(
                zip(files, pool.map(lambda n: reader.get(_blob(n, files[n])), files), strict=True)
            )
        assert got == files
        name = HOSTILE[0]
        assert reader.get(_blob(name, files[name], etag="0x2")) is None  # another version
        assert reader.get(_blob("not/kept.txt")) is None
    finally:
        reader.close()
    assert reader.get(_blob(HOSTILE[0], files[HOSTILE[0]])) is None  # closed: a miss


def test_no_reader_from_a_dry_run_or_a_failed_cache(tmp_path: Path) -> None:
    _stored(tmp_path, _blob())
    dry = ReadCache.open(tmp_path, "acct-0123", on_warning=print, read_only=True)
    assert dry is not None and not dry.put(_blob(), DATA) and not dry.touch(_blob())
    dry.finish()
    assert dry.reader() is None
    warnings: list[str] = []
    cache = _open(tmp_path, warnings)
    with sqlite3.connect(cache.path) as db:
        db.execute("DROP TABLE reads")
    assert cache.put(_blob(), DATA)  # pending: it is written when the walk finishes …
    cache.finish()
    assert warnings and cache.reader() is None  # … and it was not: read from the source
