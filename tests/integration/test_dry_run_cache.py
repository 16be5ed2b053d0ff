"""A dry run writes nothing anywhere, amlport's own cache folder included (F, session 7:
`export --dry-run` filled the read cache and kept the secret prefilter's compiled database):
it uses what an earlier run kept there, and leaves every file of the folder as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from helpers.backup import WS, cli

SOURCE = WS / "sdk-bikeshare"


def _tree(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every entry under ``folder``: size, mtime and content digest of each file."""
    return {
        p.relative_to(folder).as_posix(): (
            p.stat().st_size,
            p.stat().st_mtime_ns,
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
        )
        for p in sorted(folder.rglob("*"))
    }


def test_a_dry_run_uses_the_cache_and_writes_nothing_in_its_folder(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    first = cli("export", str(SOURCE), "--repo", str(tmp_path / "repo"), "--cache-dir",
                str(cache), "--json")  # fmt: skip
    assert first.returncode in (0, 1), first.stderr
    kept = _tree(cache)
    assert any(name.startswith("walk-") for name in kept), kept
    dry = cli("export", str(SOURCE), "--repo", str(tmp_path / "other"), "--cache-dir",
              str(cache), "--dry-run", "--json")  # fmt: skip
    assert dry.returncode in (0, 1), dry.stderr
    assert json.loads(dry.stdout)["cached_reads"] > 0  # what was kept is used
    assert _tree(cache) == kept
    assert not (tmp_path / "other").exists()


def test_a_dry_run_with_a_new_cache_folder_does_not_make_it(tmp_path: Path) -> None:
    cache = tmp_path / "new-cache"
    dry = cli("export", str(SOURCE), "--repo", str(tmp_path / "repo"), "--cache-dir",
              str(cache), "--dry-run", "--json")  # fmt: skip
    assert dry.returncode in (0, 1), dry.stderr
    assert json.loads(dry.stdout)["cached_reads"] == 0
    assert not cache.exists()
    assert not (tmp_path / "repo").exists()
