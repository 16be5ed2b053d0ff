"""The ``--repo-*`` credential options of the commands that take a repository (REPO).

A repository is a folder or an Azure container URL (``az://<container>[/<prefix>]``,
``https://<account>.blob.core.windows.net/<container>[/<prefix>]``, Azurite path-style). Its
credential is separate from the source's (``--connection-string`` & co.): the off-site
repository is usually another account. With none of them given, the connection string comes
from ``$AMLPORT_REPO_CONNECTION_STRING`` (never from the source's variable).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from amlport.bundle.fsspec_store import is_fsspec
from amlport.bundle.location import is_remote
from amlport.bundle.reference import RepoRef, parse_reference
from amlport.errors import UsageError
from amlport.storage.opener import StorageAuth

if TYPE_CHECKING:
    from amlport.bundle.repository import Repository
    from amlport.model.manifest import Manifest

REPO_CONNECTION_STRING_ENV = "AMLPORT_REPO_CONNECTION_STRING"
# Help is plain text (app.py: rich_markup_mode=None), so brackets show as they are.
REPO_HELP = "Bundle repository: a folder, or an Azure container URL az://<container>[/<prefix>]"
REPO_AT_HELP = f"{REPO_HELP}, optionally @SNAPSHOT (an id or prefix, or 'latest'; as --snapshot)"

RepoConnOpt = typer.Option(
    None,
    "--repo-connection-string",
    help="Connection string of the repository's storage account (never printed). Default: "
    f"${REPO_CONNECTION_STRING_ENV} when no other --repo-* credential is given.",
    show_default=False,
)
RepoKeyOpt = typer.Option(
    None, "--repo-account-key", help="Account key of the repository's storage account.",
    show_default=False,
)  # fmt: skip
RepoSasOpt = typer.Option(
    None,
    "--repo-sas-token",
    help="SAS token for the repository container (sp=racwdl to write; rl to read).",
    show_default=False,
)
RepoCredOpt = typer.Option(
    None,
    "--repo-credential",
    help="'default': DefaultAzureCredential for the repository (needs the identity extra).",
    show_default=False,
)


def _check_options(account_key: str | None, credential: str | None) -> None:
    """The credential options themselves: a usage error names the option, whatever REPO is."""
    if credential not in (None, "default"):
        raise UsageError(
            f"unknown --repo-credential {credential!r}", hint="use --repo-credential default"
        )
    from amlport.cli.common import check_account_key

    check_account_key(account_key, "--repo-account-key")


def repo_auth(
    repo: str,
    connection_string: str | None,
    account_key: str | None,
    sas_token: str | None,
    credential: str | None,
) -> StorageAuth | None:
    """The repository's credential; None for a folder given none (the usual case)."""
    _check_options(account_key, credential)
    explicit = bool(account_key or sas_token or credential)
    if not is_remote(repo) or is_fsspec(repo):  # fsspec: its own credentials, never ours
        if connection_string or explicit:  # Repository.open explains the mistake
            return StorageAuth(connection_string, account_key, sas_token, credential == "default")
        return None
    if connection_string is None and not explicit and "sig=" not in repo:
        connection_string = os.environ.get(REPO_CONNECTION_STRING_ENV) or None
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

    def open(self) -> Repository:
        from amlport.bundle.repository import Repository

        return Repository.open(self.ref.location, auth=self.auth)

    def pick(
        self, repository: Repository, source: str | None, map_source: str | None = None
    ) -> Manifest:
        """The snapshot named (``REPO@ID``/``--snapshot``; none or ``latest``: the newest of
        ``--source``, else of the map's ``source:``, else of the only source)."""
        from amlport.bundle.sources import parse_source, select_snapshot

        mapped = parse_source(map_source, where="map file 'source:'")
        return select_snapshot(repository, self.ref.snapshot, parse_source(source), mapped)

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
) -> RepoArg:
    """Parse ``REPO[@SNAPSHOT]`` (with ``--snapshot``) and its ``--repo-*`` credential, before
    anything is contacted: a hostile reference is a usage error (exit 2) here."""
    _check_options(account_key, credential)
    ref = parse_reference(repo, snapshot=snapshot, where=where, allow_snapshot=allow_snapshot)
    auth = repo_auth(ref.location, connection_string, account_key, sas_token, credential)
    return RepoArg(ref, auth)


SnapshotOpt = typer.Option(
    None,
    "--snapshot",
    help="Snapshot id (or a unique prefix) or 'latest' (the default); the same as REPO@ID.",
    show_default=False,
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


def _set_key_file(value: str | None) -> str | None:
    from amlport.bundle.repository import KeySource

    if value:
        if value.startswith(KEY_VAULT_PREFIX):
            KeySource.key_vault_secret = value
        else:
            KeySource.key_file = value
    return value


def _set_encrypt(value: bool) -> bool:
    from amlport.bundle.repository import KeySource

    if value:
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
