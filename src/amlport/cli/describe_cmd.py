"""``amlport describe``: a designer pipeline run as a document a person can rebuild it from.

Registered on the main app by ``describe_cmd.register(app)``. Reads only: SOURCE is walked
like ``scan`` does (a restored target is a workspace too). Markdown with a Mermaid diagram by
default, ``--json`` for the structure (``amlport.describe/1``). See docs/designer.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from amlport.cli import common
from amlport.cli.common import WsFileOpt, guarded
from amlport.cli.options import SOURCE, StorageCredentials, output_option, shared_options
from amlport.errors import ExitCode, UsageError

SCHEMA = "amlport.describe/1"

DESCRIBE_HELP = """Describe a designer pipeline run: its steps in flow order under their Studio
names, every input and output port, the parameters decoded (raw text beside them), the
datasets it read, and what storage cannot show.

SOURCE is a workspace's storage (a local copy, an account URL, or a target a snapshot was
restored into). PIPELINE is the pipeline run id, or a prefix naming one; 'list' lists them.
Exit 0; 1 when some connections could not be established from storage (they are named in the
document); 2 on a usage error."""


def register(app: typer.Typer) -> None:
    app.command(name="describe", help=DESCRIBE_HELP)(describe)


def _refuse_repository(source: str) -> None:
    config = Path(source) / "config.json"
    if config.is_file() and b"amlport.repository" in config.read_bytes()[:4096]:
        raise UsageError(
            f"{source} is an amlport repository, not a workspace",
            hint="restore the snapshot (amlport restore REPO SNAPSHOT --to DIR) and describe DIR",
        )


@shared_options
def describe(
    source: str = typer.Argument(..., metavar="SOURCE", help="Workspace storage to read."),
    pipeline: str = typer.Argument(..., metavar="PIPELINE", help="Pipeline run id or prefix."),
    as_json: bool = typer.Option(False, "--json", help="Print the description as JSON."),
    output: Path | None = output_option(
        "Write the document (Markdown, or JSON with --json) to this file."
    ),
    creds: StorageCredentials = SOURCE,
    workspace_file: Path | None = WsFileOpt,
) -> None:
    from amlport.lineage.designer import (
        NotAPipeline,
        describe_pipeline,
        designer_pipelines,
        find_pipeline,
        to_markdown,
    )
    from amlport.walk import WalkOptions, walk

    with guarded():
        if "://" not in source:
            _refuse_repository(source)
        with creds.open_source(source, workspace_file) as src:
            inv = walk(src, options=WalkOptions(scan_secrets=False))
        if pipeline == "list":
            runs = designer_pipelines(inv)
            text = "".join(
                f"{r.run_id}  {r.started or '-'}  {len(r.children)} steps\n" for r in runs
            )
            common.write_document(text or "no designer pipeline runs\n")
            raise typer.Exit(0)
        try:
            run = find_pipeline(inv, pipeline)
        except NotAPipeline as exc:
            raise UsageError(str(exc), hint="'amlport describe SOURCE list' lists them") from None
        doc = describe_pipeline(inv, run)
        gaps = any(s["not_established"] for s in doc["steps"])
        code = int(ExitCode.WARNINGS) if gaps else 0
        if as_json:
            text = json.dumps(
                {"schema": SCHEMA, "exit_code": code, "pipeline": doc},
                indent=2,
                sort_keys=True,
                ensure_ascii=False,
            )
            text += "\n"
        else:
            text = to_markdown(doc)
        if output is not None:
            common.write_text_atomic(output, text)
            common.say("wrote", "green", f"description of {run.run_id} to {output}")
        else:
            common.write_document(text, is_json=as_json)
        if gaps:
            common.warn("some connections could not be established from storage (see the document)")
    raise typer.Exit(code)
