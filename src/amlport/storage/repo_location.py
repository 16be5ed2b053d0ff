"""How a repository location is spelled, and what it names (parsing only: nothing is opened).

A repository (``REPO``) is one of::

    <folder>                                             a local folder
    az://<container>[/<prefix>]                          account from the connection string
    az://<container>@<account>.blob.<suffix>[/<prefix>]
    https://<account>.blob.<suffix>/<container>[/<prefix>]
    http://127.0.0.1:<port>/<account>/<container>[/<prefix>]   Azurite (path-style)
    fsspec+<protocol>://<path>                           an fsspec filesystem

A SAS may follow an Azure URL as the query string. The account and container part is parsed by
``azure_location``, exactly as for sources and targets; the prefix is a ``/``-separated folder
inside the container.

It lives in storage/, below bundle/ (docs/design/0000-map.md): the write guard places a
repository (``guard.place_of_repository``) without opening it. ``bundle/location.py`` (which
opens the store) and ``bundle/fsspec_store.py`` re-export these names.
"""

from __future__ import annotations

import re
from pathlib import Path

from amlport.errors import UsageError
from amlport.storage.opener import is_url

SCHEME_PREFIX = "fsspec+"
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._=-]{0,254}\Z")
# What ``pathlib.Path`` makes of a URL: ``Path("az://c")`` is ``az:/c``.
_MANGLED = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/(?=[^/])")  # any scheme (is_url judges it)
URL_HINT = (
    "use az://<container>[/<prefix>] (with a connection string), "
    "https://<account>.blob.core.windows.net/<container>[/<prefix>], or for Azurite "
    "http://127.0.0.1:<port>/<account>/<container>[/<prefix>]"
)


def is_fsspec(location: str) -> bool:
    """Is ``location`` a repository on an fsspec filesystem (``fsspec+<protocol>://…``)?"""
    return location[: len(SCHEME_PREFIX)].lower() == SCHEME_PREFIX and "://" in location


def as_location(location: str | Path) -> str:
    """The text of a location, with a URL that passed through ``Path`` repaired."""
    return _MANGLED.sub(r"\1://", str(location), count=1)


def is_remote(location: str | Path) -> bool:
    """True for a repository URL (an Azure container, an fsspec filesystem), False for a
    local folder."""
    text = as_location(location)
    return is_fsspec(text) or is_url(text)


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
