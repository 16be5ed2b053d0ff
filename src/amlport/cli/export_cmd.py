"""``export``, ``verify``, ``snapshots``, ``pack`` and ``unpack``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    REPO_AT_HELP,
    REPO_HELP,
    EncryptOpt,
    RepoKeyFileOpt,
    SourceOpt,
    snapshot_option,
)
from amlport.cli.terminal import styled
from amlport.errors import ExitCode, IntegrityError, UsageError

# The repository is imported by the commands that open one (``amlport scan`` never does).
if TYPE_CHECKING:
    from amlport.bundle import Repository
    from amlport.bundle.snapshots import SnapshotInfo
    from amlport.bundle.verification import VerifyReport
    from amlport.export import ExportResult
    from amlport.export.deep import DeepCheck

# The default --include, spelled out here so that --help needs no export import.
DEFAULT_INCLUDE = ("components", "environments", "models", "pipelines", "runs")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)
    app.command("snapshots")(snapshots)
    app.command("pack")(pack)
    app.command("unpack")(unpack)


@shared_options
def export(
    source: str = typer.Argument(..., help="Folder of a workspace storage copy, or account URL."),
    repo: str | None = typer.Option(
        None, "--repo", help=f"{REPO_HELP} (created if missing). Required.", show_default=False
    ),
    old_to: str | None = typer.Option(None, "--to", hidden=True, help="Old name of --repo."),
    select: list[str] | None = typer.Option(
        None,
        "--select",
        help="KIND:NAME to export (repeatable); KIND is model, pipeline, "
        "environment, component, run or data. Default: everything of the --include kinds.",
    ),
    include: str = typer.Option(
        ",".join(sorted(DEFAULT_INCLUDE)),
        "--include",
        help="Kinds to export: models,pipelines,environments,components,runs,data (data "
        "payloads only when listed).",
    ),
    specs: Path | None = typer.Option(
        None, "--specs", file_okay=False, help="A folder of v2 YAML (kept in git) to add."
    ),
    tag: list[str] | None = typer.Option(None, "--tag", help="Tag the snapshot (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be exported."),
    as_json: bool = common.JsonOpt,
    verbose: bool = common.VerboseOpt,
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel transfers."),
    cache_dir: Path | None = common.CacheDirOpt,
    no_cache: bool = common.NoCacheOpt,
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
    encrypt: bool = EncryptOpt,
) -> None:
    """Export models, pipelines, environments and run records to a verifiable bundle.

    Storage URIs are rewritten to a neutral, datastore-relative form and secrets are removed.
    Re-running reads only what changed. Exit 0 ok, 1 warnings/skipped items, 3 partial.
    """
    with guarded():
        from amlport.export import ExportRequest, run_export
        from amlport.export.selection import parse_include

        to = common.renamed("export", ("--repo", repo), ("--to", old_to))

        request = ExportRequest(
            select=list(select or []),
            include=parse_include(include),
            specs=specs,
            dry_run=dry_run,
            tags=list(tag or []),
            workers=workers,
            cache_dir=common.cache_folder(cache_dir, no_cache),
        )
        arg = repo_creds.arg(
            to,
            allow_snapshot=False,
            where="--repo",
        )
        with (
            common.counting_retries() as retried,
            creds.open_source(source, workspace_file) as src,
            common.progress_reporter(not as_json) as progress,
        ):
            result = run_export(
                src,
                arg.location,
                request,
                progress=progress,
                repo_auth=arg.auth,
                on_warning=common.warn,
            )
        if as_json:
            doc = common.with_retries(result.to_dict(), retried)
            common.emit_json("export", doc, result.exit_code)
        else:
            _render_export(result, dry_run, verbose)
            common.say_retries(retried)
        failure_line(result)
    raise typer.Exit(int(result.exit_code))


def failure_line(result: ExportResult, command: str = "export") -> None:
    """Exit 3/4: one line on stderr saying what failed and why (docs/exit-codes.md); also
    ``backup``'s (``command``: the command to run again)."""
    s = result.stats
    if s is None or not s.failures:
        return
    what = "integrity failure" if s.integrity_failures else "partial failure"
    why = s.stopped or s.failures[0].message
    common.err.print(
        f"amlport: {what}: {len(s.failures)} of {result.planned_files} files not exported: {why}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    common.err.print(
        "  hint: the snapshot records what was exported (marked incomplete); "
        f"run the same {command} again to finish it",
        soft_wrap=True,
        highlight=False,
    )


def _render_export(result: ExportResult, dry_run: bool, verbose: bool) -> None:
    """Totals first (what a log needs); the asset list with --verbose (all of it in --json)."""
    out = common.out
    if result.stats is not None:
        s = result.stats
        out.print(
            f"snapshot {common.short_id(result.snapshot_id)} (parent "
            f"{common.short_id(result.parent)}): {s.files} files, {s.new_objects} new objects, "
            f"{s.new_bytes:,} new bytes, {s.reused} reused, {s.rewritten} rewritten",
            soft_wrap=True,
        )
    elif dry_run:
        out.print("dry run: nothing written", soft_wrap=True)
    kinds: dict[str, int] = {}
    for a in result.assets:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    not_portable = sum(1 for a in result.assets if not a.portable)
    out.print(
        "assets: "
        + (", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "none")
        + (f" ({not_portable} not portable)" if not_portable else ""),
        soft_wrap=True,
    )
    out.print(
        f"planned: {result.planned_files} files, {result.planned_bytes:,} bytes; "
        f"data payloads left out: {result.data_skipped_bytes:,} bytes"
        + (
            " (--include data exports what runs read and wrote; 'amlport backup' keeps the rest)"
            if result.data_skipped_bytes
            else ""
        ),
        soft_wrap=True,
    )
    cached = result.cache_line()
    if cached:
        out.print(cached, soft_wrap=True)
    if verbose:
        common.show_table(
            "Assets" + (" (dry run: nothing written)" if dry_run else ""),
            [("kind", "text"), ("name", "path"), ("files", "num"), ("portable", "text"),
             ("v2 yaml", "path")],
            [
                [a.kind, a.name, str(len(a.files)),
                 "yes" if a.portable else styled("no", "yellow"), a.v2_yaml or "-"]
                for a in sorted(result.assets, key=lambda a: (a.kind, a.name))
            ],
        )  # fmt: skip
    common.say_each("skipped", "yellow", [f"{n}: {r}" for n, r in result.skipped], verbose)
    shown, more = common.some(list(result.warnings), verbose)
    for w in shown:
        common.warn(w)
    if more:
        common.warn(f"and {more} more (all in --json and the manifest)")


RepoArg = typer.Argument(..., help="Bundle repository folder.")
RepoLocArg = typer.Argument(..., help=f"{REPO_HELP}.")


@shared_options
def verify(
    repo: str = typer.Argument(..., help=f"{REPO_HELP}; REPO@SNAPSHOT checks only that snapshot."),
    snapshot: str | None = snapshot_option("Only this snapshot (an id, a prefix or 'latest')."),
    source: str | None = SourceOpt,
    deep: bool = typer.Option(
        False,
        "--deep",
        help="Also load every v2 YAML with azure.ai.ml and MLmodel with mlflow (in two child "
        "processes; one that gives no result within $AMLPORT_DEEP_TIMEOUT seconds per "
        "document, 10 by default, ends the check with exit 2).",
    ),
    secrets: bool = typer.Option(
        False,
        "--secrets",
        help="Also search every stored file for secrets (exit 4 on any; values never shown).",
    ),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Check every referenced object is present and hashes right. Exit 4 on any problem."""
    with guarded():
        arg = repo_creds.arg(
            repo,
            snapshot=snapshot,
        )
        repository = arg.open()
        if arg.snapshot is not None:  # an id, a prefix or 'latest' (of --source): one snapshot
            snapshot = arg.snapshot_id(repository, source)
        elif source is not None:
            raise UsageError(
                "--source chooses which snapshot 'latest' means: give --snapshot latest too",
                hint="without --snapshot, verify checks every snapshot",
            )
        with contextlib.ExitStack() as stack:
            check = None
            if deep:  # its loader processes start now: they import while the objects are read
                from amlport.export.deep import DeepCheck

                check = stack.enter_context(DeepCheck())
            report = repository.verify(snapshot)
            doc = report.to_dict()
            deep_problems: list[dict[str, Any]] = []
            if check is not None:
                doc["deep"] = _deep_check(check, repository, snapshot, report, deep_problems)
        hits = _secrets_check(repository, snapshot, doc) if secrets else []
        if as_json:
            bad = not report.ok or hits
            code = ExitCode.INTEGRITY if bad else ExitCode.OK
            if deep_problems and not bad:
                code = ExitCode.WARNINGS  # an intact bundle holding a spec that does not load
            common.emit_json("verify", doc, code)
        else:
            _render_verify(doc, deep_problems)
        if not report.ok:
            raise IntegrityError(
                _first_problem(doc, deep_problems),
                hint="restore the object from another copy or re-export",
            )
        if hits:
            raise IntegrityError(
                f"{len(hits)} stored file(s) hold what looks like a secret; first: {hits[0]}",
                hint="rotate the credentials, then forget the snapshots that hold them and "
                "prune (docs/exporting.md)",
            )
        if deep_problems:  # the bundle is intact: the specs are invalid as stored
            common.warn(
                f"{len(deep_problems)} document(s) do not load; the bundle is intact "
                "(every object hashes right): fix the spec in the workspace and re-export"
            )
            raise typer.Exit(int(ExitCode.WARNINGS))
    raise typer.Exit(int(ExitCode.OK))


def _deep_check(
    check: DeepCheck,
    repository: Repository,
    snapshot: str | None,
    report: VerifyReport,
    deep_problems: list[dict[str, Any]],
) -> dict[str, Any]:
    """``--deep``: every snapshot's documents loaded (each snapshot read as a stream); its
    problems appended to ``deep_problems``. A snapshot that failed its own check is not
    read again: it raises the error its read raises."""
    from amlport.bundle.verification import CORRUPT_SNAPSHOT

    damaged = {p.snapshot_id: p.message for p in report.problems if p.kind == CORRUPT_SNAPSHOT}
    ids = [snapshot] if snapshot else [s.id for s in repository.list_snapshots()]
    checked = 0
    for sid in ids:
        if sid in damaged:
            raise IntegrityError(
                damaged[sid], hint="forget the snapshot, or restore the repository from a copy"
            )
        n, problems = check.check(repository, sid)
        checked += n
        deep_problems += [
            {"snapshot": sid, **p.to_dict(), "summary": p.summary()} for p in problems
        ]
    return {"checked": checked, "problems": deep_problems}


def _secrets_check(repository: Repository, snapshot: str | None, doc: dict[str, Any]) -> list[str]:
    """``--secrets``: the report goes into ``doc``; the hits, described (no value), returned."""
    from amlport.bundle.secrets_scan import scan_repository

    report = scan_repository(repository, snapshot)
    doc["secrets"] = report.to_dict()
    return [hit.describe() for hit in report.hits]


def _render_verify(doc: dict[str, Any], deep_problems: list[dict[str, str]]) -> None:
    common.out.print(
        f"verified {len(doc['snapshots'])} snapshot(s), {doc['objects_checked']} object(s), "
        f"{doc['bytes_checked']:,} bytes"
        + (f", {doc['pieces_checked']} snapshot piece(s)" if doc.get("pieces_checked") else ""),
        highlight=False,
    )
    for p in doc["problems"]:
        where = ", ".join(p["paths"][:3])
        common.say("problem", "red", p["message"] + (f" ({where})" if where else ""))
    for p in deep_problems:
        common.say("deep", "yellow", p["summary"])
        common.write_document(p["reason"] + "\n")  # the whole reason, control chars escaped
    if "deep" in doc:
        common.out.print(f"deep: {doc['deep']['checked']} documents loaded", highlight=False)
    if "secrets" in doc:
        found = doc["secrets"]
        common.out.print(
            f"secrets: {found['objects_scanned']} object(s), {found['bytes_scanned']:,} bytes "
            f"searched, {len(found['hits'])} hit(s)",
            highlight=False,
        )
        for hit in found["hits"]:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(hit["kinds"].items()))
            where = f"{common.short_id(hit['snapshot'])} {hit['path']}"
            common.say("secret", "red", f"{where}: {kinds}")


def _first_problem(doc: dict[str, Any], deep_problems: list[dict[str, str]]) -> str:
    if doc["problems"]:
        p = doc["problems"][0]
        paths = f" ({', '.join(p['paths'][:3])})" if p["paths"] else ""
        return f"integrity check failed: {p['message']}{paths}"
    return "integrity check failed"


@shared_options
def snapshots(
    repo: str = RepoLocArg,
    source: str | None = SourceOpt,
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """List the snapshots of a repository, oldest first.

    A snapshot of a run that did not finish (exit 3) is marked incomplete ('complete' in
    --json): prefer a complete one to restore from.
    """
    with guarded():
        arg = repo_creds.arg(
            repo,
            allow_snapshot=False,
        )
        from amlport.bundle.sources import of_source, parse_source

        with arg.open() as repository:
            infos = of_source(repository.list_snapshots(), parse_source(source))
            rows = [_info_row(i, _complete(repository, i)) for i in infos]
        if as_json:
            common.emit_json("snapshots", {"snapshots": rows}, ExitCode.OK)
        else:
            common.show_table(
                f"Snapshots ({len(rows)})",
                [("id", "id"), ("created", "id"), ("source", "path"), ("tags", "text"),
                 ("assets", "num"), ("files", "num"), ("complete", "text")],
                [
                    [common.short_id(r["id"]), r["created"][:19], r["source_key"],
                     ",".join(r["tags"]) or "-", str(r["assets"]), str(r["files"]),
                     "yes" if r["complete"] else styled("no", "yellow")]
                    for r in rows
                ],
            )  # fmt: skip
    raise typer.Exit(0)


def _complete(repository: Repository, info: SnapshotInfo) -> bool:
    """Whether the run that wrote the snapshot finished (``stats.complete`` of its manifest;
    a snapshot written before the flag existed counts as complete)."""
    return info.complete


def _info_row(info: SnapshotInfo, complete: bool) -> dict[str, Any]:
    return {
        "id": info.id,
        "short_id": common.short_id(info.id),
        "created": info.created.isoformat(),
        "source_key": info.source_key,
        "account": info.account,
        "workspace": info.workspace,
        "tags": list(info.tags),
        "parent": info.parent,
        "assets": info.assets,
        "files": info.files,
        "size": info.size,
        "counts": info.counts,
        "complete": complete,
    }


@shared_options
def pack(
    repo: str = typer.Argument(..., help=REPO_AT_HELP),
    snapshot: str | None = snapshot_option(
        "Snapshot id (or prefix, or 'latest') to pack; or give REPO@ID."
    ),
    source: str | None = SourceOpt,
    output: Path = output_option("The .tar.gz to write.", required=True),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Write one snapshot and exactly its objects to a .tar.gz for handing over.

    A pack of an encrypted repository stays encrypted (its objects as stored, config.json
    and wrapped keys; never a key or passphrase): give the repository's key to write it."""
    with guarded():
        arg = repo_creds.arg(
            repo,
            snapshot=snapshot,
        )
        if arg.snapshot is None:
            raise UsageError(
                "pack needs the snapshot to write",
                hint="give REPO@ID or --snapshot ID ('latest' for the newest)",
            )
        common.reads_repository(arg.location)
        common.output_path(output)  # again, now that the repository is known as read
        with arg.open() as repository:
            chosen = arg.snapshot_id(repository, source)
            report = repository.pack(chosen, output)
        if as_json:
            doc = {
                "snapshot": report.snapshot_id,
                "objects": report.objects,
                "pieces": report.pieces,
                "bytes": report.bytes,
                "output": str(output),
                "encrypted": report.encrypted,
            }
            common.emit_json("pack", doc, ExitCode.OK)
        else:
            common.out.print(
                f"packed snapshot {common.short_id(report.snapshot_id)}: {report.objects} "
                f"objects and {report.pieces} snapshot pieces, {report.bytes:,} bytes into "
                f"{output}",
                soft_wrap=True,
            )
    raise typer.Exit(0)


@shared_options
def unpack(
    archive: Path = typer.Argument(..., exists=True, dir_okay=False, help="A .tar.gz from pack."),
    repo: str | None = typer.Option(
        None,
        "--repo",
        help=f"{REPO_HELP} to unpack into (created if missing). Required.",
        show_default=False,
    ),
    old_to: str | None = typer.Option(None, "--to", hidden=True, help="Old name of --repo."),
    as_json: bool = common.JsonOpt,
    repo_creds: RepoCredentials = REPO,
    repo_key_file: str | None = RepoKeyFileOpt,
) -> None:
    """Import a packed snapshot into a repository. Rejects absolute paths, '..' and links.

    An encrypted pack needs the key of the repository it was packed from (--key-file or
    $AMLPORT_REPO_KEY) and goes into a new repository (opened by the same keys) or into
    one with the same master key; it is never decrypted or re-encrypted."""
    with guarded():
        to = common.renamed("unpack", ("--repo", repo), ("--to", old_to))
        arg = repo_creds.arg(
            to,
            allow_snapshot=False,
            where="--repo",
        )
        from amlport.bundle import Repository

        report = Repository.unpack(archive, arg.location, auth=arg.auth)
        if as_json:
            doc = {
                "snapshots": list(report.snapshots),
                "objects_added": report.objects_added,
                "objects_present": report.objects_present,
                "repo": str(to),
                "encrypted": report.encrypted,
            }
            common.emit_json("unpack", doc, ExitCode.OK)
        else:
            common.out.print(
                f"unpacked {len(report.snapshots)} snapshot(s) into {to}: "
                f"{report.objects_added} objects added, {report.objects_present} "
                "already present",
                soft_wrap=True,
            )
    raise typer.Exit(0)
