"""Where a repository is: a local folder, or an Azure container (and prefix) given as a URL.

Repository URLs (a SAS may follow as the query string)::

    az://<container>[/<prefix>]                          account from the connection string
    az://<container>@<account>.blob.<suffix>[/<prefix>]
    https://<account>.blob.<suffix>/<container>[/<prefix>]
    http://127.0.0.1:<port>/<account>/<container>[/<prefix>]   Azurite (path-style)

The URL is parsed by the storage layer (``storage/repo_location.py``, which the write guard
uses too; its names are re-exported here); this module opens the store.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amlport.bundle.store import LocalStore, RepoStore
from amlport.errors import UsageError
from amlport.storage.opener import StorageAuth, is_url
from amlport.storage.repo_location import URL_HINT, as_location, is_fsspec, is_remote, split_url

if TYPE_CHECKING:  # the Azure SDK is imported only when a URL is opened
    from amlport.storage.retry import RetryConfig

# The URL parsing names are storage/repo_location's, re-exported: callers import them from here.
__all__ = [
    "URL_HINT",
    "as_location",
    "has_credential",
    "is_fsspec",
    "is_remote",
    "open_store",
    "split_url",
]


def has_credential(auth: StorageAuth | None) -> bool:
    return auth is not None and bool(
        auth.connection_string or auth.account_key or auth.sas_token or auth.use_default_credential
    )


def open_store(
    location: str | Path,
    auth: StorageAuth | None = None,
    *,
    retry: RetryConfig | None = None,
) -> RepoStore:
    """The store of a repository location; contacts nothing yet."""
    text = as_location(location)
    if is_fsspec(text):  # fsspec+<protocol>://…: fsspec's own credentials (fsspec_store.py)
        if has_credential(auth):
            raise UsageError(
                f"a storage credential was given for the repository, but {text} is an "
                "fsspec filesystem",
                hint="drop the --repo-* credential options: fsspec reads its own configuration",
            )
        from amlport.bundle.fsspec_store import open_fsspec_store

        return open_fsspec_store(text)
    if not is_url(text):
        if has_credential(auth):
            raise UsageError(
                f"a storage credential was given for the repository, but {text} is a local folder",
                hint="drop the --repo-* credential options, or give the repository as a URL",
            )
        return LocalStore(Path(location) if isinstance(location, Path) else Path(text))
    from amlport.bundle.azure_store import BLOCK_SIZE, AzureStore
    from amlport.storage.azure_location import (
        DEFAULT_MAX_CONNECTIONS,
        client_options,
        connect,
        is_anonymous,
        parse_location,
    )
    from amlport.storage.retry import CountingRetry

    auth = auth or StorageAuth()
    container_url, prefix = split_url(text)
    loc = parse_location(container_url)
    policy = CountingRetry(retry)
    options = client_options(policy, DEFAULT_MAX_CONNECTIONS)
    options["max_single_get_size"] = BLOCK_SIZE  # a stream holds one range at a time
    options["max_chunk_get_size"] = BLOCK_SIZE
    client, loc, credential = connect(loc, auth, options)
    return AzureStore(
        client,
        loc,
        prefix,
        retry_policy=policy,
        credential=credential,
        anonymous=is_anonymous(loc, auth),
    )
