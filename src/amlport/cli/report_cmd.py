"""``amlport report``: one self-contained HTML page of a workspace or of a snapshot.

Registered on the main app by ``report_cmd.register(app)``. Reads only: a SOURCE is walked
read-only (as ``scan`` and ``audit`` do), a repository is opened and its snapshots read. The
one file written is ``-o``, checked like every ``-o`` (``common.checked_output``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from amlport.cli import common
from amlport.cli.common import WsFileOpt, guarded
from amlport.cli.options import (
    REPO,
    SOURCE,
    RepoCredentials,
    StorageCredentials,
    output_option,
    shared_options,
)
from amlport.cli.repo_options import (
    RepoKeyFileOpt,
    SourceOpt,
)
from amlport.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from amlport.report import Report
    from amlport.storage.base import Source
    from amlport.storage.opener import StorageAuth

REPORT_HELP = """Write one self-contained HTML report of a workspace or a snapshot.

SOURCE is a workspace (a local storage copy or an account URL): the page shows its
inventory, an interactive lineage graph, the designer pipelines as diagrams and the audit
findings with their remediation; --repo REPO adds its snapshot history from that repository.
REPO (a repository folder: its latest snapshot) or REPO@SNAPSHOT: the snapshot's assets,
files and recorded lineage, and the repository's snapshot history of that workspace.

The page needs no network to be viewed: its script, styles and data are inside it. Exit 0
when the report was written (whatever it shows), 2 on errors.
"""


def register(app: typer.Typer) -> None:
    """Add the ``report`` command to ``app``."""
    app.command(name="report", help=REPORT_HELP)(report)


@shared_options
def report(
    target: str = typer.Argument(
        ..., metavar="SOURCE|REPO[@SNAPSHOT]", help="A workspace, a repository, or a snapshot."
    ),
    output: Path = output_option("The HTML file to write (its folder must exist).", required=True),
    repo: str | None = typer.Option(
        None, "--repo", help="With a SOURCE: add its snapshot history from this repository."
    ),
    source: str | None = SourceOpt,
    as_json: bool = typer.Option(False, "--json", help="Print what was written as JSON."),
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    with guarded():
        from amlport.backup.compare import parse_spec
        from amlport.report import render_html

        if not target:
            raise UsageError("empty TARGET", hint="give a workspace, REPO or REPO@SNAPSHOT")
        spec = parse_spec(target, repo_creds.repo_auth, where="TARGET")
        if spec.repo is not None:
            if repo is not None:
                raise UsageError(
                    "--repo is for a SOURCE: TARGET already is a repository",
                    hint=f"drop --repo, or report the workspace: amlport report SOURCE --repo "
                    f"{spec.repo}",
                )
            if workspace_file is not None:
                raise UsageError("--workspace-file is for a SOURCE, not a repository")
            result = _of_snapshot(spec.repo, spec.snapshot, source, spec.auth)
        else:
            if source is not None and repo is None:
                raise UsageError(
                    "--source chooses snapshots of a repository: give --repo REPO too",
                    hint="or leave --source out",
                )
            assert spec.live is not None
            arg = repo_creds.arg(repo, allow_snapshot=False, where="--repo") if repo else None
            result = _of_source(
                creds.open_source(spec.live, workspace_file),
                arg.location if arg else None,
                arg.auth if arg else None,
                show_progress=not as_json,
            )
        common.write_text_atomic(output, render_html(result))
        summary = result.summary()
        if as_json:  # schema and exit_code as every command's (docs/json.md)
            common.emit_json("report", {"output": str(output), **summary}, ExitCode.OK)
        else:
            common.err.print(
                f"wrote HTML report of {result.kind} {result.location}: {summary['nodes']} "
                f"lineage nodes, {summary['pipelines']} pipeline(s), {summary['snapshots']} "
                f"snapshot(s) in its history, to {output}",
                highlight=False,
            )
            common.err.print(f"open it in a browser: {output.resolve().as_uri()}", highlight=False)
    raise typer.Exit(int(ExitCode.OK))


def _of_source(
    source: Source,
    repo_location: str | None,
    rauth: StorageAuth | None,
    *,
    show_progress: bool,
) -> Report:
    """Walk the workspace, audit it (data-plane facts only), add its history from REPO."""
    from amlport.audit.dataplane import collect_data_plane
    from amlport.audit.runner import AuditRequest, run_audit
    from amlport.lineage import build_graph
    from amlport.model.manifest import source_key
    from amlport.report import add_history, from_source
    from amlport.walk import WalkOptions
    from amlport.walk.walker import walk_with_listing

    with (
        source as src,
        common.progress_reporter(show_progress) as progress,
    ):
        inv, listing = walk_with_listing(src, options=WalkOptions(progress=progress))
        data_plane = collect_data_plane(src)
        described = src.describe()
    audit = run_audit(AuditRequest(inventory=inv, data_plane=data_plane, source_label=described))
    result = from_source(inv, listing, build_graph(inv), described, audit)
    if repo_location is not None:
        from amlport.bundle import Repository

        common.reads_repository(repo_location)
        with Repository.open(repo_location, auth=rauth) as repository:
            add_history(result, repository, source_key(inv.source.to_dict()), current=None)
            if not result.history:
                result.history_note = (
                    f"the repository {repository.location} holds no snapshot of this workspace"
                )
    return result


def _of_snapshot(
    path: Path | str, snapshot: str | None, source: str | None, rauth: StorageAuth | None
) -> Report:
    """A snapshot (``latest`` chosen as every command chooses it) and its source's history."""
    from amlport.bundle import Repository
    from amlport.bundle.sources import parse_source, select_snapshot
    from amlport.report import add_history, from_snapshot

    common.reads_repository(path)
    with Repository.open(path, auth=rauth) as repository:
        manifest = select_snapshot(repository, snapshot, parse_source(source))
        sid = str(manifest.snapshot_id)
        result = from_snapshot(manifest, f"{repository.location}@{sid[:16]}")
        add_history(result, repository, manifest.source_key, current=sid)
    return result
