"""Where a repository is: a local folder, or an Azure container (and prefix) given as a URL.

Repository URLs (a SAS may follow as the query string)::

    az://<container>[/<prefix>]                          account from the connection string
    az://<container>@<account>.blob.<suffix>[/<prefix>]
    https://<account>.blob.<suffix>/<container>[/<prefix>]
    http://127.0.0.1:<port>/<account>/<container>[/<prefix>]   Azurite (path-style)

The account and container part is parsed by the storage layer (``azure_location``), exactly as
for sources and targets; the prefix is a ``/``-separated folder inside the container.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from amlport.bundle.fsspec_store import is_fsspec
from amlport.bundle.store import LocalStore, RepoStore
from amlport.errors import UsageError
from amlport.storage.opener import StorageAuth, is_url

if TYPE_CHECKING:  # the Azure SDK is imported only when a URL is opened
    from amlport.storage.retry import RetryConfig

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,254}$")
# What ``pathlib.Path`` makes of a URL: ``Path("az://c")`` is ``az:/c``.
_MANGLED = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?=[^/])")  # any scheme (is_url judges it)
URL_HINT = (
    "use az://<container>[/<prefix>] (with a connection string), "
    "https://<account>.blob.core.windows.net/<container>[/<prefix>], or for Azurite "
    "http://127.0.0.1:<port>/<account>/<container>[/<prefix>]"
)


def as_location(location: str | Path) -> str:
    """The text of a location, with a URL that passed through ``Path`` repaired."""
    return _MANGLED.sub(r"\1://", str(location), count=1)


def is_remote(location: str | Path) -> bool:
    """True for a repository URL (an Azure container, an fsspec filesystem), False for a
    local folder."""
    text = as_location(location)
    return is_fsspec(text) or is_url(text)


def has_credential(auth: StorageAuth | None) -> bool:
    return auth is not None and bool(
        auth.connection_string or auth.account_key or auth.sas_token or auth.use_default_credential
    )


def split_url(url: str) -> tuple[str, str]:
    """(storage URL of the container, prefix inside it); UsageError when malformed."""
    from amlport.storage.azure_location import parse_location

    base, sep, query = url.partition("?")
    base = base.split("#", 1)[0]
    scheme, _, rest = base.partition("://")
    authority, _, path = rest.partition("/")
    parts = path.rstrip("/").split("/") if path.strip("/") else []
    errors: list[UsageError] = []
    for n in range(len(parts), -1, -1):
        candidate = f"{scheme}://{authority}" + "".join(f"/{p}" for p in parts[:n])
        try:
            loc = parse_location(candidate + (sep + query if query else ""))
        except UsageError as exc:
            errors.append(exc)
            continue
        if loc.container is not None:
            return candidate + (sep + query if query else ""), _prefix(parts[n:])
        errors.append(UsageError(f"repository URL {loc.display} names no container", hint=URL_HINT))
        break
    useful = [e for e in errors if "whole containers" not in e.message]
    raise (useful or errors)[0]


def _prefix(parts: list[str]) -> str:
    for part in parts:
        if not _SEGMENT.match(part):
            raise UsageError(
                f"{part!r} cannot be part of a repository prefix",
                hint="use letters, digits, '.', '_', '=' and '-' between single slashes",
            )
    return "/".join(parts)


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
