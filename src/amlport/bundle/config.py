"""``config.json``: what makes a directory an amlport repository, and which format it uses.

The repository format version is separate from the manifest schema: it covers the layout
(object naming, snapshot naming, locks, index). A reader refuses an unknown major the same
way it refuses an unknown manifest major.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from amlport import __version__
from amlport.errors import IntegrityError
from amlport.model.manifest import format_time

FORMAT = "amlport.repository"
FORMAT_MAJOR = 1
SUPPORTED_FORMAT_MAJORS = (1,)
MAX_CONFIG_BYTES = 64 * 1024


@dataclass(frozen=True)
class RepositoryConfig:
    id: str
    version: int = FORMAT_MAJOR
    created: str = ""
    created_by: str = ""

    @classmethod
    def new(cls) -> RepositoryConfig:
        now = format_time(datetime.now(timezone.utc))
        return cls(id=uuid.uuid4().hex, created=now, created_by=f"amlport {__version__}")

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "id": self.id,
            "created": self.created,
            "created_by": self.created_by,
            "objects": {"hash": "sha256", "fanout": 2},
        }
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str) -> RepositoryConfig:
        hint = "the repository configuration is damaged; restore config.json from a copy"
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise IntegrityError(f"{where}: config.json is not valid JSON", hint=hint) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IntegrityError(f"{where}: config.json is not an amlport repository config")
        version, repo_id = data.get("version"), data.get("id")
        if not isinstance(version, int) or not isinstance(repo_id, str) or not repo_id:
            raise IntegrityError(f"{where}: config.json lacks 'version' or 'id'", hint=hint)
        if version not in SUPPORTED_FORMAT_MAJORS:
            supported = ", ".join(str(v) for v in SUPPORTED_FORMAT_MAJORS)
            raise IntegrityError(
                f"{where}: repository format {version} is not supported by amlport "
                f"{__version__} (supported: {supported})",
                hint="upgrade amlport to use this repository",
            )
        return cls(
            id=repo_id,
            version=version,
            created=str(data.get("created", "")),
            created_by=str(data.get("created_by", "")),
        )
