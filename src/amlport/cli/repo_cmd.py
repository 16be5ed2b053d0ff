"""``repo init`` and ``repo upgrade``: a repository's own life (library: ``amlport.bundle``)."""

from __future__ import annotations

import typer

from amlport.cli import common
from amlport.cli.common import guarded
from amlport.cli.repo_options import (
    REPO_HELP,
    RepoConnOpt,
    RepoCredOpt,
    RepoKeyOpt,
    RepoSasOpt,
    repo_auth,
)
from amlport.errors import ExitCode

repo_app = typer.Typer(
    help="Create a repository, or convert one to the current format.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def register(app: typer.Typer) -> None:
    app.add_typer(repo_app, name="repo")


@repo_app.command("init")
def init(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}; missing or empty."),
    as_json: bool = common.JsonOpt,
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """Create an empty repository (export and backup also create one when REPO is missing).

    Exit 0 created, 2 REPO is not empty or is already a repository.
    """
    with guarded():
        from amlport.bundle import Repository

        auth = repo_auth(
            repo, repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        with Repository.init(repo, auth=auth) as created:
            doc = {"repository": created.location, "id": created.id,
                   "version": created.config.version}  # fmt: skip
        if as_json:
            common.emit_json("repo-init", doc, ExitCode.OK)
        else:
            common.out.print(
                f"created repository {created.location} (format {doc['version']})",
                soft_wrap=True,
            )
    raise typer.Exit(int(ExitCode.OK))


@repo_app.command("upgrade")
def upgrade(
    repo: str = typer.Argument(..., metavar="REPO", help=f"{REPO_HELP}."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="List the snapshots that would be converted; change nothing."
    ),
    as_json: bool = common.JsonOpt,
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """Convert a format-1 repository to format 2 in place (docs/bundle-format.md).

    Format 2 stores each snapshot as a small root over compressed, shared pieces: an
    unchanged re-backup adds about a kilobyte instead of a whole manifest. Data objects are
    kept as they are. The conversion is crash-safe: a run killed at any point leaves a
    repository every command reads, and running upgrade again finishes it. It takes an
    exclusive lock. Snapshot ids change (the old ids are printed beside the new ones).
    Exit 0 done (or nothing to do), 2 repository locked, 4 a damaged snapshot stopped it.
    """
    with guarded():
        from amlport.bundle import Repository
        from amlport.bundle.upgrade import upgrade as run_upgrade

        auth = repo_auth(
            repo, repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        with (
            Repository.open(repo, auth=auth) as repository,
            common.progress_reporter(not as_json) as progress,
        ):
            report = run_upgrade(repository, dry_run=dry_run, progress=progress)
        if as_json:
            common.emit_json("repo-upgrade", report.to_dict(), ExitCode.OK)
        else:
            for text in report.lines():
                common.out.print(text, soft_wrap=True)
    raise typer.Exit(int(ExitCode.OK))
