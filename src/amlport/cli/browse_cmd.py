"""``ls`` and ``dump``: browse a snapshot and extract one file (restic's verbs).

Both read only, need the key of an encrypted repository, and name the snapshot as every
command does (``REPO@ID``, ``--snapshot ID``, ``latest`` of ``--source``; cli/repo_options.py).
A snapshot's paths are its bundle paths (docs/bundle-format.md): ``files/<datastore>/<path>``
for the workspace's blobs, ``assets/…`` for the v2 YAML, ``pipelines/…`` for the portable
description of designer pipelines. ``dump`` writes a file's bytes, checked against its digest,
to stdout or ``-o FILE``; it refuses to put bytes that are not text on a terminal unless
``--force``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import typer

from amlport.cli import common
from amlport.cli.common import guarded
from amlport.cli.options import REPO, RepoCredentials, output_option, shared_options
from amlport.cli.repo_options import (
    REPO_AT_HELP,
    RepoKeyFileOpt,
    SnapshotOpt,
    SourceOpt,
)
from amlport.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from amlport.model.manifest import FileEntry, Manifest

CHUNK = 1 << 20
SNIFF = 8192  # bytes looked at to tell text from binary (as git and less do)
_TEXT_CONTROLS = {9, 10, 12, 13}  # tab, newline, form feed, carriage return


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("dump")(dump)


def _bundle_path(path: str | None) -> str:
    """PATH as the snapshot spells its files: ``/``-separated, relative, no ``.``/``..``
    (a name the snapshot does not hold is then an error that shows it escaped)."""
    if path is None:
        return ""
    text = path.strip("/")  # a control character may be part of a stored name: not refused
    if any(part in (".", "..") for part in text.split("/")) or "//" in text:
        raise UsageError(
            f"PATH {path!r} is not a path inside a snapshot",
            hint="give it as `amlport ls` lists it (files/<datastore>/<path>, assets/…), "
            "without '.', '..' or empty segments",
        )
    return text


def _under(manifest: Manifest, path: str) -> list[FileEntry]:
    """The file ``path`` names, or the files below the folder it names (sorted)."""
    if not path:
        return sorted(manifest.files, key=lambda f: f.path)
    prefix = path + "/"
    return sorted(
        (f for f in manifest.files if f.path == path or f.path.startswith(prefix)),
        key=lambda f: f.path,
    )


def _not_in_snapshot(manifest: Manifest, path: str, what: str = "file or folder") -> UsageError:
    return UsageError(
        f"snapshot {common.short_id(manifest.snapshot_id)} holds no {what} {path!r}",
        hint="list its paths with `amlport ls REPO@ID` (a folder lists what is below it)",
    )


@shared_options
def ls(
    repo: str = typer.Argument(..., metavar="REPO[@SNAPSHOT]", help=REPO_AT_HELP),
    path: str | None = typer.Argument(
        None,
        metavar="[PATH]",
        help="Only this file, or the files below this folder (as ls lists them: "
        "files/<datastore>/<path>, or below assets/ or pipelines/).",
        show_default=False,
    ),
    snapshot: str | None = SnapshotOpt,
    source: str | None = SourceOpt,
    long: bool = typer.Option(
        False, "--long", "-l", help="Also print each file's size and digest."
    ),
    assets: bool = typer.Option(
        False,
        "--assets",
        help="List the snapshot's assets (kind, name, files) instead: the names "
        "`restore --select KIND:NAME` takes.",
    ),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """List the files of a snapshot (default: the latest), or of one folder of it.

    Paths are the snapshot's: files/<datastore>/<path> for the workspace's blobs, assets/ for
    v2 YAML, pipelines/ for designer pipelines. --assets lists the assets instead (the names
    restore --select takes). Exit 0 listed, 2 bad repository, snapshot or PATH (a PATH the
    snapshot does not hold), 4 a damaged snapshot.
    """
    with guarded():
        arg = repo_creds.arg(
            repo,
            snapshot=snapshot,
        )
        wanted = _bundle_path(path)
        repository = arg.open()
        with repository, repository.lock(exclusive=False):  # no prune under us
            from amlport.model.loadplan import LoadPlan

            # files and assets only: the lineage and rewrite records are not listed
            manifest = arg.pick(repository, source, plan=LoadPlan.only("files", "assets"))
            location = repository.location
        entries = _under(manifest, wanted)
        if wanted and not entries:
            raise _not_in_snapshot(manifest, wanted)
        listed = [a for a in manifest.assets if not wanted or _asset_under(a.files, wanted)]
        doc: dict[str, Any] = {
            "repository": location,
            "snapshot": str(manifest.snapshot_id),
            "created": manifest.created,
            "path": wanted or None,
            # written item by item: 125k dicts and their text at 100k files (design 0007)
            "files": common.JsonItems(
                {"path": f.path, "size": f.size, "digest": f.digest} for f in entries
            ),
            "assets": [
                {"kind": a.kind, "name": a.name, "id": a.id, "files": len(a.files)}
                for a in sorted(listed, key=lambda a: (a.kind, a.name, a.id))
            ]
            if assets
            else None,
        }
        if as_json:
            common.emit_json("ls", doc, ExitCode.OK)
        elif assets:
            common.write_document(
                "".join(f"{a['kind']}:{a['name']}  ({a['files']} files)\n" for a in doc["assets"])
            )
        elif long:
            common.write_document(
                "".join(f"{f.size:>12,}  {f.digest[7:19]}  {f.path}\n" for f in entries)
            )
        else:
            common.write_document("".join(f"{f.path}\n" for f in entries))
    raise typer.Exit(int(ExitCode.OK))


def _asset_under(files: list[str], path: str) -> bool:
    prefix = path + "/"
    return any(f == path or f.startswith(prefix) for f in files)


@shared_options
def dump(
    repo: str = typer.Argument(..., metavar="REPO[@SNAPSHOT]", help=REPO_AT_HELP),
    path: str = typer.Argument(
        ..., metavar="PATH", help="The file to write, as `amlport ls` lists it.", show_default=False
    ),
    snapshot: str | None = SnapshotOpt,
    source: str | None = SourceOpt,
    output: Path | None = output_option("Write the file here (atomically) instead of stdout."),
    force: bool = typer.Option(
        False, "--force", help="Write bytes that are not text to a terminal all the same."
    ),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Write one file of a snapshot, checked against its digest, to stdout or -o FILE.

    Bytes that are not text are not written to a terminal (redirect, use -o, or --force).
    With --json the file goes to -o and the document says what was written. Exit 0 written,
    2 bad repository, snapshot or PATH (a PATH that is not a file of the snapshot), 4 the
    stored object is missing or damaged (with -o nothing is left behind).
    """
    with guarded():
        if as_json and output is None:
            raise UsageError(
                "--json prints a document on stdout: the file needs -o FILE",
                hint="add -o FILE, or leave --json out to get the bytes on stdout",
            )
        arg = repo_creds.arg(
            repo,
            snapshot=snapshot,
        )
        wanted = _bundle_path(path)
        if not wanted:
            raise UsageError("empty PATH", hint="give a file as `amlport ls REPO@ID` lists it")
        common.reads_repository(arg.location)  # -o may not land inside it
        if output is not None:
            common.output_path(output)  # again, now that the repository is known as read
        repository = arg.open()
        with repository, repository.lock(exclusive=False):  # no prune under us
            manifest = arg.pick(repository, source)
            entry = manifest.file(wanted)
            if entry is None:
                if _under(manifest, wanted):
                    raise UsageError(
                        f"{wanted!r} is a folder of snapshot "
                        f"{common.short_id(manifest.snapshot_id)}: dump writes one file",
                        hint=f"list it with `amlport ls REPO@ID {wanted}`, or restore it",
                    )
                raise _not_in_snapshot(manifest, wanted, "file")
            with repository.objects.open(entry.digest, entry.size) as reader:
                if output is not None:
                    _to_file(reader, output)
                else:
                    _to_stdout(reader, force=force)
        if as_json:
            doc = {
                "repository": repository.location,
                "snapshot": str(manifest.snapshot_id),
                "path": entry.path,
                "size": entry.size,
                "digest": entry.digest,
                "output": str(output),
            }
            common.emit_json("dump", doc, ExitCode.OK)
        elif output is not None:
            common.err.print(
                f"wrote {entry.size:,} bytes of {entry.path} to {output}",
                markup=False,
                highlight=False,
            )
    raise typer.Exit(int(ExitCode.OK))


def _to_file(reader: BinaryIO, output: Path) -> None:
    """Into a temporary file beside ``output``, renamed once every byte checked out: a
    damaged object (IntegrityError at its end) leaves nothing behind."""
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as out:
            while chunk := reader.read(CHUNK):
                out.write(chunk)
        tmp.replace(output)
    finally:
        tmp.unlink(missing_ok=True)


def looks_binary(head: bytes) -> bool:
    """Not text a terminal shows as it is: NUL, other control bytes (escape sequences
    included), or not UTF-8 (a multi-byte character cut at the end of ``head`` is fine)."""
    if any((b < 32 and b not in _TEXT_CONTROLS) or b == 127 for b in head):
        return True
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start < len(head) - 3
    return False


def _to_stdout(reader: BinaryIO, *, force: bool) -> None:
    head = reader.read(SNIFF)
    if not force and sys.stdout.isatty() and looks_binary(head):
        raise UsageError(
            "the file is not text: not writing it to a terminal",
            hint="redirect stdout (> FILE or | …), give -o FILE, or add --force",
        )
    sink = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
    if sink is None:  # a test's text stream
        sys.stdout.write(head.decode("utf-8", "replace"))
        while chunk := reader.read(CHUNK):
            sys.stdout.write(chunk.decode("utf-8", "replace"))
        return
    sys.stdout.flush()
    try:
        sink.write(head)
        while chunk := reader.read(CHUNK):
            sink.write(chunk)
        sink.flush()
    except BrokenPipeError:  # `amlport dump … | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sink.fileno())
        os.close(devnull)
