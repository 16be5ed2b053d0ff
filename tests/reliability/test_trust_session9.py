"""Trust hunt of session 9 (F): a local source file changed or replaced during a backup,
between the listing and the read. The snapshot records exactly what it stored (its size and
digest are those of the bytes read), or the file is a failed item (exit 3, named): a file
replaced by a FIFO is never waited on, one replaced by a link never followed. The hostile
pack archives of the same hunt are in tests/unit/test_bundle_archive.py.

Runs plain and, with ``AMLPORT_TEST_ENCRYPT=1``, encrypted.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from helpers.rel_workspace import assert_clean_failure, new_workspace
from helpers.rel_workspace import run_in_process as amlport

from amlport.bundle import Repository
from amlport.storage import local

NAME = "outputs/model.bin"
ORIGINAL = os.urandom(300_000)


def _grow(path: Path) -> None:
    with path.open("ab") as fh:
        fh.write(b"appended after the listing" * 200)


def _truncate(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.truncate(100)


def _replace(path: Path) -> None:
    path.unlink()
    path.write_bytes(b"another file under the same name")


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def _link_outside(path: Path) -> None:
    path.unlink()
    path.symlink_to("/etc/hostname")


def _delete(path: Path) -> None:
    path.unlink()


@contextlib.contextmanager
def _unblocking(fifo: Path) -> Iterator[None]:
    """Opens ``fifo`` for writing after a while, so that a reader that waits on it (the
    bug) ends with an empty read instead of hanging the test run."""
    stop = threading.Event()

    def release() -> None:
        if not stop.wait(15):
            with contextlib.suppress(OSError):
                fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
                os.close(fd)

    thread = threading.Thread(target=release, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _backup_changing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path], None], name: str
) -> tuple[int, str, Path, Path]:
    """Back up a workspace whose file ``name`` is changed by ``change`` right before amlport
    first opens it (after the listing)."""
    ws = new_workspace(tmp_path / "ws")
    victim = ws.put_run_file("r1", NAME, ORIGINAL)
    ws.put_run_file("r1", "outputs/small.txt", "hello\n" * 10)
    target = victim.parent / Path(name).name
    changed: list[Path] = []

    for method in ("open_stream", "read_bytes"):
        original = getattr(local.LocalSource, method)

        def wrapped(self, container, blob, *args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            if blob.endswith("dcid.r1/" + name) and not changed:
                changed.append(target)
                change(target)
            return _original(self, container, blob, *args, **kwargs)

        monkeypatch.setattr(local.LocalSource, method, wrapped)
    with _unblocking(target):
        ran = amlport("backup", str(ws.root), "--repo", str(tmp_path / "repo"))
    assert changed, "the file was never opened"
    return ran.returncode, ran.stdout + ran.stderr, tmp_path / "repo", target


def _recorded(repo_path: Path, name: str) -> list[tuple[int, bytes]]:
    """The size and stored bytes of every snapshot entry for ``name``."""
    repo = Repository.open(repo_path)
    out = []
    for info in repo.list_snapshots():
        for entry in repo.load_snapshot(info.id).files:
            if entry.path.endswith("dcid.r1/" + name):
                with repo.objects.open(entry.digest) as fh:
                    out.append((entry.size, fh.read()))
    return out


@pytest.mark.parametrize("change", [_grow, _truncate, _replace], ids=lambda f: f.__name__[1:])
def test_a_file_changed_after_the_listing_is_recorded_as_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: Callable[[Path], None]
) -> None:
    code, said, repo, target = _backup_changing(tmp_path, monkeypatch, change, NAME)
    assert code == 0, said
    ((size, stored),) = _recorded(repo, NAME)
    assert stored == target.read_bytes() and size == len(stored)  # what was read, whole
    assert amlport("verify", str(repo)).returncode == 0


@pytest.mark.parametrize("name", [NAME, "outputs/small.txt"], ids=["streamed", "small"])
@pytest.mark.parametrize(
    ("change", "kind"),
    [
        (_fifo, "it is a FIFO, not a regular file"),
        (_link_outside, "escapes container"),  # a link inside is read through, by design
    ],
    ids=["fifo", "link-outside"],
)
def test_a_file_replaced_by_a_special_file_is_a_failed_item(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: Callable[[Path], None],
    kind: str,
    name: str,
) -> None:
    """Never waited on (a FIFO), never followed out of its container (a link): the file is
    named as failed, the rest is stored, the snapshot is marked incomplete."""
    code, said, repo, _ = _backup_changing(tmp_path, monkeypatch, change, name)
    assert code == 3, said
    assert kind in said and Path(name).name in said
    assert _recorded(repo, name) == []  # nothing recorded for it, not even empty content
    assert amlport("verify", str(repo)).returncode == 0


def test_a_file_deleted_after_the_listing_is_a_failed_item(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, said, repo, _ = _backup_changing(tmp_path, monkeypatch, _delete, NAME)
    assert code == 3 and "model.bin not found" in said, said
    assert _recorded(repo, NAME) == []


def test_a_fifo_archive_given_to_unpack_exits_2_at_once(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pack.tar.gz")
    with _unblocking(tmp_path / "pack.tar.gz"):
        ran = amlport("unpack", str(tmp_path / "pack.tar.gz"), "--repo", str(tmp_path / "r"))
    assert_clean_failure(ran, code=2, says="is a FIFO, not a regular file")
    assert not (tmp_path / "r").exists()


SAS = (
    "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z"
    "&sig=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG%3D"
)


@pytest.mark.parametrize("command", ["backup", "scan"])
def test_a_workspace_file_holding_a_secret_is_refused_before_anything_is_written(
    tmp_path: Path, command: str
) -> None:
    """A SAS pasted into ``resource_group``: exit 2 naming the file and key, the secret never
    printed, no repository created (before: the run stored objects, then refused the
    manifest with a hint for developers). Stored redacted, the value would change the
    workspace's identity (``latest``, ``--source``, the map's ``source:`` match on it)."""
    ws = new_workspace(tmp_path / "ws")
    descriptor = ws.root / "workspace.yaml"
    doc = yaml.safe_load(descriptor.read_text(encoding="utf-8"))
    doc["resource_group"] = "rg-ml?" + SAS
    descriptor.write_text(yaml.safe_dump(doc), encoding="utf-8")
    args = ["--repo", str(tmp_path / "repo")] if command == "backup" else []
    ran = amlport(command, str(ws.root), *args)
    assert_clean_failure(ran, code=2, says="workspace.yaml: resource_group (sas_signature)")
    assert "abcdefghijklmnop" not in ran.stdout + ran.stderr
    assert not (tmp_path / "repo").exists()


SIG = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ%2Fklmnopq%3D"
URL = (
    "https://acct.blob.core.windows.net/c/p/file.bin?sv=2022-11-02&ss=b&srt=co&sp=rl"
    "&se=2030-01-01&sig=" + SIG
)


@pytest.mark.parametrize("width", [30, 32, 35, 37, 48, 49, 50, 80, 95, 98, 120])
def test_no_part_of_a_secret_is_printed_whatever_the_terminal_width(width: int) -> None:
    """The console folds long lines; redaction after the fold missed a signature that was
    folded away from its ``sig=`` (widths 32-37, 48-49, 95-98 printed it whole or in part).
    Printed text and a ``--debug`` traceback's message are redacted before the fold."""
    from amlport.cli.terminal import SafeConsole, line

    buf = io.StringIO()
    console = SafeConsole(file=buf, width=width, force_terminal=False)
    console.print(f"warning: could not read {URL}")
    console.print(line(("amlport: error:", "bold red"), f" cannot read {URL}"))
    try:
        raise RuntimeError(f"request failed: {URL}")
    except RuntimeError:
        console.print_exception(show_locals=False)
    flat = re.sub(r"[\s│]", "", buf.getvalue())
    leaked = [SIG[i : i + 6] for i in range(len(SIG) - 5) if SIG[i : i + 6] in flat]
    assert leaked == [], buf.getvalue()
