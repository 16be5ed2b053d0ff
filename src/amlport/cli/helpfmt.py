"""What every command's parser gets, applied once to the whole command tree (``AmlportGroup``)
rather than by each command remembering it (docs/design/0012-cli-contract.md):

- **metavars** that say what to give: ``SOURCE``, ``REPO``, ``SNAPSHOT`` for arguments (typer
  printed ``{source}``), and for options a word from ``OPTION_METAVARS`` (``--repo REPO``,
  ``--to TARGET``, ``-o FILE``) instead of a type name;
- **``--debug`` anywhere**: each command accepts it (hidden) after its name as well as before.

A new command needs nothing for either: registering it on the app is enough.
"""

from __future__ import annotations

from typing import Any

from typer.core import TyperArgument, TyperGroup, TyperOption

# The option name (its longest spelling) -> what the help shows after it.
OPTION_METAVARS = {
    "--repo": "REPO",
    "--to": "TARGET",
    "--snapshot": "SNAPSHOT",
    "--source": "ACCOUNT[/WS]",
    "--map": "MAP.yaml",
    "--output": "FILE",
    "--select": "KIND:NAME",
    "--include": "KINDS",
    "--specs": "DIR",
    "--tag": "TAG",
    "--keep-tag": "TAG",
    "--workers": "N",
    "--cache-dir": "DIR",
    "--connection-string": "CONN",
    "--repo-connection-string": "CONN",
    "--target-connection-string": "CONN",
    "--account-key": "KEY",
    "--repo-account-key": "KEY",
    "--target-account-key": "KEY",
    "--sas-token": "SAS",
    "--repo-sas-token": "SAS",
    "--target-sas-token": "SAS",
    "--credential": "default",
    "--repo-credential": "default",
    "--target-credential": "default",
    "--workspace-file": "FILE",
    "--format": "FORMAT",
    "--fail-on": "SEVERITY",
    "--rule": "RULE",
    "--skip": "RULE",
    "--arm": "DIR",
    "--node": "NODE",
    "--emit-assets": "DIR",
    "--register-mlflow": "URI",
    "--workspace": "SUB/RG/NAME",
    "--on-conflict": "POLICY",
    "--retry-lock": "SECONDS",
    "--keep-last": "N",
    "--keep-daily": "N",
    "--keep-weekly": "N",
    "--keep-monthly": "N",
    "--profile": "NAME",
    "--config": "FILE",
}


class PlainArgument(TyperArgument):
    """An argument shown as ``SOURCE`` in the usage line (typer shows ``{SOURCE}``)."""

    def make_metavar(self, ctx: Any, *, usage: bool = False) -> str:
        var = self.metavar or (self.name or "").upper()
        if usage and not self.required:
            return f"[{var}]"
        return var + ("..." if self.nargs != 1 else "")


def _set_debug(_ctx: Any, _param: Any, value: bool) -> None:
    if value:
        from amlport.cli import common

        common.State.debug = True


def debug_option() -> TyperOption:
    """``--debug`` after the command name; the same flag as before it (``app.main_options``)."""
    return TyperOption(
        param_decls=["--debug"],
        is_flag=True,
        default=False,
        expose_value=False,
        hidden=True,
        is_eager=True,
        callback=_set_debug,
        help="Show tracebacks on errors.",
    )


def finish(command: Any) -> None:
    """Give ``command`` (and every command under it) the metavars and ``--debug``. (Typer
    0.28 carries its own click: a group is recognised by its ``commands``.)"""
    subs = getattr(command, "commands", None)
    if isinstance(subs, dict):
        if type(command) is TyperGroup:  # a sub-group (map, repo): list commands whole too
            command.__class__ = AmlportGroup
        for sub in subs.values():
            finish(sub)
        return
    for param in command.params:
        if isinstance(param, TyperArgument) and not isinstance(param, PlainArgument):
            param.__class__ = PlainArgument
            if param.metavar is None:
                param.metavar = (param.name or "").upper()
        elif isinstance(param, TyperOption) and not param.is_flag and param.metavar is None:
            longest = max(param.opts, key=len)
            param.metavar = OPTION_METAVARS.get(longest, longest.lstrip("-").upper())
    if not any("--debug" in getattr(p, "opts", ()) for p in command.params):
        command.params.append(debug_option())


class AmlportGroup(TyperGroup):
    """The app's group: finishes every command typer built (``finish``), and lists the
    commands with their whole first sentence, wrapped (click cut it with "...")."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for sub in self.commands.values():
            finish(sub)

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None and not cmd.hidden:
                rows.append((name, first_sentence(cmd)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


def first_sentence(command: Any) -> str:
    """A command's first sentence (its ``short_help`` when it has one), never cut."""
    text = " ".join((command.short_help or command.help or "").split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]
