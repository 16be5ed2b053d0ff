"""The designer port pointer (serialised AzureBlobReference, storage layout §3.5): its keys."""

from __future__ import annotations

POINTER_KEYS = frozenset({"RelativePath", "AmlDataStoreName", "Uri", "Container"})


def looks_like_pointer(data: bytes) -> bool:
    """A JSON object that names a RelativePath or AmlDataStoreName (cheap pre-check)."""
    head = data[:512].lstrip()
    return head.startswith(b"{") and (b"RelativePath" in data or b"AmlDataStoreName" in data)
