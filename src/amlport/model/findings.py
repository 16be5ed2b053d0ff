"""Findings: something a walk, a lineage check or an audit noticed about one object."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Severity(str, Enum):
    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return list(Severity).index(self)


@dataclass(frozen=True, order=True)
class Finding:
    """``code`` is stable (documented in docs/concepts.md); ``path`` is ``container/blob``."""

    code: str
    path: str
    message: str
    severity: Severity = Severity.MEDIUM

    def to_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity.value,
            "path": self.path,
            "message": self.message,
        }


# Stable finding codes produced by scan (walk + lineage). Audit rules have their own ids.
MALFORMED_FILE = "malformed-file"
NON_UTF8_TEXT = "non-utf8-text"
DANGLING_POINTER = "dangling-pointer"
SAS_IN_POINTER = "sas-token-in-pointer"
SECRET_IN_FILE = "secret-in-file"
LEGACY_WORKDIR = "legacy-run-workdir"
MISSING_OUTPUT = "missing-expected-output"
ORPHAN_OUTPUT = "orphan-output"
DANGLING_BINDING = "dangling-binding"
TRUNCATED_READ = "file-too-large-to-parse"
LINEAGE_NOT_ESTABLISHED = "lineage-not-established"  # walk/designer.py
OTHER_DATASTORE = "output-on-other-datastore"  # walk/designer.py
