"""``amlport plugins``: every exporter, importer, rewriter and audit check amlport would use.

Registered on the main app by ``plugins_cmd.register(app)``. Lists the four registries
(``amlport.plugins.Registry``, design 0015): the built-ins, and the exporters installed under
the ``amlport.exporters.v1`` entry-point group. A plugin that fails to load, or whose name is
taken, is shown as a warning naming it (exit 1), as every export would report it.
"""

from __future__ import annotations

from typing import Any

import typer

from amlport.cli import common
from amlport.cli.common import guarded
from amlport.errors import ExitCode

PLUGINS_HELP = """List the plugins amlport uses: exporters (one per asset kind, plus any
installed under the amlport.exporters.v1 entry-point group), importers (datastore files, v2
assets, MLflow registry), URI rewriters (one per URI family) and audit checks, with where
each comes from.

Exit 0; 1 when an installed plugin failed to load or was refused (each is named in a
warning; exports go on without it); 2 on a usage error."""


def register(app: typer.Typer) -> None:
    app.command(name="plugins", help=PLUGINS_HELP)(plugins)


def _rows() -> tuple[list[dict[str, Any]], list[str]]:
    from amlport.audit.runner import CHECKS
    from amlport.exporters import EXPORTERS
    from amlport.importers import IMPORTERS
    from amlport.rewriters import FAMILY_MODULES

    warnings = [str(w) for w in EXPORTERS.load_entry_points()]
    rows = [
        {
            "kind": e.kind,
            "name": e.name,
            "origin": e.origin,
            "target": e.target,
            "distribution": e.distribution,
        }
        for registry in (EXPORTERS, IMPORTERS, FAMILY_MODULES, CHECKS)
        for e in registry.entries()
    ]
    return rows, warnings


def plugins(
    as_json: bool = common.JsonOpt,
) -> None:
    with guarded():
        rows, warnings = _rows()
        code = ExitCode.WARNINGS if warnings else ExitCode.OK
        if as_json:
            common.emit_json("plugins", {"plugins": rows, "warnings": warnings}, code)
        else:
            columns = [("kind", "text"), ("name", "id"), ("origin", "text"), ("from", "text")]
            table = [[r["kind"], r["name"], r["origin"], r["target"]] for r in rows]
            common.show_table("plugins", columns, table)
            for warning in warnings:
                common.warn(warning)
        raise typer.Exit(int(code))
