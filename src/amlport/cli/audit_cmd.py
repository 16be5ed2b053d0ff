"""``amlport audit``: resilience settings and workspace hygiene, with CI-friendly outputs.

Registered on the main app by ``audit_cmd.register(app)``. Reads only: the SOURCE is walked
read-only, the data-plane calls are GETs, the ``--arm`` files are local, ``--arm-live`` only
lists and gets.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from amlport.cli import common
from amlport.cli.common import WsFileOpt, guarded
from amlport.cli.options import SOURCE, StorageCredentials, output_option, shared_options
from amlport.cli.terminal import SafeConsole
from amlport.errors import UsageError
from amlport.model.findings import Severity

# The audit's modules load when `audit` runs, not with the CLI: every other command (a
# scheduled backup above all) would pay for them at start-up.
if TYPE_CHECKING:
    from amlport.audit.engine import AuditReport
    from amlport.audit.facts import ControlPlane
    from amlport.audit.runner import AuditRequest
    from amlport.model.workspace import WorkspaceDescriptor

FAIL_ON = ("low", "medium", "high")
FORMAT_NAMES = ("table", "json", "sarif", "markdown")  # amlport.audit.report_formats.FORMATS

AUDIT_HELP = """Audit a workspace: storage resilience settings, locks, key vault, and hygiene.

SOURCE (a local copy or an account URL) is walked for hygiene findings, and for a live
account its SKU and blob soft delete are read from the storage service. --arm DIR adds the
control-plane facts from az JSON exports (see docs/audit.md); --arm-live reads them from
Azure Resource Manager instead. A rule whose facts cannot be read is reported as not checked,
never as passed.

Exit 0 when nothing failed, 1 when failures are all below --fail-on, 5 when one is at or above
it, 2 on errors.
"""


def register(app: typer.Typer) -> None:
    """Add the ``audit`` command to ``app``."""
    app.command(name="audit", help=AUDIT_HELP)(audit)


@shared_options
def audit(
    source: str | None = typer.Argument(
        None, help="Folder of a workspace storage copy, or account URL (optional with --arm)."
    ),
    arm: Path | None = typer.Option(
        None, "--arm", help="Folder of az JSON exports (control-plane facts).", file_okay=False
    ),
    arm_live: bool = typer.Option(
        False, "--arm-live", help="Read the control-plane facts from ARM (needs amlport[arm])."
    ),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help=f"One of: {', '.join(FORMAT_NAMES)}. Default: table."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Same as --format json (docs/json.md; not with another --format)."
    ),
    output: Path | None = output_option("Write the report here."),
    fail_on: str = typer.Option("high", "--fail-on", help="low, medium or high: exit 5 at/above."),
    strict: bool = typer.Option(False, "--strict", help="Count not-checked rules as failed."),
    rule: list[str] | None = typer.Option(None, "--rule", help="Only these rule ids/patterns."),
    skip: list[str] | None = typer.Option(None, "--skip", help="Skip these rule ids/patterns."),
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
) -> None:
    with guarded():
        from amlport.audit.runner import AuditRequest, run_audit
        from amlport.storage.local import load_descriptor_file

        if as_json and fmt not in (None, "json"):
            raise UsageError(
                f"--json and --format {fmt} ask for two formats", hint="give one of them"
            )
        fmt = "json" if as_json else (fmt or "table")
        severity = _check_options(fmt, fail_on, source, arm, arm_live)
        request = AuditRequest(only=rule or (), skip=skip or ())
        descriptor = load_descriptor_file(workspace_file) if workspace_file else None
        if source is not None:
            descriptor = _read_source(
                request, source, creds, workspace_file, show_progress=output is None
            )
        request.control_plane = _control_plane(arm, arm_live, descriptor)
        report = run_audit(request)
        _emit(report, fmt, severity, strict, output)
        code = report.exit_code(severity, strict=strict)
    raise typer.Exit(int(code))


def _check_options(
    fmt: str, fail_on: str, source: str | None, arm: Path | None, arm_live: bool
) -> Severity:
    if fmt not in FORMAT_NAMES:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"use one of {', '.join(FORMAT_NAMES)}")
    if fail_on.lower() not in FAIL_ON:
        raise UsageError(f"unknown --fail-on {fail_on!r}", hint="use low, medium or high")
    if arm is not None and arm_live:
        raise UsageError("--arm and --arm-live exclude each other", hint="give one of them")
    if source is None and arm is None and not arm_live:
        raise UsageError(
            "nothing to audit",
            hint="give SOURCE (a workspace storage copy or account URL), --arm DIR, or both",
        )
    return Severity(fail_on.lower())


def _read_source(
    request: AuditRequest,
    location: str,
    creds: StorageCredentials,
    workspace_file: Path | None,
    *,
    show_progress: bool,
) -> WorkspaceDescriptor:
    """Walk SOURCE and ask its storage service for the data-plane facts."""
    from amlport.audit.dataplane import collect_data_plane
    from amlport.walk import WalkOptions, walk

    with (
        creds.open_source(location, workspace_file) as src,
        common.progress_reporter(show_progress) as progress,
    ):
        request.inventory = walk(src, options=WalkOptions(progress=progress))
        request.data_plane = collect_data_plane(src)
        request.source_label = src.describe()
        return src.descriptor


def _control_plane(
    arm: Path | None, arm_live: bool, descriptor: WorkspaceDescriptor | None
) -> ControlPlane:
    from amlport.audit.armfiles import load_arm_folder
    from amlport.audit.facts import ControlPlane

    if arm is not None:
        return load_arm_folder(arm)
    if arm_live:
        return _live(descriptor)
    return ControlPlane()


def _live(descriptor: WorkspaceDescriptor | None) -> ControlPlane:
    from amlport.audit.armlive import LiveTarget, collect_live

    if descriptor is None or not (descriptor.subscription_id and descriptor.resource_group):
        raise UsageError(
            "--arm-live needs the subscription and resource group of the storage account",
            hint="add subscription_id and resource_group to workspace.yaml (--workspace-file)",
        )
    target = LiveTarget(
        subscription_id=descriptor.subscription_id,
        resource_group=descriptor.resource_group,
        account=descriptor.account,
        workspace=descriptor.workspace,
    )
    return collect_live(target)


TABLE_FILE_WIDTH = 160


def _table_text(report: AuditReport, fail_on: Severity, strict: bool) -> str:
    """The table as plain text (for ``--format table -o FILE``)."""
    from amlport.audit.report_table import render_table

    buf = io.StringIO()
    console = SafeConsole(file=buf, width=TABLE_FILE_WIDTH, no_color=True, color_system=None)
    for part in render_table(report, fail_on, strict=strict):
        console.print(part)
    return buf.getvalue()


def _emit(
    report: AuditReport, fmt: str, fail_on: Severity, strict: bool, output: Path | None
) -> None:
    from amlport.audit.report_formats import render_text
    from amlport.audit.report_table import render_table

    if output is not None:
        text = (
            _table_text(report, fail_on, strict)
            if fmt == "table"
            else render_text(report, fmt, fail_on, strict=strict)
        )
        common.write_text_atomic(output, text)
        _summary_line(report, fmt, fail_on, strict, output)
    elif fmt == "table":
        _print_table(render_table(report, fail_on, strict=strict))
    else:
        common.write_document(
            render_text(report, fmt, fail_on, strict=strict), is_json=fmt in ("json", "sarif")
        )
        for warning in report.warnings:
            common.err.print(f"warning: {warning}", highlight=False)


# Column kinds for ``common.show_table``: rule ids whole, places folded at '/'.
_COLUMN_KINDS = {"Rule": "id", "Severity": "id", "Where": "path"}


def _print_table(parts: list[Any]) -> None:
    """The audit's renderables on stdout the way every command prints: the summary (the
    footer) right after the header, then each table through ``common.show_table`` (plain
    lines in a log, a fitted table or one block per result on a terminal)."""
    from rich.table import Table
    from rich.text import Text

    header, *middle, footer = parts
    common.out.print(header, soft_wrap=True)
    common.out.print(footer, soft_wrap=True)
    for part in middle:
        if not isinstance(part, Table):
            common.out.print(part, soft_wrap=True)
            continue
        columns = [(str(c.header), _COLUMN_KINDS.get(str(c.header), "text")) for c in part.columns]
        cells = [list(c.cells) for c in part.columns]
        rows = []
        for i in range(part.row_count):
            row = []
            for column in cells:
                cell = column[i]
                text = cell.plain if isinstance(cell, Text) else str(cell)
                row.append(text.replace("\n", "; "))
            rows.append(row)
        common.show_table(str(part.title or ""), columns, rows)


def _summary_line(
    report: AuditReport, fmt: str, fail_on: Severity, strict: bool, output: Path
) -> None:
    s = report.summary()
    code = int(report.exit_code(fail_on, strict=strict))
    common.err.print(
        f"wrote {fmt} audit report to {output}: {s['fail']} failed, {s['not_checked']} not "
        f"checked, {s['pass']} passed (exit {code})",
        highlight=False,
    )
    for warning in report.warnings:
        common.err.print(f"warning: {warning}", highlight=False)
