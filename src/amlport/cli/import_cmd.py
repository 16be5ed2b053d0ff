"""``import`` and ``map init``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from amlport.cli import common
from amlport.cli.common import WsFileOpt, guarded
from amlport.cli.helpfmt import AmlportGroup
from amlport.cli.options import (
    REPO,
    SOURCE,
    TARGET,
    RepoCredentials,
    StorageCredentials,
    output_option,
    shared_options,
)
from amlport.cli.repo_options import (
    REPO_AT_HELP,
    RepoKeyFileOpt,
    SnapshotOpt,
    SourceOpt,
)
from amlport.cli.write_options import DryRunOpt, OnConflictOpt
from amlport.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from amlport.importing import ImportResult
    from amlport.model.mapping import Mapping
    from amlport.storage.guard import WriteGuard

map_app = typer.Typer(
    cls=AmlportGroup,  # as the main app: whole sentences in the command list
    help="Mapping files: where a bundle's identities land in a target.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as the main app (brackets shown as they are)
)


def register(app: typer.Typer) -> None:
    app.command("import")(import_)
    app.command("promote")(promote)
    app.add_typer(map_app, name="map")


@map_app.command("init")
@shared_options
def map_init(
    repo: str = typer.Argument(..., help=REPO_AT_HELP),
    snapshot: str | None = SnapshotOpt,
    source: str | None = SourceOpt,
    output: Path | None = output_option("Write here, not stdout."),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
) -> None:
    """Write a map-file template listing every source identity that needs a target.

    REPO[@ID] is a snapshot's source; a live SOURCE (a workspace folder or account URL, which
    is not a repository) is scanned instead, so a first promotion needs no export first.
    """
    with guarded():
        from amlport.backup.compare import parse_spec
        from amlport.importing.mapinit import template

        snapshot_id: str | None = None
        # parse_spec decides as diff does: an account URL or a workspace folder is live
        spec = parse_spec(repo, repo_creds.repo_auth, where="map init argument")
        live = spec.live is not None
        if live:
            from amlport.promote.mapinit import source_template

            with creds.open_source(repo, workspace_file) as src:
                text = source_template(src)
        else:
            arg = repo_creds.arg(repo, snapshot=snapshot)
            common.reads_repository(arg.location)  # -o may not land inside it
            store = arg.open()
            with store, store.lock(exclusive=False):
                manifest = arg.pick(store, source)
                text, snapshot_id = template(manifest), manifest.snapshot_id
        if output is not None:
            common.write_text_atomic(output, text)
            common.err.print(f"wrote {output}; fill in the target and check the datastores")
        if as_json:
            doc = {
                "snapshot": snapshot_id,  # None: made from a live source
                "map": text,
                "output": str(output) if output else None,
            }
            common.emit_json("map init", doc, ExitCode.OK)
        elif output is None:
            common.write_document(text)
    raise typer.Exit(0)


EmitAssetsOpt = typer.Option(
    None,
    "--emit-assets",
    file_okay=False,
    help="Write v2 YAML bound to the target and a register.sh (az ml create) here.",
)
RegisterMlflowOpt = typer.Option(
    None, "--register-mlflow", help="Register MLflow models in this tracking URI."
)
StrictOpt = typer.Option(
    False,
    "--strict",
    help="Refuse (block the file) what would only be kept with a warning: a long azureml:// "
    "URI of a workspace while the source's identity is unknown.",
)


@shared_options
def import_(
    repo: str = typer.Argument(..., help=REPO_AT_HELP),
    to: str = typer.Option(..., "--to", help="Target: a folder or an Azure account URL."),
    map_file: Path = typer.Option(
        ..., "--map", exists=True, dir_okay=False, help="Map file (see 'amlport map init')."
    ),
    snapshot: str | None = SnapshotOpt,
    source: str | None = SourceOpt,
    dry_run: bool = DryRunOpt,
    on_conflict: str = OnConflictOpt,
    emit_assets: Path | None = typer.Option(
        None,
        "--emit-assets",
        file_okay=False,
        help="Write v2 YAML bound to the target and a register.sh (az ml create) here.",
    ),
    register_mlflow: str | None = typer.Option(
        None, "--register-mlflow", help="Register MLflow models in this tracking URI."
    ),
    strict: bool = StrictOpt,
    workspace: str | None = typer.Option(
        None,
        "--workspace",
        help="SUB/RG/NAME: also register the --emit-assets assets live (amlport[azureml]).",
    ),
    as_json: bool = common.JsonOpt,
    verbose: bool = common.VerboseOpt,
    creds: StorageCredentials = SOURCE,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Restore a snapshot into a target workspace, re-bound to it, idempotently.

    Exit 0 done, 1 dry run with blocked/conflicting items, 3 some items blocked, conflicting
    or failed (the rest is done), 4 the snapshot failed verification (nothing written).
    """
    with guarded():
        from amlport.importing import ImportRequest, run_import
        from amlport.importing.engine import load_mapping
        from amlport.storage.opener import open_target

        if workspace and emit_assets is None:
            raise UsageError(
                "--workspace registers the assets --emit-assets writes: without it, nothing "
                "would be registered",
                hint="add --emit-assets DIR",
            )
        arg = repo_creds.arg(
            repo,
            snapshot=snapshot,
        )
        mapping = load_mapping(map_file)
        request = ImportRequest(
            mapping=mapping,
            snapshot=arg.snapshot,
            source=source,
            dry_run=dry_run,
            on_conflict=on_conflict,
            emit_assets=emit_assets,
            register_mlflow=register_mlflow,
            workspace=workspace,
            strict=strict,
        )
        from amlport.storage.guard import WriteGuard, place_of_repository

        auth = creds.auth(to)
        # One guard for the run: live registrations below pass the same gate as the import.
        guard = WriteGuard(
            dry_run=dry_run, on_conflict=on_conflict, source=place_of_repository(arg.location)
        )
        with (
            common.counting_retries() as retried,
            open_target(to, descriptor=mapping.target, auth=auth) as target,
            common.progress_reporter(not as_json) as progress,
        ):
            result = run_import(
                arg.location, target, request, progress=progress, guard=guard, repo_auth=arg.auth
            )
        code = result.exit_code
        if workspace and emit_assets and not dry_run:
            code = max(code, _register_live(emit_assets, workspace, guard, mapping.target.endpoint))
        if as_json:
            common.emit_json("import", common.with_retries(result.to_dict(), retried), code)
        else:
            _render(result, verbose)
            common.say_retries(retried)
    raise typer.Exit(int(code))


def _register_live(
    emit_assets: Path, workspace: str, guard: WriteGuard, storage_suffix: str
) -> ExitCode:
    """Register the emitted assets in ``workspace``; a conflict is a partial result (exit 3),
    as it is for the import, unless --on-conflict skip left it alone on purpose."""
    from amlport.importers.azureml_assets import register_live

    done = register_live(
        emit_assets, workspace=workspace, guard=guard, storage_suffix=storage_suffix
    )
    for reg in done:
        common.err.print(f"live: {reg.line()}", highlight=False)
    conflicts = [r for r in done if r.action == "conflict"]
    if conflicts and guard.on_conflict != "skip":
        return ExitCode.PARTIAL
    return ExitCode.WARNINGS if conflicts else ExitCode.OK


def _render(result: ImportResult, verbose: bool) -> None:
    """Totals first; the actions that were not plain skips only with --verbose (one line
    each, in --json all of them). What needs attention (failed, blocked, conflicting) is
    always listed, at most ``MAX_DETAIL_LINES`` unless --verbose."""
    counts = ", ".join(f"{n} {k}" for k, n in result.counts.items()) or "nothing to do"
    what = "dry run, nothing written: " if result.dry_run else ""
    common.out.print(
        f"import of snapshot {common.short_id(result.snapshot_id)}: {what}{counts}"
        + (f"; record {result.record}" if result.record else ""),
        soft_wrap=True,
    )
    trouble = [a for a in result.actions if a.action in ("blocked", "conflict", "failed")]
    if verbose:
        shown = [a for a in result.actions if a.action != "skip"]
        common.show_table(
            "Actions",
            [("action", "text"), ("importer", "text"), ("subject", "path"), ("target", "path"),
             ("reason", "text")],
            [[a.action, a.importer, a.subject, a.target, a.reason] for a in shown],
        )  # fmt: skip
    else:
        common.say_each(
            "not done", "yellow", [f"{a.action}: {a.subject} ({a.reason})" for a in trouble]
        )
    common.say_each("failed", "red", list(result.failures), verbose)
    for w in common.some(list(result.warnings), verbose)[0]:
        common.warn(w)


@shared_options
def promote(
    source: str = typer.Argument(..., help="Source workspace: a folder or an account URL."),
    to: str = typer.Option(..., "--to", help="Target workspace: a folder or an account URL."),
    map_file: Path = typer.Option(
        ..., "--map", exists=True, dir_okay=False, help="Map file (see 'amlport map init')."
    ),
    select: list[str] | None = typer.Option(None, "--select", help="KIND:NAME (repeatable)."),
    include: str = typer.Option(
        "components,environments,models,pipelines,runs",
        "--include",
        help="Kinds: models,pipelines,environments,components,runs,data.",
    ),
    dry_run: bool = DryRunOpt,
    on_conflict: str = OnConflictOpt,
    emit_assets: Path | None = EmitAssetsOpt,
    register_mlflow: str | None = RegisterMlflowOpt,
    strict: bool = StrictOpt,
    as_json: bool = common.JsonOpt,
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
    target_creds: StorageCredentials = TARGET,
    target_workspace_file: Path | None = typer.Option(
        None,
        "--target-workspace-file",
        exists=True,
        dir_okay=False,
        help="The target's workspace.yaml (or its map file): must name the account and "
        "containers of the map's 'target:', whose identity it completes.",
    ),
) -> None:
    """Promote assets workspace to workspace (dev → qa → prod) without a local copy.

    Azure → Azure payloads go by server-side copy; rewritten files go through this machine.
    The source's earlier hops (its import records) are carried into the target's record.
    Exit 0 done, 1 warnings, 3 some items blocked or failed (the rest is done).
    """
    with guarded():
        from amlport.export.selection import parse_include
        from amlport.importing.engine import load_mapping
        from amlport.promote import PromoteRequest, run_promote
        from amlport.storage.opener import open_target

        mapping = _with_target_file(load_mapping(map_file), target_workspace_file)
        request = PromoteRequest(
            select=list(select or []),
            include=parse_include(include),
            dry_run=dry_run,
            emit_assets=emit_assets,
            register_mlflow=register_mlflow,
            strict=strict,
        )
        tauth = target_creds.auth(to)
        with (
            common.counting_retries() as retried,
            creds.open_source(source, workspace_file) as src,
            open_target(to, descriptor=mapping.target, auth=tauth) as target,
            common.progress_reporter(not as_json) as progress,
        ):
            result = run_promote(
                src, target, mapping, request, progress=progress, on_conflict=on_conflict
            )
        if as_json:
            doc = common.with_retries(result.to_dict(), retried)
            common.emit_json("promote", doc, result.exit_code)
        else:
            counts = ", ".join(f"{n} {k}" for k, n in sorted(result.actions.items()))
            common.out.print(
                ("dry run, nothing written: would promote" if result.dry_run else "promoted")
                + f": {counts}; {result.copied_server_side} copied "
                f"server-side, {result.client_bytes:,} payload bytes through "
                "this machine",
                soft_wrap=True,
            )
            hops = [f"{h.get('account')}/{h.get('workspace') or '-'}" for h in result.hops]
            common.say("provenance", "cyan", " → ".join(hops))
            for a in result.assets:
                common.say(a.importer, "cyan", f"{a.action} {a.subject} → {a.target} {a.reason}")
            common.say_each(
                "not promoted", "yellow", result.blocked + result.conflicts + result.failures
            )
            for w in result.warnings:
                common.warn(w)
            common.say_retries(retried)
    raise typer.Exit(int(result.exit_code))


def _with_target_file(mapping: Mapping, path: Path | None) -> Mapping:
    """``--target-workspace-file``: the target's own description (workspace.yaml or its map)
    replaces the map's ``target:`` once it names the same account and containers."""
    if path is None:
        return mapping
    from dataclasses import replace

    from amlport.storage.local import load_descriptor_file

    found = load_descriptor_file(path)
    same = found.account == mapping.target.account and found.containers == mapping.target.containers
    if not same:
        raise UsageError(
            f"--target-workspace-file {path} names account {found.account!r} and containers "
            f"{', '.join(found.containers)}; the map's target is {mapping.target.account!r} "
            f"with {', '.join(mapping.target.containers)}",
            hint="give the target's own workspace file, or fix the map's 'target:'",
        )
    return replace(mapping, target=found)
