"""Open a source from what the user typed: a folder path or a storage URL."""

from __future__ import annotations

import re
from pathlib import Path

from amlport.errors import UsageError
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.auth import StorageAuth  # also imported from here by callers
from amlport.storage.base import Source
from amlport.storage.local import LocalSource, load_descriptor_file
from amlport.storage.target import LocalTarget, Target

URL_SCHEMES = ("https://", "http://", "az://", "abfs://", "abfss://")
# ``scheme://`` — or ``scheme:/`` as ``pathlib.Path`` leaves it — of two letters or more (so a
# Windows drive ``C:/`` is not one).
_ANY_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):/")
SUPPORTED_FORMS = (
    "a local folder, az://<container>[/<path>] (abfs:// and abfss:// alike), "
    "https://<account>.blob.core.windows.net[/<container>[/<path>]], or for Azurite "
    "http://127.0.0.1:<port>/<account>[/<container>]"
)


def is_url(location: str) -> bool:
    """True for an Azure storage URL, False for a local path; UsageError for any other
    ``scheme://`` (``s3://b/p`` must not become a local folder ``s3:``). Every place a
    SOURCE, TARGET or REPO is read goes through here."""
    if location[:8].lower().startswith(URL_SCHEMES):
        return True
    found = _ANY_SCHEME.match(location)
    if found:
        shown = re.sub(r"//[^/@]*@", "//", location)[:120]  # no userinfo (a password)
        raise UsageError(
            f"{found.group(1)}:// is not a storage amlport can open: {shown!r}",
            hint=f"give {SUPPORTED_FORMS} (a local folder whose name has a colon: prefix ./)",
        )
    return False


def open_source(
    location: str,
    *,
    workspace_file: Path | None = None,
    auth: StorageAuth | None = None,
) -> Source:
    """Open ``location`` read-only: a local copy (folder) or an Azure storage URL."""
    descriptor: WorkspaceDescriptor | None = (
        load_descriptor_file(workspace_file) if workspace_file else None
    )
    if is_url(location):
        try:
            from amlport.storage.azure import open_azure_source
        except ImportError as exc:  # pragma: no cover - azure-storage-blob is a hard dependency
            raise UsageError(
                "cannot open an Azure source: the Azure storage client is not installed",
                hint=f"reinstall amlport ({exc.name} missing)",
            ) from None
        return open_azure_source(location, descriptor=descriptor, auth=auth or StorageAuth())
    return LocalSource(Path(location), descriptor)


def open_target(
    location: str, *, descriptor: WorkspaceDescriptor, auth: StorageAuth | None = None
) -> Target:
    """Open an import/restore target: a local folder (created on the first write) or an Azure URL.

    ``descriptor`` (the map file's ``target``) names the account, containers and datastores.
    """
    if is_url(location):
        from amlport.storage.azure_target import open_azure_target

        return open_azure_target(location, descriptor=descriptor, auth=auth or StorageAuth())
    root = Path(location)
    if root.exists() and not root.is_dir():
        raise UsageError(f"target {root} is not a folder")
    # Nothing is written here: the folder and its workspace.yaml are created by the first
    # write (``ensure_containers``), once the run's write guard is open (storage/guard.py).
    return LocalTarget(root, descriptor)
