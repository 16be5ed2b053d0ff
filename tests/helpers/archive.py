"""Hand-built pack archives: tar members and a gzip'd tar of them (hostile packs included)."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path


def member(name: str, data: bytes = b"", **attrs: object) -> tuple[tarfile.TarInfo, bytes]:
    """A tar member ``name`` holding ``data``; ``attrs`` set on its ``TarInfo`` (type, mode…)."""
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    return info, data


def write_tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes]]) -> Path:
    """A ``.tar.gz`` (PAX) of ``members`` at ``path``; only regular files carry data, and a
    header's size is set from its data (a test may swap a member's bytes in place)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    path.write_bytes(gzip.compress(buf.getvalue()))
    return path
