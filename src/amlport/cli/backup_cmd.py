"""``backup``, ``forget``, ``diff`` and ``restore`` (library: ``amlport.backup``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from amlport.cli import common
from amlport.cli.common import WsFileOpt, guarded
from amlport.cli.export_cmd import failure_line
from amlport.cli.options import (
    REPO,
    SIDE_A,
    SIDE_B,
    SOURCE,
    RepoCredentials,
    StorageCredentials,
    shared_options,
)
from amlport.cli.repo_options import (
    REPO_AT_HELP,
    REPO_HELP,
    EncryptOpt,
    RepoKeyFileOpt,
    SnapshotOpt,
    SourceOpt,
)
from amlport.cli.write_options import DryRunOpt, OnConflictOpt, ReadOnlyOpt
from amlport.errors import ExitCode, IntegrityError, UsageError

if TYPE_CHECKING:
    from amlport.storage.base import Source

ALL_INCLUDE = "components,data,environments,models,pipelines,runs"
JsonOpt = common.JsonOpt
RetryLockOpt = typer.Option(
    0.0,
    "--retry-lock",
    min=0.0,
    help="Seconds to wait for a conflicting repository lock before giving up (exit 2).",
)


def register(app: typer.Typer) -> None:
    app.command("backup")(backup)
    app.command("forget")(forget)
    app.command("diff")(diff)
    app.command("restore")(restore)


def _print(lines: list[str], *, err: bool = False) -> None:
    console = common.err if err else common.out
    for line in lines:
        console.print(line, soft_wrap=True)  # a log line is never wrapped


@shared_options
def backup(
    source: str = typer.Argument(..., help="Folder of a workspace storage copy, or account URL."),
    repo: str = typer.Option(..., "--repo", help=f"{REPO_HELP} (created if missing)."),
    tag: list[str] | None = typer.Option(None, "--tag", help="Tag the snapshot (repeatable)."),
    select: list[str] | None = typer.Option(
        None, "--select", help="KIND:NAME to back up only that (repeatable; no catch-all)."
    ),
    include: str = typer.Option(
        ALL_INCLUDE,
        "--include",
        help="Kinds to back up; all of them (the default) also carries every other blob.",
    ),
    retry_lock: float = RetryLockOpt,
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel transfers."),
    force: bool = typer.Option(
        False,
        "--force",
        help="Walk, plan and compare every file even when the listing is the previous "
        "snapshot's (by default such a backup names the previous snapshot's lists).",
    ),
    as_json: bool = JsonOpt,
    verbose: bool = common.VerboseOpt,
    cache_dir: Path | None = common.CacheDirOpt,
    no_cache: bool = common.NoCacheOpt,
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
    encrypt: bool = EncryptOpt,
) -> None:
    """Take an incremental snapshot of the whole workspace and print what changed.

    Every blob of the workspace containers goes into the snapshot (blobs no asset claims as
    'unclassified' data assets); unchanged blobs are not read again. When the listing (and
    the options, and amlport) are the previous snapshot's, nothing else is read: the new
    snapshot names the previous one's lists (--force walks and compares anyway). Exit codes
    as export: 0 ok, 1 warnings/skipped items, 2 error or repository locked, 3 partial.
    """
    with guarded():
        from amlport.export.kinds import parse_include

        kinds = parse_include(include)
        cache = common.cache_folder(cache_dir, no_cache)
        arg = repo_creds.arg(
            repo,
            allow_snapshot=False,
            where="--repo",
        )
        with (
            common.counting_retries() as retried,
            creds.open_source(source, workspace_file) as src,
            common.progress_reporter(not as_json) as progress,
        ):
            src.start_listing()  # listed while the backup's modules load (backup/run.py)
            from amlport.backup import BackupRequest, run_backup

            request = BackupRequest(
                select=list(select or []),
                include=kinds,
                tags=list(tag or []),
                workers=workers,
                retry_lock=retry_lock,
                cache_dir=cache,
                force=force,
            )
            result = run_backup(
                src,
                arg.location,
                request,
                progress=progress,
                on_warning=common.warn,
                repo_auth=arg.auth,
            )
        if as_json:
            doc = common.with_retries(result.to_dict(), retried)
            common.emit_json("backup", doc, result.exit_code)
        else:
            lines = result.lines()
            # ids short (whole in --json): the library's first line spells them out
            lines[0] = (
                f"snapshot {common.short_id(result.snapshot_id)} "
                f"(parent {common.short_id(result.parent)})"
            )
            _print(lines)
            skipped = [f"{node}: {reason}" for node, reason in result.export.skipped]
            common.say_each("skipped", "yellow", skipped, verbose)
            for w in common.some(list(result.export.warnings), verbose)[0]:
                common.warn(w)
            common.say_retries(retried)
        failure_line(result.export, "backup")  # exit 3/4: what failed, on stderr
    raise typer.Exit(int(result.exit_code))


@shared_options
def forget(
    repo: str = typer.Argument(..., help=f"{REPO_HELP}."),
    keep_last: int = typer.Option(0, "--keep-last", min=0, help="Keep the N newest."),
    keep_daily: int = typer.Option(0, "--keep-daily", min=0, help="Newest of the last N days."),
    keep_weekly: int = typer.Option(0, "--keep-weekly", min=0, help="Newest of the last N weeks."),
    keep_monthly: int = typer.Option(
        0, "--keep-monthly", min=0, help="Newest of the last N months."
    ),
    keep_tag: list[str] | None = typer.Option(
        None, "--keep-tag", help="Keep every snapshot with this tag (repeatable)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would go; change nothing."),
    prune: bool = typer.Option(
        False, "--prune", help="Then delete the objects no remaining snapshot references."
    ),
    retry_lock: float = RetryLockOpt,
    as_json: bool = JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Remove the snapshots no retention rule keeps (per source), and with --prune their data.

    Days, weeks (ISO) and months are UTC; a snapshot is kept when any rule keeps it.
    Exit 0 done, 2 bad policy or repository locked, 4 an unreadable snapshot stopped prune.
    """
    with guarded():
        from amlport.backup.forget import ForgetRequest, run_forget

        request = ForgetRequest(
            keep_last=keep_last,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_tags=tuple(keep_tag or ()),
            dry_run=dry_run,
            prune=prune,
            retry_lock=retry_lock,
        )
        arg = repo_creds.arg(
            repo,
            allow_snapshot=False,
        )
        report = run_forget(arg.location, request, repo_auth=arg.auth)
        if as_json:
            common.emit_json("forget", report.to_dict(), ExitCode.OK)
        else:
            _print(report.lines())
    raise typer.Exit(int(ExitCode.OK))


@shared_options
def diff(
    a: str = typer.Argument(
        ..., metavar="A", help="REPO, REPO@SNAPSHOT, or a live source (folder or URL)."
    ),
    b: str = typer.Argument(..., metavar="B", help="The same forms; compared as the newer side."),
    source: str | None = SourceOpt,
    as_json: bool = JsonOpt,
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
    map_file: list[Path] | None = typer.Option(
        None,
        "--map",
        exists=True,
        dir_okay=False,
        help="Compare under this map (A's identities re-bound to B's): only what differs "
        "after re-binding is reported. Repeat for stages in order (dev → qa → prod: "
        "--map qa.yaml --map prod.yaml).",
    ),
    a_creds: StorageCredentials = SIDE_A,
    a_workspace_file: Path | None = typer.Option(
        None, "--a-workspace-file", help="workspace.yaml (or map file) of a live side A."
    ),
    b_creds: StorageCredentials = SIDE_B,
    b_workspace_file: Path | None = typer.Option(
        None, "--b-workspace-file", help="workspace.yaml (or map file) of a live side B."
    ),
) -> None:
    """Compare two snapshots, or a snapshot and a live source: assets, runs, files, lineage.

    REPO alone is its latest snapshot (of the live source's workspace, when the other side
    is one). --connection-string & co. are for live sources (--a-*/--b-* for one side: two
    accounts, two credentials), --repo-* for a REPO given as a URL (az://CONTAINER,
    REPO@ID). With --map, A is compared as it would be in B. Exit 0 no difference, 1 differences.
    """
    with guarded():
        from amlport.backup.compare import diff_specs

        sides = {"a": (a_creds, a_workspace_file), "b": (b_creds, b_workspace_file)}

        def open_live(location: str) -> Source:
            own, own_file = sides["a" if location == a else "b"]
            # A side's own option wins; a side without any takes the shared one.
            chosen = own if own.given else creds
            return chosen.open_source(location, own_file or workspace_file)

        mapped = None
        if map_file:
            from amlport.backup.mapped import under_map
            from amlport.importing.engine import load_mapping

            mapped = under_map(*(load_mapping(path) for path in map_file))

        report = diff_specs(  # --repo-*: a REPO given as a URL
            a, b, open_live, source_name=source, repo_auth=repo_creds.repo_auth, mapped=mapped
        )
        code = ExitCode.WARNINGS if report.different else ExitCode.OK
        if as_json:
            common.emit_json("diff", report.to_dict(), code)
        else:
            _print([f"diff {report.a} → {report.b}", *report.lines()])
    raise typer.Exit(int(code))


@shared_options
def restore(
    repo: str = typer.Argument(..., help=REPO_AT_HELP),
    snapshot: str | None = typer.Argument(
        None,
        help="Snapshot id or prefix, or 'latest' (the default); or give REPO@ID or --snapshot.",
        show_default=False,
    ),
    snapshot_opt: str | None = SnapshotOpt,
    select: list[str] | None = typer.Option(
        None,
        "--select",
        metavar="KIND:NAME",
        help="Restore only this asset and what it needs (repeatable): KIND is model, "
        "environment, pipeline or component (also run, data); NAME its name as `amlport ls "
        "REPO@ID --json` lists it, or its id. What it needs comes from the snapshot's lineage: "
        "its environment, components, the runs that made it.",
    ),
    source: str | None = SourceOpt,
    to: str = typer.Option(..., "--to", help="Target: a folder or an Azure account URL."),
    map_file: Path = typer.Option(
        ..., "--map", exists=True, dir_okay=False, help="Map file (see 'amlport map init')."
    ),
    check: bool = typer.Option(
        False, "--check", help="Rescan the target; compare files and lineage with the snapshot."
    ),
    read_only: bool = ReadOnlyOpt,
    dry_run: bool = DryRunOpt,
    on_conflict: str = OnConflictOpt,
    emit_assets: Path | None = typer.Option(
        None,
        "--emit-assets",
        file_okay=False,
        help="Write v2 YAML bound to the target and a register.sh (az ml create) here.",
    ),
    as_json: bool = JsonOpt,
    creds: StorageCredentials = SOURCE,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Restore a snapshot into a workspace (import), and with --check prove it.

    REPO@ID, REPO ID and --snapshot ID name the snapshot (default: the latest of --source, or
    of the workspace the map's 'source:' names). --select restores one asset with what it
    needs instead of the whole workspace. Exit 0 restored (and checked), 3 items blocked,
    conflicting or failed, 4 the snapshot failed verification or the check found a difference.
    """
    with guarded():
        from amlport.backup.restore import RestoreRequest, run_restore, target_as_source
        from amlport.importing.engine import load_mapping
        from amlport.storage.opener import open_target

        if snapshot is not None and snapshot_opt is not None and snapshot != snapshot_opt:
            raise UsageError(
                f"SNAPSHOT {snapshot!r} and --snapshot {snapshot_opt!r} name two snapshots",
                hint="give one of them",
            )
        arg = repo_creds.arg(
            repo,
            snapshot=snapshot if snapshot is not None else snapshot_opt,
        )
        mapping = load_mapping(map_file)
        request = RestoreRequest(
            mapping=mapping,
            snapshot=arg.snapshot or "latest",
            select=list(select or []),
            source=source,
            check=check,
            read_only=read_only,
            dry_run=dry_run,
            on_conflict=on_conflict,
            emit_assets=emit_assets,
        )
        auth = creds.auth(to)
        with (
            common.counting_retries() as retried,
            open_target(to, descriptor=mapping.target, auth=auth) as target,
            common.progress_reporter(not as_json) as progress,
        ):
            report = run_restore(
                arg.location,
                target,
                request,
                scan=lambda: target_as_source(to, mapping.target, auth),
                progress=progress,
                repo_auth=arg.auth,
            )
        if as_json:
            doc = common.with_retries(report.to_dict(), retried)
            common.emit_json("restore", doc, report.exit_code)
        else:
            _print(report.lines())
            common.say_retries(retried)
        if report.check is not None and not report.check.ok:
            problems = report.check.problems()
            raise IntegrityError(
                f"restore check failed: {len(problems)} problem(s), first: {problems[0]}",
                hint="the target does not hold what the snapshot holds; restore again with "
                "--on-conflict overwrite, or into an empty target",
            )
    raise typer.Exit(int(report.exit_code))
