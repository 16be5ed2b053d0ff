"""Shared CLI plumbing: consoles, error handling, exit codes, source options."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
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
from rich.text import Text

from amlport.cli.process import Terminated
from amlport.cli.terminal import (
    SafeConsole,
    document_text,
    fold_path,
    line,
    plain,
    styled,
    without_secrets,
)
from amlport.errors import AmlportError, DiskFull, ExitCode, UsageError
from amlport.progress import Progress as ProgressFn  # (rich's Progress is the bar)
from amlport.storage.base import Source
from amlport.storage.opener import StorageAuth, open_source
from amlport.storage.retry_tally import RetryLedger, counting

# Safe by construction (cli/terminal.py): no markup is read, no control character passes.
# Style a fixed label with say()/terminal.line(); print dynamic text as plain strings.
out: Console = SafeConsole(soft_wrap=False)
err: Console = SafeConsole(stderr=True)

# Collect the retries of every storage client a block opens (source, target, repository) for
# ``with_retries`` and ``say_retries``; no Azure SDK import (a local backup never loads it).
counting_retries = counting


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
        err.print(line(("amlport: error:", "bold red"), f" {exc.message}"), soft_wrap=True)
        if exc.hint:
            err.print(f"  hint: {exc.hint}", soft_wrap=True)
        raise typer.Exit(int(exc.exit_code))
    if isinstance(exc, Terminated):
        err.print("amlport: terminated (SIGTERM)")
        raise typer.Exit(int(ExitCode.TERMINATED))
    if isinstance(exc, KeyboardInterrupt):
        err.print("amlport: interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED))
    from amlport.secrets import redact  # its expressions compile on first use: not at start

    message = redact(str(exc))[:300]
    err.print(
        line(("amlport: internal error:", "bold red"), f" {type(exc).__name__}: {message}"),
        soft_wrap=True,
    )
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
# The credential options are declared once, in cli/options.py (one object per concern).
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
    err.print(line(("warning", "yellow"), f" {message}"), soft_wrap=True)


def say(label: str, style: str, message: str) -> None:
    """One line on stderr: a fixed styled label (``skipped``, ``failed``) then plain text."""
    err.print(line((label, style), f" {message}"), soft_wrap=True)


def write_document(text: str, *, is_json: bool = False) -> None:
    """A document (lineage, template, report) on stdout, control characters escaped and
    secrets redacted (a JSON document's strings, so it stays JSON)."""
    text = _json_without_secrets(text) if is_json else without_secrets(text)
    out.file.write(document_text(text, is_json=is_json))


def _json_without_secrets(text: str) -> str:
    """A JSON document with the secrets in its strings redacted: the text is re-written only
    when the pre-check finds one may be there (``json_text``'s form)."""
    from amlport.secrets import may_hold_secret

    if not may_hold_secret(text):
        return text
    try:
        value = json.loads(text)
    except ValueError:  # not JSON after all (a caller's mistake): redacted as text
        return without_secrets(text)
    return json_text(_redact_values(value)) + ("\n" if text.endswith("\n") else "")


def _redact_values(value: Any) -> Any:
    if isinstance(value, str):
        return without_secrets(value)
    if isinstance(value, list):
        return [_redact_values(v) for v in value]
    if isinstance(value, dict):
        return {without_secrets(k): _redact_values(v) for k, v in value.items()}
    return value


def source_from(
    location: str,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: str | None,
    workspace_file: Path | None,
) -> Source:
    if "://" not in location and Path(location).is_file():
        raise UsageError(
            f"SOURCE {location} is a file, not a folder",
            hint="give the folder holding one sub-folder per container (a workspace.yaml "
            "goes in --workspace-file), or an account URL",
        )
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
    check_account_key(account_key, "--account-key")
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


def check_account_key(value: str | None, flag: str) -> None:
    """A storage account key is base64 (88 characters for 512 bits); anything else cannot
    sign a request, and the SDK's failure then read as "access denied ... az login"."""
    if value is None:
        return
    import base64
    import binascii

    try:
        decoded = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if not decoded:
        raise UsageError(
            f"{flag} is not a storage account key: a key is base64 text (88 characters), "
            "this value is not",
            hint="copy key1 or key2 (az storage account keys list, or the portal's Access "
            "keys); a SAS token goes in --sas-token, a connection string in "
            "--connection-string",
        )


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


# --- the --json contract (docs/json.md) ------------------------------------------------------

JSON_VERSION = 1
JsonOpt = typer.Option(
    False, "--json", help="Print the result as one JSON document (docs/json.md)."
)
VerboseOpt = typer.Option(
    False, "--verbose", "-v", help="Also list every item (file, asset, action), not only totals."
)
SHORT_ID = 8  # how snapshot ids are shown in text (restic's short id); --json has them whole
MAX_DETAIL_LINES = 20  # warnings, skipped or failed items shown before "and N more"


def schema_of(command: str) -> str:
    """The ``schema`` of a command's ``--json`` document: ``amlport.<command>/1``; a
    sub-command is joined with a dash (``map init`` is ``amlport.map-init/1``)."""
    return f"amlport.{command.replace(' ', '-')}/{JSON_VERSION}"


def json_document(command: str, doc: dict[str, Any], exit_code: int) -> dict[str, Any]:
    """``doc`` as a document of the contract: ``schema`` and ``exit_code`` added."""
    return {**doc, "schema": schema_of(command), "exit_code": int(exit_code)}


def emit_json(command: str, doc: dict[str, Any], exit_code: int, path: Path | None = None) -> None:
    """Print (or, with ``path``, write) one command's ``--json`` document."""
    write_json(json_document(command, doc, exit_code), path)


def with_retries(doc: dict[str, Any], ledger: RetryLedger) -> dict[str, Any]:
    """``doc`` with ``retries`` (every storage call retried, reads and writes) and
    ``retried`` (reads, writes, and why) of ``ledger``: the ``--json`` of a command that
    transfers (docs/json.md)."""
    tally = ledger.tally()
    return {**doc, "retries": tally.total, "retried": tally.to_dict()}


def say_retries(ledger: RetryLedger) -> None:
    """One line on stderr when storage calls were retried; nothing otherwise."""
    tally = ledger.tally()
    if tally.total:
        say("retried", "yellow", tally.summary())


def short_id(snapshot_id: str | None) -> str:
    """A snapshot id as text shows it: its first 8 hex digits, never wrapped."""
    return (snapshot_id or "-")[:SHORT_ID]


def some(items: list[str], verbose: bool = False) -> tuple[list[str], int]:
    """The items to print one per line and how many are left out (``--verbose``: none)."""
    if verbose or len(items) <= MAX_DETAIL_LINES:
        return items, 0
    return items[:MAX_DETAIL_LINES], len(items) - MAX_DETAIL_LINES


def say_each(label: str, style: str, items: list[str], verbose: bool = False) -> None:
    """``say`` per item, at most ``MAX_DETAIL_LINES`` of them unless ``verbose``."""
    shown, more = some(items, verbose)
    for item in shown:
        say(label, style, item)
    if more:
        say(label, style, f"and {more} more (see --verbose or --json)")


def show_table(
    title: str,
    columns: list[tuple[str, str]],
    rows: list[list[Any]],
    *,
    console: Console | None = None,
) -> None:
    """A table on stdout. ``columns``: (header, kind) with kind ``text``, ``path`` (folded at
    ``/``), ``id`` (never wrapped) or ``num`` (right-aligned).

    Anywhere but a terminal (a pipe, a CI log) it is plain lines: the title, a header, then
    one line per row, fields separated by two spaces, nothing wrapped, so each row can be
    grepped and every id copied whole. On a terminal it is a table when every cell fits
    unwrapped; otherwise one block per row, the first cell on its own line and the others
    below it as ``header: value``, paths folded at ``/``, ids whole (never a column of
    seven-character slivers)."""
    from rich.table import Table

    console = console or out
    # plain() before Text: rich's Text drops BEL, BS, VT, FF and CR silently, so a hostile
    # name would be shown altered instead of escaped (the console's net comes too late).
    texts = [
        [c if isinstance(c, Text) else Text(plain(plain_cell(c))) for c in row] for row in rows
    ]
    if not console.is_terminal:
        console.print(title, soft_wrap=True)
        console.print("  ".join(name for name, _ in columns), soft_wrap=True)
        for row in texts:
            joined = Text("  ").join(cell if cell.plain else Text("-") for cell in row)
            console.print(joined, soft_wrap=True)
        return
    widths = [
        max([len(name)] + [len(row[i].plain) for row in texts])
        for i, (name, _) in enumerate(columns)
    ]
    if sum(widths) + 3 * len(columns) + 1 <= console.width:
        t = Table(title=title, title_justify="left")
        for name, kind in columns:
            t.add_column(name, no_wrap=True, justify="right" if kind == "num" else "left")
        for row in texts:
            t.add_row(*row)
        console.print(t)
        return
    console.print(styled(title, "italic"))
    label = max(len(name) for name, _ in columns[1:]) + 6 if len(columns) > 1 else 6
    width = max(20, console.width - label)
    for row in texts:
        first = row[0].plain if columns[0][1] == "path" else None
        console.print(
            Text(fold_path(first, console.width - 2), style="bold") if first else row[0],
            soft_wrap=columns[0][1] == "id",
        )
        grid = Table.grid()
        grid.add_column(no_wrap=True, width=label)
        grid.add_column(overflow="fold")
        for (name, kind), cell in zip(columns[1:], row[1:], strict=True):
            value = Text(fold_path(cell.plain, width)) if kind == "path" else cell
            grid.add_row(f"    {name}:", value)
        console.print(grid)


def plain_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return text or "-"


def renamed(
    command: str, new: tuple[str, Any], old: tuple[str, Any], *, required: bool = True
) -> Any:
    """The value of an option whose old spelling is kept, hidden, for one release (``export
    --to`` is now ``--repo``): the old one still works with a deprecation warning, both at
    once is a usage error, neither is one when ``required``."""
    (new_flag, new_value), (old_flag, old_value) = new, old
    if old_value is not None and new_value is not None:
        raise UsageError(
            f"{command}: {old_flag} and {new_flag} are the same option", hint=f"give {new_flag}"
        )
    if old_value is not None:
        warn(f"'{command} {old_flag}' is deprecated and goes in the next release: use {new_flag}")
        return old_value
    if new_value is None and required:
        raise UsageError(f"{command}: missing option {new_flag}", hint=f"give {new_flag} REPO")
    return new_value


class JsonItems:
    """An array of a ``--json`` document written item by item (``write_json``), never held
    as a list or as one text: ``ls --json`` of a 100k-file snapshot lists 125k files
    (docs/design/0007, "Peak memory of restore, ls and diff at 100k"). ``items`` is iterated
    once, when the document is written; the text is the one ``json.dumps`` gives the list."""

    def __init__(self, items: Iterable[Any]) -> None:
        self.items = items


_BATCH = 1 << 16  # characters of a streamed document written at once


def json_text(value: Any) -> str:
    """``value`` as every ``--json`` document writes it (docs/json.md), without the newline
    that ends a document."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def _dumps(value: Any, level: int) -> str:
    """``value`` as ``json_text`` writes it ``level`` levels deep (a JSON text has no raw
    newline inside a string: every newline is indentation)."""
    text = json_text(value)
    return text.replace("\n", "\n" + "  " * level) if level else text


def json_chunks(data: dict[str, Any]) -> Iterator[str]:
    """The text ``json_text(data)`` gives (``JsonItems`` as lists), in pieces: one top-level
    value, or one item of an array, at a time."""
    if not data:
        yield "{}"
        return
    yield "{"
    for n, key in enumerate(sorted(data)):
        value = data[key]
        yield ("\n" if n == 0 else ",\n") + "  " + _dumps(key, 0) + ": "
        if not isinstance(value, JsonItems):
            yield _dumps(value, 1)
            continue
        first = True
        for item in value.items:
            yield ("[\n    " if first else ",\n    ") + _dumps(item, 2)
            first = False
        yield "[]" if first else "\n  ]"
    yield "\n}"


def write_json(data: Any, path: Path | None) -> None:
    if isinstance(data, dict) and any(isinstance(v, JsonItems) for v in data.values()):
        _stream_json(data, path)
        return
    text = json_text(data) + "\n"
    if path is None:
        sys.stdout.write(document_text(_json_without_secrets(text), is_json=True))
    else:
        write_text_atomic(path, text)


def _stream_json(data: dict[str, Any], path: Path | None) -> None:
    """``write_json`` of a document with ``JsonItems``: in batches, each escaped as the
    whole document is (``document_text`` escapes character by character)."""
    if path is not None:  # an -o file is written atomically, whole
        write_text_atomic(path, "".join(json_chunks(data)) + "\n")
        return
    batch: list[str] = []
    size = 0
    for chunk in json_chunks(data):
        batch.append(chunk)
        size += len(chunk)
        if size >= _BATCH:
            sys.stdout.write(document_text(_batch_without_secrets(batch), is_json=True))
            batch, size = [], 0
    batch.append("\n")
    sys.stdout.write(document_text(_batch_without_secrets(batch), is_json=True))


def _batch_without_secrets(batch: list[str]) -> str:
    """A batch of ``json_chunks`` with the secrets in its values redacted: one pre-check of
    the batch; only when it may hold one, each chunk that may is re-written (a value: parsed,
    redacted value by value, dumped again; punctuation with a key: redacted as text)."""
    from amlport.secrets import may_hold_secret

    text = "".join(batch)
    if not may_hold_secret(text):
        return text
    out = []
    for chunk in batch:
        if not may_hold_secret(chunk):
            out.append(chunk)
            continue
        out.append(_chunk_without_secrets(chunk))
    return "".join(out)


def _chunk_without_secrets(chunk: str) -> str:
    """One ``json_chunks`` piece redacted: a value (after the ``[``/``,`` that opens an array
    item, if any) value by value, so the document stays JSON; anything else as text."""
    for opening in ("", "[\n    ", ",\n    "):
        if not chunk.startswith(opening):
            continue
        try:
            value = json.loads(chunk[len(opening) :])
        except ValueError:
            continue
        return opening + _dumps(_redact_values(value), 2 if opening else 1)
    return without_secrets(chunk)


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
