"""``amlport``: back up, audit and migrate Azure Machine Learning workspaces."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from amlport import __version__
from amlport.bundle.notices import Warnings
from amlport.cli import (
    audit_cmd,
    backup_cmd,
    browse_cmd,
    common,
    describe_cmd,
    export_cmd,
    import_cmd,
    plugins_cmd,
    repo_cmd,
    report_cmd,
)
from amlport.cli.common import WsFileOpt, guarded
from amlport.cli.helpfmt import AmlportGroup
from amlport.cli.options import SOURCE, StorageCredentials, output_option, shared_options
from amlport.cli.process import stop_on_sigterm, tune_malloc
from amlport.cli.terminal import ClosedPipeSafe
from amlport.errors import UsageError
from amlport.lineage.formats import FORMATS

# The walk, the lineage graph and the scan's view are imported by the commands that use
# them: every other command (a backup decided from its listing) starts without them.
if TYPE_CHECKING:
    from amlport.lineage.graph import LineageGraph
    from amlport.model.inventory import Inventory

EXIT_CODES_HELP = (
    "Exit codes: 0 ok, 1 findings/warnings, 2 error, 3 partial failure, 4 integrity failure, "
    "5 policy violation, 130 interrupted, 143 terminated (docs/exit-codes.md)."
)

app = typer.Typer(
    name="amlport",
    cls=AmlportGroup,  # metavars, --debug after the command name (cli/helpfmt.py)
    help="Back up, audit and migrate Azure Machine Learning workspaces from their storage "
    "account. SOURCE is a local copy (a folder with one sub-folder per container) or an "
    "account URL such as https://<account>.blob.core.windows.net[/<container>]. " + EXIT_CODES_HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Help is plain text: with rich markup, "amlport[identity]" showed as "amlport".
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        common.out.print(f"amlport {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    profile: str | None = typer.Option(
        None,
        "--profile",
        envvar="AMLPORT_PROFILE",
        metavar="NAME",
        help="Take SOURCE, REPO, credentials (by reference) and other defaults from this "
        "profile of amlport.toml (docs/settings.md); the command line wins.",
        show_default=False,
    ),
    version: bool | None = typer.Option(
        None, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    common.State.debug = debug
    common.State.reads = []
    if profile is not None:
        with guarded():
            from amlport.cli.settings import command_defaults, load_profile

            ctx.default_map = command_defaults(ctx.command, load_profile(profile))
    Warnings.sink = common.warn


def _walk(
    source_loc: str,
    specs: Path | None,
    creds: StorageCredentials,
    ws_file: Path | None,
    show_progress: bool,
) -> tuple[Inventory, LineageGraph, str, int]:
    """The inventory, its graph, the location walked, and how many storage calls were retried."""
    if specs is not None and not specs.is_dir():
        raise UsageError(f"--specs {specs} is not a folder", hint="give a folder of v2 YAML")
    with (
        creds.open_source(source_loc, ws_file) as source,
        common.progress_reporter(show_progress) as progress,
    ):
        source.start_listing()  # an Azure source lists while the walk's modules load
        from amlport.lineage import build_graph
        from amlport.walk import WalkOptions, walk

        inv = walk(source, options=WalkOptions(specs=specs, progress=progress))
        described = source.describe()
    return inv, build_graph(inv), described, source.retry_count


# The walk allocates many small objects that live to the end (listing entries, records,
# parsed values): at the default 700 allocations per young collection, 11.6k blobs cost
# ~730 collections and 0.3 s of CPU (8 % of scan's client CPU; docs/design/0005, "Scan speed
# and retry reporting"); at 10,000, ~50 and 0.1 s. Only cyclic garbage waits longer.
YOUNG_COLLECTION_EVERY = 10_000


@contextmanager
def _young_collections_less_often() -> Iterator[None]:
    """Collect the youngest generation every ``YOUNG_COLLECTION_EVERY`` allocations during
    the block (the older generations' thresholds unchanged); restored after it."""
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], YOUNG_COLLECTION_EVERY), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


SpecsOpt = typer.Option(
    None,
    "--specs",
    help="A folder of v2 YAML kept in git, merged into the graph.",
    file_okay=False,
)


@app.command()
@shared_options
def scan(
    source: str = typer.Argument(..., help="Folder of a workspace storage copy, or account URL."),
    specs: Path | None = SpecsOpt,
    as_json: bool = common.JsonOpt,
    output: Path | None = output_option("Also write the JSON report to this file."),
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
) -> None:
    """Walk a workspace's storage: runs, outputs, models, environments, specs, findings.

    Reads only; never writes to SOURCE. Exit 0 when clean, 1 when findings were reported.
    """
    with guarded(), _young_collections_less_often():
        inv, lg, described, retries = _walk(
            source,
            specs,
            creds,
            workspace_file,
            show_progress=not as_json,
        )
        from amlport.cli.scan_view import exit_code_for, render_scan, scan_report

        report = scan_report(inv, lg, described, retries=retries)
        if output is not None:
            common.emit_json("scan", report, exit_code_for(inv), output)
        if as_json:
            common.emit_json("scan", report, exit_code_for(inv))
        else:
            render_scan(common.out, inv, lg, described)
    raise typer.Exit(exit_code_for(inv))


@app.command()
@shared_options
def lineage(
    source: str = typer.Argument(..., help="Folder of a workspace storage copy, or account URL."),
    node: list[str] | None = typer.Option(
        None, "--node", help="Limit to this node (id, id suffix such as a run id, or label)."
    ),
    upstream: bool = typer.Option(False, "--upstream", help="Only what the node derives from."),
    downstream: bool = typer.Option(False, "--downstream", help="Only what derives from it."),
    impact: list[str] | None = typer.Option(
        None,
        "--impact",
        help="What a change to this node (data, output, model) would affect: the node and "
        "the runs, outputs, models and specs downstream of it (repeatable).",
    ),
    fmt: str | None = typer.Option(
        None, "--format", "-f", help=f"One of: {', '.join(FORMATS)}. Default: json."
    ),
    as_json: bool = common.JsonOpt,
    output: Path | None = output_option("Write to this file."),
    specs: Path | None = SpecsOpt,
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
) -> None:
    """Build the lineage graph and print it (JSON, GraphML, DOT, Mermaid or OpenLineage).

    With --node, print the node with everything upstream and downstream of it (or only one
    side with --upstream / --downstream). With --impact, print what a change to the node
    would affect. Exit 1 when the walk reported findings.
    """
    with guarded():
        fmt = _lineage_format(fmt, as_json, node, upstream=upstream, downstream=downstream)
        if impact and node:
            raise UsageError("--impact excludes --node", hint="give one of them")
        inv, lg, _, _ = _walk(
            source,
            specs,
            creds,
            workspace_file,
            show_progress=output is not None,
        )
        from amlport.cli.scan_view import exit_code_for
        from amlport.lineage.formats import render

        if node:
            lg = _select(lg, node, upstream=upstream, downstream=downstream)
        if impact:
            lg = _impact(lg, impact)
        text = render(lg, fmt, inv.source)
        if fmt == "json":  # the document of the --json contract (docs/json.md)
            doc = common.json_document("lineage", json.loads(text), exit_code_for(inv))
            text = common.json_text(doc) + "\n"
        if output is None:
            common.write_document(text, is_json=fmt in ("json", "openlineage"))
        else:
            common.write_text_atomic(output, text)
            common.err.print(f"wrote {fmt} lineage ({lg.g.number_of_nodes()} nodes) to {output}")
        if inv.findings:
            common.err.print(f"{len(inv.findings)} findings; run 'amlport scan' for details")
    raise typer.Exit(exit_code_for(inv))


def _lineage_format(
    fmt: str | None, as_json: bool, node: list[str] | None, *, upstream: bool, downstream: bool
) -> str:
    """The format asked for; a usage error for options that contradict each other or would
    have no effect (``--upstream`` without ``--node`` printed the whole graph)."""
    if as_json and fmt not in (None, "json"):
        raise UsageError(f"--json and --format {fmt} ask for two formats", hint="give one of them")
    fmt = fmt or "json"
    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint=f"use one of {', '.join(FORMATS)}")
    if upstream and downstream:
        raise UsageError(
            "--upstream and --downstream exclude each other", hint="omit both to get both sides"
        )
    if (upstream or downstream) and not node:
        which = "--upstream" if upstream else "--downstream"
        raise UsageError(f"{which} needs --node", hint=f"give --node ID with {which}")
    return fmt


def _matches(lg: LineageGraph, text: str) -> list[str]:
    """The nodes ``text`` names (a usage error when none)."""
    matches = lg.find(text)
    if not matches:
        raise UsageError(
            f"no lineage node matches {text!r}",
            hint="use an id from 'amlport lineage SOURCE' or a run id",
        )
    return list(matches)


def _select(
    lg: LineageGraph, wanted: list[str], *, upstream: bool, downstream: bool
) -> LineageGraph:
    keep: set[str] = set()
    for text in wanted:
        for n in _matches(lg, text):
            keep.add(n)
            if not downstream:
                keep |= lg.upstream(n)
            if not upstream:
                keep |= lg.downstream(n)
    return lg.subgraph(keep)


def _impact(lg: LineageGraph, wanted: list[str]) -> LineageGraph:
    """The nodes asked for and what a change to them would affect (``LineageGraph.impact``)."""
    keep: set[str] = set()
    for text in wanted:
        for n in _matches(lg, text):
            keep |= {n} | lg.impact(n)
    return lg.subgraph(keep)


export_cmd.register(app)
audit_cmd.register(app)
import_cmd.register(app)
backup_cmd.register(app)
describe_cmd.register(app)
report_cmd.register(app)
repo_cmd.register(app)
browse_cmd.register(app)
plugins_cmd.register(app)


def main() -> None:
    tune_malloc()  # before any thread starts
    stop_on_sigterm()
    # The objects of every module loaded so far (most of a short run's heap) stay out of
    # each later collection: a backup's explicit ones, and the automatic oldest-generation
    # ones of a large run, look at the run's own objects only.
    gc.freeze()
    # A reader that closes the pipe early (`amlport scan … | head -1`) ends the output, not
    # the run: the exit code stays the run's own (cli/terminal.py).
    sys.stdout = ClosedPipeSafe(sys.stdout)
    try:
        app(prog_name="amlport")  # also when run as `python -m amlport`
    finally:
        sys.stdout.flush()
