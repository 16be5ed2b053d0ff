"""v2 asset YAML written next to the exported files (paths point inside the bundle)."""

from __future__ import annotations

import posixpath
import re
from typing import Any

from amlport.safeload import dump_yaml

SCHEMAS = {
    "model": "https://azuremlschemas.azureedge.net/latest/model.schema.json",
    "environment": "https://azuremlschemas.azureedge.net/latest/environment.schema.json",
    "data": "https://azuremlschemas.azureedge.net/latest/data.schema.json",
}
# A conda file alone is not an environment: Azure ML needs a base image. This is the one the
# v2 examples use; it is recorded in the asset's attrs so a promotion can pin another.
DEFAULT_BASE_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest"
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def asset_name(*parts: str) -> str:
    """An Azure ML asset name: letters, digits, '-', '_', '.', starting with a letter/digit."""
    name = _NAME_BAD.sub("-", "-".join(p for p in parts if p)).strip("-._")
    return (name or "asset")[:255]


def yaml_path(kind: str, name: str) -> str:
    return f"assets/{kind}s/{name}.yml"


def relative(from_file: str, to_path: str) -> str:
    """``to_path`` as seen from the folder of ``from_file``, both bundle paths. Worked out on
    the paths alone: ``posixpath.relpath`` of relative paths asks the working directory (its
    answer for a ``..`` climbing above the bundle depended on it; in a deleted directory it
    raised), so both are taken from the bundle's root ``/`` (a ``..`` above it stays there)."""
    return posixpath.relpath("/" + to_path, "/" + posixpath.dirname(from_file))


def dump(kind: str, body: dict[str, Any]) -> bytes:
    doc = {"$schema": SCHEMAS[kind], **body}
    return dump_yaml(doc)
