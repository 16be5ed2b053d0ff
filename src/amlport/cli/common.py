"""Shared CLI plumbing: consoles, error handling, exit codes, source options."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, NoReturn

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from amlport.cli.process import Terminated
from amlport.cli.terminal import SafeConsole, document_text, line
from amlport.errors import AmlportError, DiskFull, ExitCode, UsageError
from amlport.secrets import redact
from amlport.storage.base import Source
from amlport.storage.opener import StorageAuth, open_source

# Safe by construction (cli/terminal.py): no markup is read, no control character passes.
# Style a fixed label with say()/terminal.line(); print dynamic text as plain strings.
out: Console = SafeConsole(soft_wrap=False)
err: Console = SafeConsole(stderr=True)


class State:
    debug = False
    # What this run reads (write guard, docs/design/0004): an output file (-o) may not land
    # inside any of them, however the path is spelled.
    reads: ClassVar[list[Any]] = []


def fail(exc: BaseException) -> NoReturn:
    """Report an error in one line (traceback only with --debug) and exit with its code."""
    if State.debug:
        err.print_exception(show_locals=False)
    if isinstance(exc, OSError) and (full := DiskFull.of(exc)) is not None:
        exc = full  # a full disk (or a size limit) is the user's to fix, not an internal error
    if isinstance(exc, AmlportError):
        err.print(line(("amlport: error:", "bold red"), f" {exc.message}"))
        if exc.hint:
            err.print(f"  hint: {exc.hint}")
        raise typer.Exit(int(exc.exit_code))
    if isinstance(exc, Terminated):
        err.print("amlport: terminated (SIGTERM)")
        raise typer.Exit(int(ExitCode.TERMINATED))
    if isinstance(exc, KeyboardInterrupt):
        err.print("amlport: interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    message = redact(str(exc))[:300]
    err.print(line(("amlport: internal error:", "bold red"), f" {type(exc).__name__}: {message}"))
    err.print("  hint: re-run with --debug for a traceback and report it")
    raise typer.Exit(int(ExitCode.ERROR))


@contextmanager
def guarded() -> Iterator[None]:
    try:
        yield
    except typer.Exit:
        raise
    except (AmlportError, KeyboardInterrupt, Exception) as exc:
        fail(exc)


CONNECTION_STRING_ENV = "AZURE_STORAGE_CONNECTION_STRING"
ConnOpt = typer.Option(
    None,
    "--connection-string",
    help=f"Azure storage connection string (never printed or logged). Default: "
    f"${CONNECTION_STRING_ENV} when no other credential is given.",
    show_default=False,
)
KeyOpt = typer.Option(None, "--account-key", help="Storage account key.", show_default=False)
SasOpt = typer.Option(
    None, "--sas-token", help="SAS token (read+list is enough for a source).", show_default=False
)
CredOpt = typer.Option(
    None,
    "--credential",
    help="'default' to use DefaultAzureCredential (needs amlport[identity]).",
    show_default=False,
)
WsFileOpt = typer.Option(
    None,
    "--workspace-file",
    help="workspace.yaml naming account, containers and datastores (hub workspaces).",
    exists=True,
    dir_okay=False,
)

CacheDirOpt = typer.Option(
    None,
    "--cache-dir",
    file_okay=False,
    help="Folder of the read cache: files the walk parsed, reused while their etag is "
    "unchanged (never secrets). Default: $AMLPORT_CACHE_DIR, $XDG_CACHE_HOME/amlport or "
    "~/.cache/amlport.",
    show_default=False,
)
NoCacheOpt = typer.Option(
    False, "--no-cache", help="Read every parsed file from the source; leave the cache alone."
)


def cache_folder(cache_dir: Path | None, no_cache: bool) -> Path | None:
    """The read cache folder a command uses (``walk/cache.py``), or None for none."""
    if no_cache:
        return None
    from amlport.walk.cache import default_cache_dir

    return cache_dir or default_cache_dir()


def warn(message: str) -> None:
    """One warning line on stderr (what does not change the result or the exit code)."""
    err.print(line(("warning", "yellow"), f" {message}"))


def say(label: str, style: str, message: str) -> None:
    """One line on stderr: a fixed styled label (``skipped``, ``failed``) then plain text."""
    err.print(line((label, style), f" {message}"))


def write_document(text: str, *, is_json: bool = False) -> None:
    """A document (lineage, template, report) on stdout, control characters escaped."""
    out.file.write(document_text(text, is_json=is_json))


def source_from(
    location: str,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: str | None,
    workspace_file: Path | None,
) -> Source:
    auth = auth_from(location, connection_string, account_key, sas_token, credential)
    source = open_source(location, workspace_file=workspace_file, auth=auth)
    reads_from(source)
    return source


def reads_from(source: Source) -> None:
    """Record a source of this run: ``-o`` files are refused inside it (``output_path``)."""
    from amlport.storage.guard import place_of_source

    State.reads.append(place_of_source(source))


def reads_repository(location: str | Path) -> None:
    """Record a repository this run reads (``map init``, ``pack``): an ``-o`` file inside it
    is refused as inside a source (a foreign file in a repository is not what it holds)."""
    from amlport.storage.guard import place_of_repository

    State.reads.append(place_of_repository(location))


def auth_from(
    location: str,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: str | None,
) -> StorageAuth:
    if credential not in (None, "default"):
        raise UsageError(f"unknown --credential {credential!r}", hint="use --credential default")
    explicit = account_key or sas_token or credential or "sig=" in location
    if connection_string is None and not explicit:
        # The environment is a default, not a second credential competing with an explicit one.
        connection_string = os.environ.get(CONNECTION_STRING_ENV) or None
    return StorageAuth(
        connection_string=connection_string,
        account_key=account_key,
        sas_token=sas_token,
        use_default_credential=credential == "default",
    )


ProgressFn = Callable[[str, int, int | None], None]
PHASES = {
    "list": "listing blobs",
    "read": "reading files",
    "export": "exporting",
    "import": "importing",
    "promote": "promoting",
}


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


@contextmanager
def progress_reporter(enabled: bool) -> Iterator[ProgressFn | None]:
    """Progress on stderr when it is a terminal (silent otherwise): items, bytes, rate, ETA.

    Phases report ``(phase, done, total)``; the export phase reports bytes done of bytes planned.
    """
    if not enabled or not err.is_terminal:
        yield None
        return
    columns = (
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=True) as progress:
        tasks: dict[str, Any] = {}
        started: dict[str, float] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                started[phase] = time.monotonic()
                tasks[phase] = progress.add_task(PHASES.get(phase, phase), total=total, detail="")
            detail = f"{done:,}" + (f"/{total:,}" if total else "")
            if phase == "export":
                rate = done / max(time.monotonic() - started[phase], 1e-3)
                detail = f"{_human(done)}/{_human(total or 0)} · {_human(rate)}/s"
            progress.update(tasks[phase], completed=done, total=total, detail=detail)

        yield report


def write_json(data: Any, path: Path | None) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if path is None:
        sys.stdout.write(document_text(text, is_json=True))
    else:
        write_text_atomic(path, text)


def output_path(path: Path) -> Path:
    """Check an ``-o`` file before anything is written, the same way for every command: its
    folder must exist (never created behind the user's back), it must not be a folder, and
    it must not lie inside what the run reads (the write guard's source rule)."""
    from amlport.storage.guard import local_place, refuse_overlap

    folder = path.parent if str(path.parent) else Path(".")
    if path.is_dir():
        raise UsageError(f"-o {path}: is a folder", hint="name a file to write")
    if not folder.is_dir():
        raise UsageError(
            f"-o {path}: the folder {folder} does not exist",
            hint="create it first, or name a file in an existing folder",
        )
    for place in State.reads:
        refuse_overlap(place, local_place(path), "output file")
    return path


def checked_output(value: Path | None) -> Path | None:
    """Typer callback of every ``-o``: the folder check at parse time, before any work."""
    if value is None:
        return None
    try:
        return output_path(value)
    except UsageError as exc:
        raise typer.BadParameter(f"{exc.message} ({exc.hint})") from None


def write_text_atomic(path: Path, text: str) -> None:
    output_path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
