"""The I/O edge: sources and targets (local folders, Azure Blob Storage)."""

from amlport.storage.base import BlobInfo, ReadResult, Source
from amlport.storage.opener import open_source

__all__ = ["BlobInfo", "ReadResult", "Source", "open_source"]
