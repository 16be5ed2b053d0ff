"""Datastore URIs: ``azureml://datastores/<ds>/paths/<p>`` (short, the neutral form), the long
form scoped to a workspace, and the ``azureml://datastores/<ds>/ExperimentRun/…`` output form.

Export: short and output forms are already workspace-independent (unchanged); a long form of
the source workspace becomes short. Import: the datastore name is mapped to the target's; the
result stays short (valid in any workspace that has the datastore), except that a long form
that survived export (it named another workspace, or export was skipped) is re-scoped.

Also the helpers every family uses to build neutral URIs, and ``locate`` (where a URI lands
in a given workspace's storage), which tests and importers use to compare locations.
"""

from __future__ import annotations

from amlport.model.uris import (
    BlobLocation,
    ParsedUri,
    UriError,
    format_uri,
    parse_uri,
    with_fields,
)
from amlport.model.workspace import ARTIFACT_DATASTORE
from amlport.rewriters.rules import Identity, KeepWithWarning, RewriteRules, Unmappable

FAMILIES: tuple[str, ...] = (
    "azureml_datastore_short",
    "azureml_datastore_long",
    "azureml_datastore_output",
)


def short_uri(datastore: str, raw_path: str) -> str:
    """The neutral form. ``raw_path`` is URI text (already encoded as it was written)."""
    return f"azureml://datastores/{datastore}/paths/{raw_path.lstrip('/')}"


def artifact_uri(run_id: str, raw_path: str) -> str:
    """A run artifact as a neutral URI: ``workspaceartifactstore`` ``ExperimentRun/dcid.<run>/``."""
    return short_uri(ARTIFACT_DATASTORE, f"ExperimentRun/dcid.{run_id}/{raw_path.lstrip('/')}")


def is_binding(name: str) -> bool:
    """``${{default_datastore}}`` and friends are resolved by Azure ML at run time: not a name."""
    return "${{" in name


def body(parsed: ParsedUri) -> str:
    """The URI as found, without its query string (for messages and records)."""
    return parsed.raw.strip().partition("?")[0]


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    datastore = parsed.fields["datastore"]
    if is_binding(datastore):
        return None
    if parsed.family == "azureml_datastore_long":
        return _long(parsed, rules)
    if rules.exporting:
        _check_known(datastore, rules)
        return None
    mapped = rules.target_datastore(datastore, body(parsed))
    return None if mapped == datastore else format_uri(with_fields(parsed, datastore=mapped))


def _check_known(datastore: str, rules: RewriteRules) -> None:
    known = rules.source.known_datastores
    if known and datastore not in known:
        raise KeepWithWarning(
            f"datastore {datastore!r} is not one of the source workspace's datastores "
            f"({', '.join(sorted(known))}); an import will need a mapping for it"
        )


def _is_source_scope(parsed: ParsedUri, identity: Identity) -> bool:
    f = parsed.fields
    return identity.is_workspace(f["subscription"], f["resource_group"], f["workspace"])


def _long(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    f = parsed.fields
    uri = body(parsed)
    if not _is_source_scope(parsed, rules.source):
        raise KeepWithWarning(
            f"names workspace {f['workspace']!r}, not the source workspace; left as is"
        )
    if rules.source.workspace is None and rules.source.workspace_id is None:
        # Without the source's identity a long URI of another workspace would pass for the
        # source's own: it is kept (refused under --strict) until the identity is known.
        reason = (
            f"names workspace {f['workspace']!r}, and the source workspace's identity is "
            "unknown (give --workspace-file, or scan a target that records its identity)"
        )
        if rules.strict:
            raise Unmappable(uri, reason=reason)
        raise KeepWithWarning(f"{reason}; left as is")
    if rules.exporting:
        known = rules.source.known_datastores
        if known and f["datastore"] not in known:
            raise Unmappable(
                uri,
                reason=f"datastore {f['datastore']!r} is not a datastore of the source "
                "workspace, so its container is unknown",
            )
        return short_uri(f["datastore"], f["path"])
    mapped = rules.target_datastore(f["datastore"], uri)
    target = rules.target
    if target is None or not target.has_scope:
        return short_uri(mapped, f["path"])
    changed = with_fields(
        parsed,
        subscription=str(target.subscription_id),
        resource_group=str(target.resource_group),
        workspace=str(target.workspace),
        datastore=mapped,
    )
    return format_uri(changed)


def locate(uri: str, identity: Identity) -> BlobLocation | None:
    """Where ``uri`` lands in ``identity``'s storage (None: not a storage location there).

    Datastore forms resolve through the identity's datastores; storage URLs are physical
    already. Paths are decoded, as in ``BlobLocation``.
    """
    try:
        parsed = parse_uri(uri)
    except UriError:
        return None
    if parsed.blob_location is not None:
        return parsed.blob_location
    dp = parsed.datastore_path
    if dp is None or parsed.family.startswith("mount") or identity.account is None:
        return None
    container = identity.container_of(dp.datastore)
    if container is None:
        return None
    return BlobLocation(
        identity.account.lower(), container, dp.path, "blob", identity.endpoint.lower()
    )
