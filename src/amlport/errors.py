"""Error tree. Every error names what failed, on which object, and what to do next.

Each class carries the process exit code the CLI uses for it (borg/restic style, see
docs/exit-codes.md). Messages must never contain a secret: every message and hint passes
the redactor (``amlport.secrets.redact``) here, in the constructor, so no command has to
remember it (a URL with ``user:password@`` or a SAS echoed back by a parser or the SDK).
"""

from __future__ import annotations

import errno
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    WARNINGS = 1
    ERROR = 2
    PARTIAL = 3
    INTEGRITY = 4
    POLICY = 5
    INTERRUPTED = 130
    TERMINATED = 143  # 128 + SIGTERM, as a shell reports a process SIGTERM ended


class AmlportError(Exception):
    """Base class. ``hint`` says what the user can do about it."""

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        from amlport.secrets import redact

        self.message = redact(message)
        self.hint = redact(hint) if hint else None
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class UsageError(AmlportError):
    """The command line or a configuration file is wrong."""


class SourceError(AmlportError):
    """A source or target cannot be opened or read (missing, unreachable, forbidden)."""


class SourceNotFound(SourceError):
    pass


class AccessDenied(SourceError):
    pass


class TransientStorageError(SourceError):
    """A storage call failed after its retries; re-running may succeed."""


class ReadOnlyViolation(AmlportError):
    """Something tried to write to a source. amlport never writes to what it reads from."""


class ParseError(AmlportError):
    """A file in a source could not be parsed. The walker turns these into findings."""

    def __init__(self, path: str, reason: str) -> None:
        from amlport.secrets import redact

        # The walker turns path and reason into findings: they are redacted as the message is.
        self.path = redact(path)
        self.reason = redact(reason)
        super().__init__(f"{path}: {reason}")


class IntegrityError(AmlportError):
    """A bundle object or manifest does not match what it claims to be."""

    exit_code = ExitCode.INTEGRITY


class PartialFailure(AmlportError):
    """Some items failed; the rest is done and recorded."""

    exit_code = ExitCode.PARTIAL


# ENOSPC: the device is full; EFBIG: a file size limit (ulimit -f); EDQUOT: a quota.
DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})


class DiskFull(AmlportError):
    """A local write failed for want of space (or of a size limit): not an internal error."""

    @classmethod
    def of(cls, exc: OSError, what: str | None = None) -> DiskFull | None:
        """The ``DiskFull`` an ``OSError`` means, or None when it means something else."""
        if exc.errno not in DISK_FULL_ERRNOS:
            return None
        where = what or exc.filename or "a local file"
        return cls(
            f"cannot write {where}: {exc.strerror or 'no space left'} (the disk is full, or a "
            "quota or file size limit was reached)",
            hint="free space (or raise the limit) and run the command again: it continues "
            "where it stopped",
        )
