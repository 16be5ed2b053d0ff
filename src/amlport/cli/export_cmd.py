"""``export``, ``verify``, ``snapshots``, ``pack`` and ``unpack``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from amlport.bundle import Repository
from amlport.bundle.snapshots import SnapshotInfo
from amlport.cli import common
from amlport.cli.common import ConnOpt, CredOpt, KeyOpt, SasOpt, WsFileOpt, guarded
from amlport.cli.repo_options import (
    REPO_HELP,
    RepoConnOpt,
    RepoCredOpt,
    RepoKeyOpt,
    RepoSasOpt,
    SourceOpt,
    repo_auth,
)
from amlport.cli.terminal import line, styled
from amlport.errors import ExitCode, IntegrityError

if TYPE_CHECKING:
    from amlport.export import ExportResult

# The default --include, spelled out here so that --help needs no export import.
DEFAULT_INCLUDE = ("environments", "models", "pipelines", "runs")


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("verify")(verify)
    app.command("snapshots")(snapshots)
    app.command("pack")(pack)
    app.command("unpack")(unpack)


def export(
    source: str = typer.Argument(..., help="Folder of a workspace storage copy, or account URL."),
    to: str = typer.Option(..., "--to", help=f"{REPO_HELP} (created if missing)."),
    select: list[str] | None = typer.Option(
        None,
        "--select",
        help="KIND:NAME to export (repeatable); KIND is model, pipeline, "
        "environment, run or data. Default: everything of the --include kinds.",
    ),
    include: str = typer.Option(
        ",".join(sorted(DEFAULT_INCLUDE)),
        "--include",
        help="Kinds to export: models,pipelines,environments,runs,data (data payloads only "
        "when listed).",
    ),
    specs: Path | None = typer.Option(
        None, "--specs", file_okay=False, help="A folder of v2 YAML (kept in git) to add."
    ),
    tag: list[str] | None = typer.Option(None, "--tag", help="Tag the snapshot (repeatable)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would be exported."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    workers: int = typer.Option(8, "--workers", min=1, max=64, help="Parallel transfers."),
    cache_dir: Path | None = common.CacheDirOpt,
    no_cache: bool = common.NoCacheOpt,
    connection_string: str | None = ConnOpt,
    account_key: str | None = KeyOpt,
    sas_token: str | None = SasOpt,
    credential: str | None = CredOpt,
    workspace_file: Path | None = WsFileOpt,
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """Export models, pipelines, environments and run records to a verifiable bundle.

    Storage URIs are rewritten to a neutral, datastore-relative form and secrets are removed.
    Re-running reads only what changed. Exit 0 ok, 1 warnings/skipped items, 3 partial.
    """
    with guarded():
        from amlport.export import ExportRequest, run_export
        from amlport.export.selection import parse_include

        request = ExportRequest(
            select=list(select or []),
            include=parse_include(include),
            specs=specs,
            dry_run=dry_run,
            tags=list(tag or []),
            workers=workers,
            cache_dir=common.cache_folder(cache_dir, no_cache),
        )
        auth = repo_auth(
            to, repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        with (
            common.source_from(
                source, connection_string, account_key, sas_token, credential, workspace_file
            ) as src,
            common.progress_reporter(not as_json) as progress,
        ):
            result = run_export(
                src, to, request, progress=progress, repo_auth=auth, on_warning=common.warn
            )
        if as_json:
            common.write_json(result.to_dict(), None)
        else:
            _render_export(result, dry_run)
        _failure_line(result)
    raise typer.Exit(int(result.exit_code))


MAX_WARNINGS_SHOWN = 20


def _failure_line(result: ExportResult) -> None:
    """Exit 3/4: one line on stderr saying what failed and why (docs/exit-codes.md)."""
    s = result.stats
    if s is None or not s.failures:
        return
    what = "integrity failure" if s.integrity_failures else "partial failure"
    why = s.stopped or s.failures[0].split(": ", 1)[-1]
    common.err.print(
        f"amlport: {what}: {len(s.failures)} of {result.planned_files} files not exported: {why}",
        soft_wrap=True,
        markup=False,
        highlight=False,
    )
    common.err.print(
        "  hint: the snapshot records what was exported (marked incomplete); "
        "run the same export again to finish it",
        soft_wrap=True,
        highlight=False,
    )


def _render_export(result: ExportResult, dry_run: bool) -> None:
    out = common.out
    t = Table(
        title="Assets" + (" (dry run: nothing written)" if dry_run else ""), title_justify="left"
    )
    for col in ("kind", "name", "files", "portable", "v2 yaml"):
        t.add_column(col, overflow="fold")
    for a in sorted(result.assets, key=lambda a: (a.kind, a.name)):
        t.add_row(
            a.kind,
            a.name,
            str(len(a.files)),
            "yes" if a.portable else styled("no", "yellow"),
            a.v2_yaml or "-",
        )
    out.print(t)
    out.print(
        f"planned: {result.planned_files} files, {result.planned_bytes:,} bytes; "
        f"data payloads left out: {result.data_skipped_bytes:,} bytes "
        "(add --include data to export them)"
    )
    for node, reason in result.skipped:
        common.say("skipped", "yellow", f"{node}: {reason}")
    if result.stats is not None:
        s = result.stats
        out.print(
            line(
                "snapshot ",
                (result.snapshot_id, "bold"),
                f" (parent {result.parent or '-'}): "
                f"{s.files} files, {s.new_objects} new objects, {s.new_bytes:,} new bytes, "
                f"{s.reused} reused, {s.rewritten} rewritten",
            )
        )
    cached = result.cache_line()
    if cached:
        out.print(cached, highlight=False)
    for w in result.warnings[:MAX_WARNINGS_SHOWN]:
        common.warn(w)
    if len(result.warnings) > MAX_WARNINGS_SHOWN:
        more = len(result.warnings) - MAX_WARNINGS_SHOWN
        common.warn(f"… and {more} more (all in --json and the manifest)")


RepoArg = typer.Argument(..., help="Bundle repository folder.")
RepoLocArg = typer.Argument(..., help=f"{REPO_HELP}.")


def verify(
    repo: str = RepoLocArg,
    snapshot: str | None = typer.Option(None, "--snapshot", help="Only this snapshot."),
    deep: bool = typer.Option(
        False, "--deep", help="Also load every v2 YAML with azure.ai.ml and MLmodel with mlflow."
    ),
    secrets: bool = typer.Option(
        False,
        "--secrets",
        help="Also search every stored file for secrets (exit 4 on any; values never shown).",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """Check every referenced object is present and hashes right. Exit 4 on any problem."""
    with guarded():
        auth = repo_auth(
            repo, repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        repository = Repository.open(repo, auth=auth)
        report = repository.verify(snapshot)
        doc = report.to_dict()
        deep_problems: list[dict[str, str]] = []
        if deep:
            from amlport.export.deep import deep_verify

            ids = [snapshot] if snapshot else [s.id for s in repository.list_snapshots()]
            checked = 0
            for sid in ids:
                n, problems = deep_verify(repository, repository.load_snapshot(sid))
                checked += n
                deep_problems += [
                    {"snapshot": sid, "path": p.path, "reason": p.reason} for p in problems
                ]
            doc["deep"] = {"checked": checked, "problems": deep_problems}
        hits = _secrets_check(repository, snapshot, doc) if secrets else []
        if as_json:
            common.write_json(doc, None)
        else:
            _render_verify(doc, deep_problems)
        if not report.ok or deep_problems:
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
    raise typer.Exit(int(ExitCode.OK))


def _secrets_check(repository: Repository, snapshot: str | None, doc: dict[str, Any]) -> list[str]:
    """``--secrets``: the report goes into ``doc``; the hits, described (no value), returned."""
    from amlport.bundle.secrets_scan import scan_repository

    report = scan_repository(repository, snapshot)
    doc["secrets"] = report.to_dict()
    return [hit.describe() for hit in report.hits]


def _render_verify(doc: dict[str, Any], deep_problems: list[dict[str, str]]) -> None:
    common.out.print(
        f"verified {len(doc['snapshots'])} snapshot(s), {doc['objects_checked']} object(s), "
        f"{doc['bytes_checked']:,} bytes",
        highlight=False,
    )
    for p in doc["problems"]:
        where = ", ".join(p["paths"][:3])
        common.say("problem", "red", p["message"] + (f" ({where})" if where else ""))
    for p in deep_problems:
        common.say("deep", "red", f"{p['path']}: {p['reason']}")
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
            common.say("secret", "red", f"{hit['snapshot'][:12]} {hit['path']}: {kinds}")


def _first_problem(doc: dict[str, Any], deep_problems: list[dict[str, str]]) -> str:
    if doc["problems"]:
        p = doc["problems"][0]
        paths = f" ({', '.join(p['paths'][:3])})" if p["paths"] else ""
        return f"integrity check failed: {p['message']}{paths}"
    p = deep_problems[0]
    return f"integrity check failed: {p['path']} does not load: {p['reason']}"


def snapshots(
    repo: str = RepoLocArg,
    source: str | None = SourceOpt,
    as_json: bool = typer.Option(False, "--json", help="Print as JSON."),
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """List the snapshots of a repository, oldest first."""
    with guarded():
        auth = repo_auth(
            repo, repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        from amlport.bundle.sources import of_source, parse_source

        with Repository.open(repo, auth=auth) as repository:
            infos = of_source(repository.list_snapshots(), parse_source(source))
            rows = [_info_row(i) for i in infos]
        if as_json:
            common.write_json(rows, None)
        else:
            t = Table(title=f"Snapshots ({len(rows)})", title_justify="left")
            for col in ("id", "created", "source", "tags", "assets", "files"):
                t.add_column(col, overflow="fold")
            for r in rows:
                t.add_row(
                    r["id"][:16],
                    r["created"],
                    r["source_key"],
                    ",".join(r["tags"]),
                    str(r["assets"]),
                    str(r["files"]),
                )
            common.out.print(t)
    raise typer.Exit(0)


def _info_row(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
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
    }


def pack(
    repo: Path = typer.Argument(..., help=REPO_HELP),
    snapshot: str = typer.Option(..., "--snapshot", help="Snapshot id (or prefix) to pack."),
    output: Path = typer.Option(
        ..., "-o", "--output", callback=common.checked_output, help="The .tar.gz to write."
    ),
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """Write one snapshot and exactly its objects to a .tar.gz for handing over."""
    with guarded():
        auth = repo_auth(
            str(repo), repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        common.reads_repository(repo)
        common.output_path(output)  # again, now that the repository is known as read
        with Repository.open(repo, auth=auth) as repository:
            report = repository.pack(snapshot, output)
        common.out.print(
            f"packed snapshot {report.snapshot_id[:16]}: {report.objects} objects, "
            f"{report.bytes:,} bytes into {output}",
            highlight=False,
        )
    raise typer.Exit(0)


def unpack(
    archive: Path = typer.Argument(..., exists=True, dir_okay=False, help="A .tar.gz from pack."),
    to: Path = typer.Option(
        ..., "--to", help="Repository to unpack into (created if missing): a folder or az://…"
    ),
    repo_connection_string: str | None = RepoConnOpt,
    repo_account_key: str | None = RepoKeyOpt,
    repo_sas_token: str | None = RepoSasOpt,
    repo_credential: str | None = RepoCredOpt,
) -> None:
    """Import a packed snapshot into a repository. Rejects absolute paths, '..' and links."""
    with guarded():
        auth = repo_auth(
            str(to), repo_connection_string, repo_account_key, repo_sas_token, repo_credential
        )
        report = Repository.unpack(archive, to, auth=auth)
        common.out.print(
            f"unpacked {len(report.snapshots)} snapshot(s) into {to}: "
            f"{report.objects_added} objects added, {report.objects_present} "
            "already present",
            highlight=False,
        )
    raise typer.Exit(0)
