"""``config.json``: what makes a directory an amlport repository, and which format it uses.

The repository format version is separate from the manifest schema: it covers the layout
(object naming, snapshot naming, locks, index). A reader refuses an unknown major the same
way it refuses an unknown manifest major, and any value it does not implement (a hash other
than SHA-256, another fan-out, a key it does not know): reading such a repository as the
usual layout would find nothing or the wrong objects.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from amlport import __version__
from amlport.errors import IntegrityError, ParseError
from amlport.model.manifest import format_time
from amlport.safeload import load_json

FORMAT = "amlport.repository"
FORMAT_MAJOR = 2  # what a new repository gets (docs/design/0007-repository-format-2.md)
SUPPORTED_FORMAT_MAJORS = (1, 2)
MAX_CONFIG_BYTES = 64 * 1024
OBJECTS = {"hash": "sha256", "fanout": 2}  # how objects are named: the only layout known
# An encrypted repository (``crypto.py``, docs/design/0009): the only scheme known. Format 2 only.
ENCRYPTION = {
    "cipher": "aes-256-gcm",
    "kdf": "hkdf-sha256",
    "id_hash": "hmac-sha256",
    "segment": 1 << 20,
}
# Pack files (``packs.py``, docs/design/0007 "Pack files"): small objects in packs. Declared
# at init; an amlport that does not know them refuses the key by name ("unknown key(s)
# 'packs'") instead of finding the packed objects missing. Format 2 only.
PACKS = {"version": 1}
# whether a new repository gets packs (the switch, design 0007; $AMLPORT_PACKS=0 opts out)
PACKS_DEFAULT = True
PACKS_ENV = "AMLPORT_PACKS"  # "1"/"0": overrides PACKS_DEFAULT for new repositories


def packs_default() -> bool:
    """Whether ``init`` gives a new repository pack files: ``$AMLPORT_PACKS`` (``1``/``0``)
    when set, else ``PACKS_DEFAULT``."""
    value = os.environ.get(PACKS_ENV, "").strip()
    return PACKS_DEFAULT if value not in ("0", "1") else value == "1"


_KEYS = frozenset(
    ("format", "version", "id", "created", "created_by", "objects", "encryption", "packs")
)
_HINT = "the repository configuration is damaged; restore config.json from a copy"


@dataclass(frozen=True)
class RepositoryConfig:
    id: str
    version: int = FORMAT_MAJOR
    created: str = ""
    created_by: str = ""
    encrypted: bool = False  # ``encryption`` (the scheme of ``ENCRYPTION``) recorded
    packs: bool = False  # ``packs`` recorded: small objects may be in pack files

    @classmethod
    def new(
        cls, *, version: int = FORMAT_MAJOR, encrypted: bool = False, packs: bool | None = None
    ) -> RepositoryConfig:
        now = format_time(datetime.now(timezone.utc))
        packs = packs_default() if packs is None else packs
        return cls(
            id=uuid.uuid4().hex, version=version, created=now,
            created_by=f"amlport {__version__}", encrypted=encrypted,
            packs=packs and version >= 2,
        )  # fmt: skip

    def upgraded(self, *, packs: bool = False) -> RepositoryConfig:
        """The same repository at the current format (``repo upgrade``); ``packs``: declare
        pack files too (``repo upgrade --packs``; a repository that has them keeps them)."""
        return RepositoryConfig(
            id=self.id, version=FORMAT_MAJOR, created=self.created, created_by=self.created_by,
            encrypted=self.encrypted, packs=self.packs or packs,
        )  # fmt: skip

    def to_bytes(self) -> bytes:
        data: dict[str, Any] = {
            "format": FORMAT,
            "version": self.version,
            "id": self.id,
            "created": self.created,
            "created_by": self.created_by,
            "objects": dict(OBJECTS),
        }
        if self.encrypted:
            data["encryption"] = dict(ENCRYPTION)
        if self.packs:
            data["packs"] = dict(PACKS)
        return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_bytes(cls, raw: bytes, *, where: str) -> RepositoryConfig:
        try:
            data = load_json(raw.decode("utf-8"), "config.json")  # bounded nesting
        except UnicodeDecodeError:
            raise IntegrityError(f"{where}: config.json is not UTF-8 text", hint=_HINT) from None
        except ParseError as exc:
            raise IntegrityError(
                f"{where}: config.json is not valid JSON ({exc.reason})", hint=_HINT
            ) from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise IntegrityError(f"{where}: config.json is not an amlport repository config")
        version, repo_id = data.get("version"), data.get("id")
        if not isinstance(version, int) or not isinstance(repo_id, str) or not repo_id:
            raise IntegrityError(f"{where}: config.json lacks 'version' or 'id'", hint=_HINT)
        if isinstance(version, bool) or version not in SUPPORTED_FORMAT_MAJORS:
            supported = ", ".join(str(v) for v in SUPPORTED_FORMAT_MAJORS)
            raise IntegrityError(
                f"{where}: repository format {version} is not supported by amlport "
                f"{__version__} (supported: {supported})",
                hint="upgrade amlport to use this repository",
            )
        _check_known(data, where)
        encrypted = "encryption" in data
        if encrypted and version < 2:
            raise _unsupported(where, "encryption in a format-1 repository")
        if "packs" in data and version < 2:
            raise _unsupported(where, "packs in a format-1 repository")
        return cls(
            id=repo_id,
            version=version,
            created=str(data.get("created", "")),
            created_by=str(data.get("created_by", "")),
            encrypted=encrypted,
            packs="packs" in data,
        )


def _check_known(data: dict[str, Any], where: str) -> None:
    """Refuse what this amlport does not implement rather than read it as its own layout."""
    unknown = sorted(str(k) for k in data if k not in _KEYS)
    if unknown:
        raise _unsupported(where, f"unknown key(s) {', '.join(map(repr, unknown))}")
    for key in ("created", "created_by"):
        if not isinstance(data.get(key, ""), str):
            raise IntegrityError(f"{where}: config.json '{key}' is not a string", hint=_HINT)
    objects = data.get("objects", OBJECTS)  # written by every version; absent: the default
    if not isinstance(objects, dict):
        raise IntegrityError(f"{where}: config.json 'objects' is not an object", hint=_HINT)
    for key in sorted(set(objects) | set(OBJECTS), key=str):
        value = objects.get(key)
        want = OBJECTS.get(key)
        if want is None or type(value) is not type(want) or value != want:  # 2.0 is not 2
            found = f"objects.{key} = {json.dumps(value)}" if key in objects else f"no {key}"
            raise _unsupported(where, f"{found} (supported: {json.dumps(OBJECTS)})")
    if "encryption" in data:
        _check_exact(data["encryption"], ENCRYPTION, "encryption", where)
    if "packs" in data:
        _check_exact(data["packs"], PACKS, "packs", where)


def _check_exact(value: Any, want: dict[str, Any], name: str, where: str) -> None:
    """``value`` is exactly ``want`` (no other key, no other value or type)."""
    if not isinstance(value, dict):
        raise IntegrityError(f"{where}: config.json '{name}' is not an object", hint=_HINT)
    for key in sorted(set(value) | set(want), key=str):
        got, expected = value.get(key), want.get(key)
        if expected is None or type(got) is not type(expected) or got != expected:
            found = f"{name}.{key} = {json.dumps(got)}" if key in value else f"no {name}.{key}"
            raise _unsupported(where, f"{found} (supported: {json.dumps(want)})")


def _unsupported(where: str, what: str) -> IntegrityError:
    return IntegrityError(
        f"{where}: config.json declares {what}, which amlport {__version__} does not implement",
        hint="use the amlport that created this repository, or restore config.json from a copy",
    )
