"""The CLI process tunes glibc's malloc (peak RSS of threaded transfers), stops on SIGTERM
as on Ctrl-C, and starts lean (no audit modules; the start-up heap frozen)."""

from __future__ import annotations

import ctypes.util
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from amlport.cli import process

GLIBC = sys.platform.startswith("linux") and "libc.so.6" in str(ctypes.util.find_library("c"))
ENV = {"arena_max": "MALLOC_ARENA_MAX", "mmap_threshold": "MALLOC_MMAP_THRESHOLD_"}


def _clear(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV.values():
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(not GLIBC, reason="glibc only")
def test_both_settings_are_made_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    assert process.tune_malloc() == {"arena_max": True, "mmap_threshold": True}


@pytest.mark.parametrize("setting", sorted(ENV))
def test_the_environment_wins(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setenv(ENV[setting], "8")
    tuned = process.tune_malloc()
    assert tuned[setting] is False
    assert all(done == GLIBC for name, done in tuned.items() if name != setting)


def test_other_platforms_are_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    _clear(monkeypatch)
    monkeypatch.setattr(process.sys, "platform", "darwin")
    assert process.tune_malloc() == {"arena_max": False, "mmap_threshold": False}


def test_the_first_sigterm_stops_like_ctrl_c_and_later_ones_wait_for_it() -> None:
    """SIGTERM raises ``Terminated`` (a KeyboardInterrupt: every Ctrl-C clean-up runs); a
    second one while that clean-up runs is ignored instead of cutting it short."""
    before = signal.getsignal(signal.SIGTERM)
    try:
        process.stop_on_sigterm()
        with pytest.raises(process.Terminated) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler runs before this ends
        assert isinstance(stopped.value, KeyboardInterrupt)
        os.kill(os.getpid(), signal.SIGTERM)  # ignored now: the process goes on
        time.sleep(0.05)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, before)


def _run_python(code: str) -> str:
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return res.stdout.strip()


def test_the_cli_starts_without_the_audit_modules() -> None:
    """Only `audit` loads them: every other command (a scheduled backup) would pay for them."""
    code = "import sys, amlport.cli.app; print(sorted(m for m in sys.modules if 'audit' in m))"
    assert _run_python(code) == "['amlport.cli.audit_cmd']"


# What a command that does not walk, list or read a workspace never needs at start: the lineage
# graph's networkx, the storage SDK and obstore, the walk, and the secret expressions (they
# compile when imported: 60-90 ms). docs/design/0005, "Scan and start-up (D, session 7)".
LAZY_AT_START = (
    "networkx",
    "azure.core",
    "azure.storage.blob",
    "obstore",
    "amlport.walk",
    "amlport.lineage.graph",
    "amlport.secrets",
    "amlport.secret_prefilter",
)


@pytest.mark.parametrize("argv", [["--help"], ["scan", "--help"], ["backup", "--help"]])
def test_help_loads_none_of_the_heavy_modules(argv: list[str]) -> None:
    """``amlport --help`` in a process of its own, then the modules it loaded."""
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['amlport', *{argv!r}]\n"
        "try:\n"
        "    runpy.run_module('amlport', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('LOADED', sorted(m for m in {LAZY_AT_START!r} if m in sys.modules))"
    )
    out = _run_python(code)
    assert "Usage" in out
    assert out.splitlines()[-1] == "LOADED []"


def test_a_backup_opens_its_source_before_loading_the_repository(tmp_path: Path) -> None:
    """The repository's options (``--key-file``, ``--encrypt``) load the repository's
    modules only when given: a backup's source (and an Azure source's listing) is opened
    before them. Here the source is missing, so the command ends before any repository."""
    missing = tmp_path / "no such [workspace] .."
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['amlport', 'backup', {str(missing)!r}, '--repo', {str(tmp_path / 'r')!r}]\n"
        "try:\n"
        "    runpy.run_module('amlport', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    print('EXIT', exc.code)\n"
        "print('LOADED', 'amlport.bundle.repository' in sys.modules)"
    )
    out = _run_python(code).splitlines()
    assert out[-2:] == ["EXIT 2", "LOADED False"]
    assert not (tmp_path / "r").exists()


def test_the_cli_starts_without_the_repository() -> None:
    """`scan` never opens a repository: the CLI starts without the repository machinery
    (``bundle/__init__.py`` loads its names on first use) and the commands that open one
    import it then; every name of ``amlport.bundle`` still resolves."""
    code = (
        "import sys, amlport.cli.app\n"
        "heavy = ('repository', 'archive', 'trees', 'snapshots', 'garbage', 'verification')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[-1] in heavy))\n"
        "import amlport.bundle as b\n"
        "from amlport.bundle import unpack\n"
        "print(all(getattr(b, n) is not None for n in b.__all__), unpack == b.Repository.unpack)\n"
        "from amlport.bundle import archive\n"
        "from amlport.bundle.repository import Warnings\n"
        "from amlport.bundle.notices import Warnings as W\n"
        "print(archive.__name__, Warnings is W, hasattr(b, 'no_such_name'))"
    )
    assert _run_python(code).splitlines() == [
        "[]",
        "True True",
        "amlport.bundle.archive True False",
    ]


def test_the_audit_format_names_are_the_reporters_formats() -> None:
    from amlport.audit.report_formats import FORMATS
    from amlport.cli.audit_cmd import FORMAT_NAMES

    assert FORMAT_NAMES == FORMATS


def test_main_keeps_the_start_up_heap_out_of_later_collections() -> None:
    code = (
        "import gc, sys\n"
        "from amlport.cli import app\n"
        "sys.argv = ['amlport', '--version']\n"
        "before = gc.get_freeze_count()\n"
        "try:\n    app.main()\nexcept SystemExit:\n    pass\n"
        "print(before, gc.get_freeze_count() > 10000)"
    )
    assert _run_python(code).splitlines()[-1] == "0 True"


def test_a_local_backup_never_loads_the_azure_sdk(tmp_path: Path) -> None:
    """Counting retries (``backup --json`` reports them) must not import the storage SDK: a
    local copy backed up into a local folder has no Azure client to count (0.4 s of start-up
    that a nightly backup of a local copy paid for nothing)."""
    source = tmp_path / "ws" / "azureml"
    source.mkdir(parents=True)
    (source / "notes.txt").write_text("hello\n")
    code = (
        "import sys\n"
        "from amlport.cli import app\n"
        f"sys.argv = ['amlport', 'backup', {str(tmp_path / 'ws')!r}, '--repo',"
        f" {str(tmp_path / 'repo')!r}, '--json']\n"
        "try:\n    app.main()\nexcept SystemExit as stop:\n    code = stop.code\n"
        "print(code, sorted({m.split('.')[1] for m in sys.modules if m.startswith('azure.')}))"
    )
    last = _run_python(code).splitlines()[-1]
    assert last == "0 []", last
