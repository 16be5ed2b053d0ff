"""The ``--repo-*`` credential options of the commands that take a repository (REPO).

A repository is a folder or an Azure container URL (``az://<container>[/<prefix>]``,
``https://<account>.blob.core.windows.net/<container>[/<prefix>]``, Azurite path-style). Its
credential is separate from the source's (``--connection-string`` & co.): the off-site
repository is usually another account. With none of them on the command line, the
``$AMLPORT_REPO_*`` variables (``REPO_ENV``) give it, then the settings profile (never the
source's variable). The options themselves are declared once, in ``cli/options.py``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from amlport.bundle.fsspec_store import is_fsspec
from amlport.bundle.location import is_remote
from amlport.bundle.reference import RepoRef, parse_reference
from amlport.errors import UsageError
from amlport.storage.opener import StorageAuth

if TYPE_CHECKING:
    from amlport.bundle.repository import Repository
    from amlport.model.loadplan import LoadPlan
    from amlport.model.manifest import Manifest

REPO_CONNECTION_STRING_ENV = "AMLPORT_REPO_CONNECTION_STRING"
# The repository's credential from the environment: one variable per --repo-* option.
REPO_ENV = {
    "connection_string": REPO_CONNECTION_STRING_ENV,
    "account_key": "AMLPORT_REPO_ACCOUNT_KEY",
    "sas_token": "AMLPORT_REPO_SAS_TOKEN",
    "credential": "AMLPORT_REPO_CREDENTIAL",
}
# Help is plain text (app.py: rich_markup_mode=None), so brackets show as they are.
REPO_HELP = "Bundle repository: a folder, or an Azure container URL az://<container>[/<prefix>]"
REPO_AT_HELP = f"{REPO_HELP}, optionally @SNAPSHOT (an id or prefix, or 'latest'; as --snapshot)"


def _check_options(account_key: str | None, credential: str | None) -> None:
    """The credential options themselves: a usage error names the option, whatever REPO is."""
    if credential not in (None, "default"):
        raise UsageError(
            f"unknown --repo-credential {credential!r}", hint="use --repo-credential default"
        )
    from amlport.cli.common import check_account_key

    check_account_key(account_key, "--repo-account-key")


def repo_environment() -> dict[str, str]:
    """The ``$AMLPORT_REPO_*`` variables that are set, checked; an error names the
    variable, never its value (it is a secret)."""
    values = {name: os.environ[env] for name, env in REPO_ENV.items() if os.environ.get(env)}
    if values.get("credential") not in (None, "default"):
        raise UsageError(f"${REPO_ENV['credential']} must be 'default'", hint="or unset it")
    from amlport.cli.common import check_account_key

    check_account_key(values.get("account_key"), f"${REPO_ENV['account_key']}")
    return values


def repo_auth(
    repo: str,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: str | None,
    *,
    command_line: bool = True,
) -> StorageAuth | None:
    """The repository's credential; None for a folder given none (the usual case).

    Precedence: the values given on the command line; else the ``$AMLPORT_REPO_*``
    variables (all that are set, as one credential); else the values given (a settings
    profile's, when ``command_line`` is False). The environment never competes with an
    option, and is not read for a folder, an fsspec URL or a URL that carries a SAS."""
    _check_options(account_key, credential)
    given = (connection_string, account_key, sas_token, credential)
    if not is_remote(repo) or is_fsspec(repo):  # fsspec: its own credentials, never ours
        if any(given):  # Repository.open explains the mistake
            return StorageAuth(connection_string, account_key, sas_token, credential == "default")
        return None
    env = repo_environment() if "sig=" not in repo else {}
    if env and not (command_line and any(given)):
        connection_string = env.get("connection_string")
        account_key = env.get("account_key")
        sas_token = env.get("sas_token")
        credential = env.get("credential")
    return StorageAuth(
        connection_string=connection_string,
        account_key=account_key,
        sas_token=sas_token,
        use_default_credential=credential == "default",
    )


@dataclass(frozen=True)
class RepoArg:
    """A command's repository: where (``ref``, with the snapshot it names) and its credential.
    Every command that takes a REPO builds one with ``repository_arg`` and opens it here."""

    ref: RepoRef
    auth: StorageAuth | None

    @property
    def location(self) -> str:
        return self.ref.location

    @property
    def snapshot(self) -> str | None:
        return self.ref.snapshot

    def open(self, *, reading: str | None = None) -> Repository:
        """``reading``: why the run only reads ("a dry run"; ``Repository.open``)."""
        from amlport.bundle.repository import Repository

        return Repository.open(self.ref.location, auth=self.auth, reading=reading)

    def pick(
        self,
        repository: Repository,
        source: str | None,
        map_source: str | None = None,
        plan: LoadPlan | None = None,
    ) -> Manifest:
        """The snapshot named (``REPO@ID``/``--snapshot``; none or ``latest``: the newest of
        ``--source``, else of the map's ``source:``, else of the only source). ``plan``: what
        the read keeps (default: everything)."""
        from amlport.bundle.sources import parse_source, select_snapshot
        from amlport.model.loadplan import WHOLE

        mapped = parse_source(map_source, where="map file 'source:'")
        named = parse_source(source)
        return select_snapshot(repository, self.ref.snapshot, named, mapped, plan or WHOLE)

    def snapshot_id(self, repository: Repository, source: str | None) -> str:
        """The full id of the snapshot named, as ``pick`` chooses it, reading snapshot
        headers only (``verify``, ``pack`` load the snapshot themselves)."""
        from amlport.bundle.sources import LATEST, choose_latest, parse_source

        named = parse_source(source)
        if self.ref.snapshot in (None, LATEST):
            infos = repository.list_snapshots()
            return choose_latest(infos, named, where=repository.location).id
        if named is None:
            return repository.snapshots.resolve(self.ref.snapshot)
        return str(self.pick(repository, source).snapshot_id)  # refused when not of --source


def repository_arg(
    repo: str | Path,
    connection_string: str | None = None,
    account_key: str | None = None,
    sas_token: str | None = None,
    credential: str | None = None,
    *,
    snapshot: str | None = None,
    allow_snapshot: bool = True,
    where: str = "REPO",
    command_line: bool = True,
) -> RepoArg:
    """Parse ``REPO[@SNAPSHOT]`` (with ``--snapshot``) and its ``--repo-*`` credential, before
    anything is contacted: a hostile reference is a usage error (exit 2) here."""
    _check_options(account_key, credential)
    ref = parse_reference(repo, snapshot=snapshot, where=where, allow_snapshot=allow_snapshot)
    auth = repo_auth(
        ref.location,
        connection_string,
        account_key,
        sas_token,
        credential,
        command_line=command_line,
    )
    return RepoArg(ref, auth)


def snapshot_option(help: str) -> Any:
    """The ``--snapshot`` option (the same as ``REPO@ID``), with a command's own help."""
    return typer.Option(None, "--snapshot", help=help, show_default=False)


SnapshotOpt = snapshot_option(
    "Snapshot id (or a unique prefix) or 'latest' (the default); the same as REPO@ID."
)


# One option for every command that takes 'latest' of a repository (bundle/sources.py).
SourceOpt = typer.Option(
    None,
    "--source",
    help="Which workspace's snapshots: ACCOUNT[/WORKSPACE] (or a source key, as `snapshots` "
    "lists). Needed for 'latest' when the repository holds several workspaces.",
    show_default=False,
)


# --- keys of an encrypted repository (bundle/keys.py, docs/design/0009) --------------------
# Set through callbacks (``KeySource``), so every command that opens a repository reads the
# key without threading it through its calls; the value is a path or a URL, never the key.

KEY_VAULT_PREFIX = "https://"


# The repository's modules are imported only when the option is given: a backup's listing
# starts before they load (docs/design/0005, "Start-up of the Azure re-backup and scan (E,
# session 9)").
def _set_key_file(value: str | None) -> str | None:
    if value:
        from amlport.bundle.repository import KeySource

        if value.startswith(KEY_VAULT_PREFIX):
            KeySource.key_vault_secret = value
        else:
            KeySource.key_file = value
    return value


def _set_encrypt(value: bool) -> bool:
    if value:
        from amlport.bundle.repository import KeySource

        KeySource.encrypt = True
    return value


RepoKeyFileOpt = typer.Option(
    None,
    "--key-file",
    "--key-vault-secret",
    help="Key of an encrypted repository: a key file (made by `amlport repo key new`), or a "
    "Key Vault secret URL https://<vault>.vault.azure.net/secrets/<name>. Default: the "
    "passphrase in $AMLPORT_REPO_KEY. Never printed.",
    show_default=False,
    callback=_set_key_file,
    metavar="PATH|URL",
)
EncryptOpt = typer.Option(
    False,
    "--encrypt",
    help="Create the repository encrypted (AES-256-GCM, keyed object names) under the key "
    "of --key-file or $AMLPORT_REPO_KEY; ignored for an existing repository.",
    callback=_set_encrypt,
)
