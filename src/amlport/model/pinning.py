"""When is an environment reference or image pinned? (Pure; shared by the walk and the audit.)"""

from __future__ import annotations

UNPINNED_LABELS = ("@latest", "/labels/latest")


def is_unpinned_ref(ref: str) -> bool:
    """``azureml:name@latest``, ``…/labels/latest`` or a bare ``azureml:name``."""
    return ref.endswith(UNPINNED_LABELS) or ":" not in ref.removeprefix("azureml:")


def image_pinned(image: str | None) -> bool:
    """Pinned by digest, or by a tag other than ``latest``."""
    if not image:
        return False
    if "@sha256:" in image:
        return True
    tag = image.rsplit("/", 1)[-1].partition(":")[2]
    return bool(tag) and tag != "latest"
