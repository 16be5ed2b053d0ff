"""Shared CLI plumbing: consoles, error handling, exit codes, source options."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from amlport.errors import AmlportError, ExitCode, UsageError
from amlport.secrets import redact
from amlport.storage.base import Source
from amlport.storage.opener import StorageAuth, open_source

out = Console(soft_wrap=False)
err = Console(stderr=True)


class State:
    debug = False


def fail(exc: BaseException) -> NoReturn:
    """Report an error in one line (traceback only with --debug) and exit with its code."""
    if State.debug:
        err.print_exception(show_locals=False)
    if isinstance(exc, AmlportError):
        err.print(f"[bold red]amlport: error:[/] {exc.message}", markup=True, highlight=False)
        if exc.hint:
            err.print(f"  hint: {exc.hint}", highlight=False)
        raise typer.Exit(int(exc.exit_code))
    if isinstance(exc, KeyboardInterrupt):
        err.print("amlport: interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    message = redact(str(exc))[:300]
    err.print(
        f"[bold red]amlport: internal error:[/] {type(exc).__name__}: {message}",
        markup=True,
        highlight=False,
    )
    err.print("  hint: re-run with --debug for a traceback and report it", highlight=False)
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


def source_from(
    location: str,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: str | None,
    workspace_file: Path | None,
) -> Source:
    if credential not in (None, "default"):
        raise UsageError(f"unknown --credential {credential!r}", hint="use --credential default")
    explicit = account_key or sas_token or credential or "sig=" in location
    if connection_string is None and not explicit:
        # The environment is a default, not a second credential competing with an explicit one.
        connection_string = os.environ.get(CONNECTION_STRING_ENV) or None
    auth = StorageAuth(
        connection_string=connection_string,
        account_key=account_key,
        sas_token=sas_token,
        use_default_credential=credential == "default",
    )
    return open_source(location, workspace_file=workspace_file, auth=auth)


@contextmanager
def progress_reporter(enabled: bool) -> Iterator[Callable[[str, int, int | None], None] | None]:
    """A rich progress display on stderr when it is a terminal; silent otherwise."""
    if not enabled or not err.is_terminal:
        yield None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        tasks: dict[str, Any] = {}

        def report(phase: str, done: int, total: int | None) -> None:
            label = {"list": "listing blobs", "read": "reading files"}.get(phase, phase)
            if phase not in tasks:
                tasks[phase] = progress.add_task(label, total=total)
            progress.update(tasks[phase], completed=done, total=total)

        yield report


def write_json(data: Any, path: Path | None) -> None:
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if path is None:
        sys.stdout.write(text)
    else:
        write_text_atomic(path, text)


def write_text_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
