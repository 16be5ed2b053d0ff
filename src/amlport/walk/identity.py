"""The identity a target keeps of itself (``amlport/identity.json``, model/provenance.py).

An import, restore or promotion writes it; a scan by URL alone (no ``--workspace-file``: the
descriptor was guessed from container names, so it knows no workspace and only the built-in
datastores) adopts it, so the target's own datastore names bind to its containers and a
rescan gives the lineage graph of the source under the map. It is adopted only when it names
the account (of an Azure source; a local copy's is only guessed) and the containers being
walked (a record copied from elsewhere changes nothing, with a warning); a hostile one (too
large, deep, not the schema) is a warning, never a crash.
"""

from __future__ import annotations

from collections.abc import Callable

from amlport.errors import AmlportError
from amlport.model.provenance import IDENTITY_NAME, MAX_IDENTITY_BYTES, identity_from
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import Source, SourceWrapper
from amlport.storage.local import LocalSource
from amlport.walk.listing import Listing


def adopt_identity(
    source: Source, listing: Listing, warn: Callable[[str, str], None]
) -> WorkspaceDescriptor | None:
    """The identity record's descriptor, when the walk should use it instead of the guess."""
    desc = source.descriptor
    if desc.workspace is not None or desc.workspace_id is not None:
        return None  # described (a workspace file, a map's target): that wins
    if listing.get(desc.artifact_container, IDENTITY_NAME) is None:
        return None
    where = f"{desc.artifact_container}/{IDENTITY_NAME}"
    try:
        raw = source.read_bytes(
            desc.artifact_container, IDENTITY_NAME, max_bytes=MAX_IDENTITY_BYTES + 1
        )
        found = identity_from(where, raw)
    except AmlportError as exc:
        warn(where, f"{exc.message}; the workspace identity is guessed from container names")
        return None
    same_account = found.account.lower() == desc.account.lower() or _local(source)
    same = same_account and found.containers == desc.containers
    if not same:
        warn(
            where,
            f"the identity record names account {found.account!r} and containers "
            f"{', '.join(found.containers)}, not the ones walked; not used",
        )
        return None
    source.descriptor = found  # export and promote re-bind from the same identity
    return found


def _local(source: Source) -> bool:
    """A local copy: its account is only guessed (the folder's name), so not compared."""
    while isinstance(source, SourceWrapper):
        source = source.inner
    return isinstance(source, LocalSource)
