"""``repo init``, ``repo upgrade`` and ``repo key``: a repository's own life (library:
``amlport.bundle``; keys: ``bundle/keys.py``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from amlport.cli import common
from amlport.cli.common import guarded
from amlport.cli.options import REPO, RepoCredentials, shared_options
from amlport.cli.repo_options import (
    REPO_HELP,
    EncryptOpt,
    RepoKeyFileOpt,
)
from amlport.errors import ExitCode, UsageError

repo_app = typer.Typer(
    help="Create a repository, or convert one to the current format.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


key_app = typer.Typer(
    help="The keys of an encrypted repository: make a key file, add, list or remove a key.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
repo_app.add_typer(key_app, name="key")
NEW_KEY_ENV = "AMLPORT_NEW_REPO_KEY"


def register(app: typer.Typer) -> None:
    app.add_typer(repo_app, name="repo")


@repo_app.command("init")
@shared_options
def init(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}; missing or empty."),
    version: int = typer.Option(
        2,
        "--format",
        min=1,
        max=2,
        help="Repository format: 2 (default), or 1 for a repository amlport 0.1 can read.",
    ),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    encrypt: bool = EncryptOpt,
    key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Create an empty repository (export and backup also create one when REPO is missing).

    With --encrypt every object and snapshot is sealed with AES-256-GCM under a random
    repository key, itself wrapped by the key of --key-file or the passphrase in
    $AMLPORT_REPO_KEY (docs/design/0013-repository-encryption.md). Keep that key safe: without
    it nothing in the repository can be read.
    Exit 0 created, 2 REPO is not empty or is already a repository, or --encrypt without a key.
    """
    with guarded():
        from amlport.bundle import Repository

        arg = repo_creds.arg(
            repo,
            allow_snapshot=False,
        )
        with Repository.init(arg.location, auth=arg.auth, version=version) as created:
            doc = {"repository": created.location, "id": created.id,
                   "version": created.config.version,
                   "encrypted": created.encrypted}  # fmt: skip
        if as_json:
            common.emit_json("repo-init", doc, ExitCode.OK)
        else:
            sealed = ", encrypted" if created.encrypted else ""
            common.out.print(
                f"created repository {created.location} (format {doc['version']}{sealed})",
                soft_wrap=True,
            )
    raise typer.Exit(int(ExitCode.OK))


@repo_app.command("upgrade")
@shared_options
def upgrade(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List what would be converted or packed; change nothing."
    ),
    packs: bool = typer.Option(
        False,
        "--packs",
        help="Also turn pack files on: new backups put objects below 512 KiB into pack files, "
        "and the loose ones stored so far are packed now.",
    ),
    repack: bool = typer.Option(
        True,
        "--repack/--no-repack",
        help="With --packs: pack the loose small objects stored so far (default), or leave "
        "them loose.",
    ),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Convert a format-1 repository to format 2 in place, and with --packs turn pack files
    on (docs/bundle-format.md).

    Format 2 stores each snapshot as a small root over compressed, shared pieces: an
    unchanged re-backup adds about a kilobyte instead of a whole manifest. Data objects are
    kept as they are. --packs (a format-1 repository: both in one go) declares pack files
    in config.json, so that new runs write a few pack files instead of a file per small
    object, and packs the loose objects below 512 KiB already stored (--no-repack leaves
    them); amlport versions before pack files then refuse the repository by name. A repository
    that has pack files is left as it is (a killed run's loose rest is packed). An
    encrypted repository needs its key to pack (each object is checked first). The
    conversion is crash-safe: a run killed at any point leaves a repository every command
    reads, and running upgrade again finishes it. It takes an exclusive lock. Snapshot ids
    change (the old ids are printed beside the new ones).
    Exit 0 done (or nothing to do), 2 repository locked, 4 a damaged snapshot stopped it.
    """
    with guarded():
        from amlport.bundle.store import DRY_RUN
        from amlport.bundle.upgrade import upgrade as run_upgrade
        from amlport.storage.guard import WriteGuard

        if not packs and not repack:
            raise UsageError("--no-repack applies only with --packs", hint="add --packs")
        arg = repo_creds.arg(
            repo,
            allow_snapshot=False,
        )
        with (
            arg.open(reading=DRY_RUN if dry_run else None) as repository,
            common.progress_reporter(not as_json) as progress,
        ):
            report = run_upgrade(
                repository,
                dry_run=dry_run,
                progress=progress,
                packs=packs,
                repack=repack,
                guard=WriteGuard(dry_run=dry_run),
            )
        if as_json:
            common.emit_json("repo-upgrade", report.to_dict(), ExitCode.OK)
        else:
            for text in report.lines():
                common.out.print(text, soft_wrap=True)
    raise typer.Exit(int(ExitCode.OK))


@key_app.command("new")
def key_new(
    path: Path = typer.Argument(..., metavar="PATH", help="The key file to create (not there)."),
    as_json: bool = common.JsonOpt,
) -> None:
    """Write a new random key file (256 bits, readable by its owner only) for --key-file.

    The key is never printed. Exit 0 written, 2 PATH exists or its folder does not.
    """
    with guarded():
        from amlport.bundle.keys import new_key_file_text

        target = common.output_path(path)
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise UsageError(
                f"{target} exists", hint="name a new file: a key is never replaced"
            ) from None
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_key_file_text())
            fh.flush()
            os.fsync(fh.fileno())
        if as_json:
            common.emit_json("repo-key-new", {"path": str(target)}, ExitCode.OK)
        else:
            common.out.print(
                f"wrote key file {target} (keep a copy somewhere safe)", soft_wrap=True
            )
    raise typer.Exit(int(ExitCode.OK))


def _open_keyed(repo: str, repo_creds: RepoCredentials):  # type: ignore[no-untyped-def]
    from amlport.bundle import Repository

    arg = repo_creds.arg(repo, allow_snapshot=False)
    return Repository.open(arg.location, auth=arg.auth)


@key_app.command("list")
@shared_options
def key_list(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}."),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    key_file: str | None = RepoKeyFileOpt,
) -> None:
    """List the wrapped keys of an encrypted repository (id, kind, created); needs no key.

    Exit 0 listed, 2 not an encrypted repository, 4 a damaged key file in keys/.
    """
    with guarded():
        with _open_keyed(repo, repo_creds) as repository:
            infos = repository.key_list()
        if as_json:
            doc = {"repository": repository.location, "keys": [i.to_dict() for i in infos]}
            common.emit_json("repo-key-list", doc, ExitCode.OK)
        else:
            for info in infos:
                common.out.print(f"{info.id}  {info.kind:<10}  {info.created}", soft_wrap=True)
    raise typer.Exit(int(ExitCode.OK))


@key_app.command("add")
@shared_options
def key_add(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}."),
    new_key_file: str | None = typer.Option(
        None,
        "--new-key-file",
        metavar="PATH|URL",
        show_default=False,
        help="The key to add: a key file, or a Key Vault secret URL.",
    ),
    new_passphrase: bool = typer.Option(
        False, "--new-passphrase", help=f"The key to add is the passphrase in ${NEW_KEY_ENV}."
    ),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Wrap the repository key with one more key (rotation: add the new key, then remove the
    old one with `repo key remove`). Opens the repository with its current key (--key-file
    or $AMLPORT_REPO_KEY); no object is rewritten.

    Exit 0 added, 2 a wrong or missing key, or not an encrypted repository.
    """
    with guarded():
        from amlport.bundle import keys

        if bool(new_key_file) == new_passphrase:
            raise UsageError("give the key to add: --new-key-file PATH|URL or --new-passphrase")
        if new_passphrase:
            value = os.environ.get(NEW_KEY_ENV, "")
            new = keys.passphrase_key(value, f"passphrase in ${NEW_KEY_ENV}")
        elif new_key_file and new_key_file.startswith("https://"):
            new = keys.from_key_vault(new_key_file)
        else:
            new = keys.read_key_file(new_key_file or "")
        with _open_keyed(repo, repo_creds) as repository:
            key_id = repository.key_add(new)
        if as_json:
            common.emit_json("repo-key-add", {"repository": repository.location, "id": key_id},
                             ExitCode.OK)  # fmt: skip
        else:
            common.out.print(f"added key {key_id} ({new.kind})", soft_wrap=True)
    raise typer.Exit(int(ExitCode.OK))


@key_app.command("remove")
@shared_options
def key_remove(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}."),
    key_id: str = typer.Argument(..., metavar="KEY_ID", help="The id `repo key list` shows."),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Remove one wrapped key (never the last). Needs a key that opens the repository, and
    refuses to remove the one given (remove an old key with the new one).

    Exit 0 removed, 2 a wrong or missing key, an unknown id, the last key or the key in use.
    """
    with guarded():
        with _open_keyed(repo, repo_creds) as repository:
            if repository.key_in_use() == key_id:
                raise UsageError(
                    f"key {key_id} is the key this command was given",
                    hint="open the repository with another of its keys to remove this one",
                )
            repository.key_remove(key_id)
        if as_json:
            common.emit_json("repo-key-remove", {"repository": repository.location,
                                                 "id": key_id}, ExitCode.OK)  # fmt: skip
        else:
            common.out.print(f"removed key {key_id}", soft_wrap=True)
    raise typer.Exit(int(ExitCode.OK))
