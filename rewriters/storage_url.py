"""Storage URLs: ``wasb(s)://``, ``https://<acct>.blob|dfs|file.<suffix>/…`` (and Azurite's
path-style ``http://127.0.0.1:10000/<acct>/<container>/…``), ``abfs(s)://``, ``adl://``.

Export: a URL into the source account (same account *and* endpoint) whose container is a
datastore becomes the short datastore URI; the query string (a SAS) is dropped by
``rewrite_uri``. A URL into another account is not workspace-bound: left as is, with a warning
(it will only work in the target if that account is reachable from there). A source-account URL
whose container is no known datastore is ``Unmappable``.

Import: a URL that still names the source account (export skipped, direct promotion) is bound
to the target's account and the container of the mapped datastore, keeping its scheme.
"""

from __future__ import annotations

from amlport.model.uris import ParsedUri, UriError, format_uri, quote_path, with_fields
from amlport.rewriters.datastore import body, short_uri
from amlport.rewriters.rules import KeepWithWarning, RewriteRules, Unmappable

FAMILIES: tuple[str, ...] = ("wasb", "abfs", "blob_https", "dfs_https", "file_https", "adl")

_LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "azurite")


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    loc = parsed.blob_location
    if loc is None:  # adl:// (Data Lake Gen1) is never a workspace's own account
        raise KeepWithWarning("a Data Lake Gen1 account is not workspace storage; left as is")
    if not rules.source.owns(loc.account, loc.endpoint):
        raise KeepWithWarning(
            f"storage account {loc.account!r} is not the source workspace's account; left as "
            "is (the target must be able to reach it)"
        )
    uri = body(parsed)
    datastore = rules.source.datastore_of(loc.container)
    if datastore is None:
        raise Unmappable(
            uri, reason=f"container {loc.container!r} of the source account is no known datastore"
        )
    raw_path = parsed.fields.get("path", "")
    if rules.exporting:
        return short_uri(datastore, raw_path)
    mapped = rules.target_datastore(datastore, uri)
    target = rules.target
    if target is None or target.account is None:
        return short_uri(mapped, raw_path)
    container = rules.target_container(mapped, uri)
    try:
        return physical_uri(parsed, target.account, target.endpoint, container)
    except UriError as exc:
        raise Unmappable(
            uri, reason=f"the target location is not a valid URL: {exc.reason}"
        ) from None


def is_emulator(endpoint: str) -> bool:
    """An endpoint given as ``host:port`` (Azurite) rather than a cloud suffix."""
    return ":" in endpoint or endpoint.lower() in _LOCAL_HOSTS


def physical_uri(parsed: ParsedUri, account: str, endpoint: str, container: str) -> str:
    """``parsed`` moved to another account/endpoint/container, keeping scheme and path."""
    raw_path = parsed.fields.get("path", "")
    if is_emulator(endpoint):
        return _path_style(endpoint, account, container, raw_path)
    if "endpoint" in parsed.fields:
        return format_uri(
            with_fields(parsed, account=account, endpoint=endpoint, container=container)
        )
    fields = {"scheme": "https", "account": account, "endpoint": endpoint}
    return format_uri(
        ParsedUri("blob_https", "", {**fields, "container": container, "path": raw_path})
    )


def blob_uri(account: str, endpoint: str, container: str, path: str) -> str:
    """``wasbs://<container>@<account>.blob.<endpoint>/<path>`` (``path`` is a plain path).

    The form the designer writes into pointer files. Azurite has no such host name, so an
    emulator endpoint gives the path-style ``http://<host>/<account>/<container>/<path>``.
    """
    raw_path = quote_path(path.lstrip("/"))
    if is_emulator(endpoint):
        return _path_style(endpoint, account, container, raw_path)
    return f"wasbs://{container}@{account}.blob.{endpoint}/{raw_path}"


def _path_style(host: str, account: str, container: str, raw_path: str) -> str:
    return f"http://{host}/{account}/{container}/{raw_path.lstrip('/')}"
