"""One options object per concern, shared by every command (docs/design/0012-cli-contract.md).

A command declares a concern as ONE parameter whose default is a group::

    @shared_options
    def backup(..., creds: StorageCredentials = SOURCE, repo_creds: RepoCredentials = REPO):

``shared_options`` expands each group, in place, into its options (``--connection-string``,
``--account-key``, ``--sas-token``, ``--credential``; ``--repo-*``; ``--target-*``), so
``--help``, the option names and the parameter names a settings profile fills
(``repo_sas_token``…) are those of the group, the same in every command, and the command
body receives one frozen object that knows how to open what it describes. A credential
option declared anywhere else is refused by ``tests/cli/test_options.py``.

Precedence, the same for every command: an option on the command line, then (for the
repository) the ``$AMLPORT_REPO_*`` variables, then the settings profile (``amlport.toml``).
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import typer

from amlport.cli.common import CONNECTION_STRING_ENV, auth_from, source_from

if TYPE_CHECKING:
    from amlport.cli.repo_options import RepoArg
    from amlport.storage.base import Source
    from amlport.storage.opener import StorageAuth

FIELDS = ("connection_string", "account_key", "sas_token", "credential")
CONTEXT = "shared_options_context"
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Credentials:
    """The four values of a credential group (secrets kept out of ``repr``)."""

    connection_string: str | None = field(default=None, repr=False)
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    credential: str | None = None
    command_line: bool = False  # any of them given on the command line (not by a profile)

    @property
    def given(self) -> bool:
        return any(getattr(self, name) for name in FIELDS)

    def values(self) -> tuple[str | None, str | None, str | None, str | None]:
        return (self.connection_string, self.account_key, self.sas_token, self.credential)


@dataclass(frozen=True)
class StorageCredentials(Credentials):
    """``--connection-string``, ``--account-key``, ``--sas-token``, ``--credential`` (or a
    prefixed form): the credential of a workspace's storage, read or written."""

    def auth(self, location: str) -> StorageAuth:
        """The credential for ``location`` ($AZURE_STORAGE_CONNECTION_STRING when none)."""
        return auth_from(location, *self.values())

    def open_source(self, location: str, workspace_file: Path | None = None) -> Source:
        """The SOURCE, recorded as read by this run (``-o`` is refused inside it)."""
        return source_from(location, *self.values(), workspace_file)


@dataclass(frozen=True)
class RepoCredentials(Credentials):
    """``--repo-connection-string``, ``--repo-account-key``, ``--repo-sas-token``,
    ``--repo-credential``: the repository's credential (the off-site copy is usually another
    account than the source's), defaulting to ``$AMLPORT_REPO_*``."""

    def arg(
        self,
        repo: str | Path,
        *,
        snapshot: str | None = None,
        allow_snapshot: bool = True,
        where: str = "REPO",
    ) -> RepoArg:
        """``REPO[@SNAPSHOT]`` parsed with this credential (``repo_options.repository_arg``)."""
        from amlport.cli.repo_options import repository_arg

        return repository_arg(
            repo,
            *self.values(),
            snapshot=snapshot,
            allow_snapshot=allow_snapshot,
            where=where,
            command_line=self.command_line,
        )

    def repo_auth(self, location: str) -> StorageAuth | None:
        """The credential of a repository at ``location`` (a URL given as an argument)."""
        return self.arg(location).auth


_HELP = {
    "connection_string": f"Azure storage connection string (never printed or logged). Default: "
    f"${CONNECTION_STRING_ENV} when no other credential is given.",
    "account_key": "Storage account key.",
    "sas_token": "SAS token (read+list is enough for a source).",
    "credential": "'default' to use DefaultAzureCredential (needs amlport[identity]).",
}
_REPO_HELP = {
    "connection_string": "Connection string of the repository's storage account (never "
    "printed). Default: $AMLPORT_REPO_CONNECTION_STRING (the $AMLPORT_REPO_* variables are "
    "used when no --repo-* credential is given).",
    "account_key": "Account key of the repository's storage account. Default: "
    "$AMLPORT_REPO_ACCOUNT_KEY.",
    "sas_token": "SAS token for the repository container (sp=racwdl to write; rl to read). "
    "Default: $AMLPORT_REPO_SAS_TOKEN.",
    "credential": "'default': DefaultAzureCredential for the repository (needs the identity "
    "extra). Default: $AMLPORT_REPO_CREDENTIAL.",
}


@dataclass(frozen=True)
class OptionGroup:
    """The marker default of a concern's parameter: which object, which flags, which help.
    ``prefix`` spells the flags (``--repo-sas-token``) and the parameter names
    (``repo_sas_token``: what a settings profile key fills)."""

    kind: type[Credentials]
    prefix: str = ""
    helps: tuple[tuple[str, str | None], ...] = ()

    def param(self, name: str) -> str:
        return f"{self.prefix.replace('-', '_')}{name}"

    def flag(self, name: str) -> str:
        return f"--{self.prefix}{name.replace('_', '-')}"

    def options(self) -> list[tuple[str, Any]]:
        helps = dict(self.helps)
        return [
            (
                self.param(name),
                typer.Option(None, self.flag(name), help=helps.get(name), show_default=False),
            )
            for name in FIELDS
        ]

    def build(self, values: dict[str, Any], ctx: typer.Context | None) -> Credentials:
        """The object, knowing whether a value was typed (not a settings profile's)."""
        typed = ctx is not None and any(
            getattr(ctx.get_parameter_source(self.param(name)), "name", None) == "COMMANDLINE"
            for name in FIELDS
        )
        return self.kind(**{name: values[self.param(name)] for name in FIELDS}, command_line=typed)


# The groups every command uses: the workspace's storage, the repository, a promotion's
# target, and the two live sides of `diff` (--a-*/--b-*, help-less as before). Typed Any as
# typer.Option() is, since each stands as the default of a parameter typed as its object.
SOURCE: Any = OptionGroup(StorageCredentials, "", tuple(_HELP.items()))
REPO: Any = OptionGroup(RepoCredentials, "repo-", tuple(_REPO_HELP.items()))
TARGET: Any = OptionGroup(
    StorageCredentials,
    "target-",
    (("connection_string", "Connection string of the target account."),),
)
SIDE_A: Any = OptionGroup(StorageCredentials, "a-")
SIDE_B: Any = OptionGroup(StorageCredentials, "b-")
GROUPS = (SOURCE, REPO, TARGET, SIDE_A, SIDE_B)


def shared_options(func: F) -> F:
    """Expand every ``OptionGroup`` default of ``func`` into its options, in place, and give
    ``func`` the built object. Typer reads the expanded signature; nothing else changes."""
    hints = typing.get_type_hints(func, include_extras=True)
    signature = inspect.signature(func)
    groups: dict[str, OptionGroup] = {}
    params: list[inspect.Parameter] = []
    annotations: dict[str, Any] = {}
    for param in signature.parameters.values():
        if isinstance(param.default, OptionGroup):
            groups[param.name] = param.default
            for name, option in param.default.options():
                params.append(
                    inspect.Parameter(
                        name, param.KEYWORD_ONLY, default=option, annotation=str | None
                    )
                )
                annotations[name] = str | None
            continue
        annotation = hints.get(param.name, param.annotation)
        params.append(param.replace(kind=param.KEYWORD_ONLY, annotation=annotation))
        annotations[param.name] = annotation
    if not groups:
        raise TypeError(f"{func.__name__}: no OptionGroup parameter to expand")
    # Typer passes the click context to a parameter typed typer.Context (no option, no help).
    params.append(
        inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
    )
    annotations[CONTEXT] = typer.Context
    names = [p.name for p in params]
    if len(names) != len(set(names)):
        raise TypeError(f"{func.__name__}: a group option repeats a parameter name")

    @functools.wraps(func)
    def wrapper(**kwargs: Any) -> Any:
        ctx = kwargs.pop(CONTEXT, None)
        for name, group in groups.items():
            values = {group.param(field): kwargs.pop(group.param(field)) for field in FIELDS}
            kwargs[name] = group.build(values, ctx)
        return func(**kwargs)

    wrapper.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {**annotations, "return": hints.get("return")}
    wrapper.option_groups = groups  # type: ignore[attr-defined]
    return typing.cast(F, wrapper)


def output_option(help: str, *, required: bool = False) -> Any:
    """The ``-o``/``--output`` file of a command: checked when parsed (``common.output_path``:
    its folder exists, it is not a folder, it is not inside what the run reads)."""
    from amlport.cli.common import checked_output

    return typer.Option(
        ... if required else None, "-o", "--output", callback=checked_output, help=help
    )
