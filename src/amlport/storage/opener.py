"""Open a source from what the user typed: a folder path or a storage URL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from amlport.errors import UsageError
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.base import Source
from amlport.storage.local import LocalSource, load_descriptor_file
from amlport.storage.target import LocalTarget, Target

URL_SCHEMES = ("https://", "http://", "az://", "abfs://", "abfss://")


@dataclass(frozen=True)
class StorageAuth:
    """How to authenticate to Azure storage. Never printed: ``repr`` hides every value."""

    connection_string: str | None = None
    account_key: str | None = None
    sas_token: str | None = None
    use_default_credential: bool = False

    def __repr__(self) -> str:
        given = [k for k in ("connection_string", "account_key", "sas_token") if getattr(self, k)]
        if self.use_default_credential:
            given.append("default_credential")
        return f"StorageAuth({', '.join(given) or 'anonymous'})"

    __str__ = __repr__


def is_url(location: str) -> bool:
    return location.startswith(URL_SCHEMES)


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
    """Open an import/restore target: a local folder (created if missing) or an Azure URL.

    ``descriptor`` (the map file's ``target``) names the account, containers and datastores.
    """
    if is_url(location):
        from amlport.storage.azure_target import open_azure_target

        return open_azure_target(location, descriptor=descriptor, auth=auth or StorageAuth())
    root = Path(location)
    if root.exists() and not root.is_dir():
        raise UsageError(f"target {root} is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    desc_file = root / "workspace.yaml"
    if not desc_file.exists():  # a local target describes itself, so it can be scanned as-is
        import yaml

        desc_file.write_text(yaml.safe_dump(descriptor.to_dict(), sort_keys=False), "utf-8")
    return LocalTarget(root, descriptor)
