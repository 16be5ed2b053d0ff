"""A repository reference as a user types it: ``REPO``, ``REPO@SNAPSHOT``, plus ``--snapshot``.

Every command that takes a repository parses its argument here (``cli/repo_options.py``
opens it), so ``az://bk/prod@5ccda80a`` means the same to ``ls``, ``diff``, ``map init`` and
``restore``. The rules, decided without contacting anything:

- ``@SNAPSHOT`` is the text after the *last* ``@`` when it is a snapshot id (hex, a prefix is
  enough) or ``latest``. The ``@`` of ``az://<container>@<account>.blob.<suffix>`` is never
  one: an account host holds dots. A local folder whose own name ends in ``@<hex>`` is
  taken as the folder when it exists (write ``FOLDER@latest`` to be explicit).
- an ``@`` anywhere else in a URL is refused: container names and prefixes cannot hold one,
  and a typo (``az://bk/prod@v1``) must not become another container or account.
- ``REPO@ID`` and ``--snapshot ID`` are the same thing; naming two snapshots is an error.
- refused as usage errors (exit 2): an empty reference, control characters, more than
  ``MAX_REFERENCE`` characters, and a URL whose container or prefix is not valid (``..``,
  ``.``, a bad container name; ``location.split_url`` judges it).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from amlport.bundle.fsspec_store import is_fsspec
from amlport.bundle.location import as_location, is_remote, split_url
from amlport.errors import UsageError

LATEST = "latest"
MAX_REFERENCE = 1000  # an Azure URL with a SAS fits; a 1,024-character name does not
MAX_NAME = 255  # bytes of one folder name (NAME_MAX)
_SNAPSHOT = re.compile(r"^(latest|[0-9a-fA-F]{1,64})\Z")
CONFIG_FILE = "config.json"  # bundle/repository.py's CONFIG (imported lazily there)
SNAPSHOT_HINT = "give the id or a prefix of it in hex, as `amlport snapshots` lists, or 'latest'"


@dataclass(frozen=True)
class RepoRef:
    """``location``: the folder or URL (no ``@SNAPSHOT``); ``snapshot``: an id, a prefix,
    ``latest`` or None (not named: the command's default, usually the latest)."""

    text: str
    location: str
    snapshot: str | None = None

    @property
    def remote(self) -> bool:
        return is_remote(self.location)

    @property
    def display(self) -> str:
        """The location for messages: a URL without its query (a SAS)."""
        return self.location.split("?", 1)[0]

    def with_snapshot(self, snapshot: str | None) -> RepoRef:
        return RepoRef(self.text, self.location, snapshot)


def shown(text: str, limit: int = 80) -> str:
    """``text`` for an error message: repr (control characters escaped), cut, no SAS."""
    text = text.split("?", 1)[0]
    return repr(text[:limit] + ("…" if len(text) > limit else ""))


def check_snapshot(snapshot: str, *, where: str = "--snapshot") -> str:
    """A snapshot id, prefix or ``latest`` (UsageError for anything else)."""
    if not _SNAPSHOT.match(snapshot):
        raise UsageError(f"{where} {shown(snapshot)} is not a snapshot id", hint=SNAPSHOT_HINT)
    return snapshot if snapshot == LATEST else snapshot.lower()


def is_snapshot_token(text: str) -> bool:
    return bool(_SNAPSHOT.match(text))


def _check_text(text: str, where: str) -> None:
    if not text.strip():
        raise UsageError(f"empty {where}", hint="give a repository folder or az://<container>")
    if len(text) > MAX_REFERENCE:
        raise UsageError(
            f"{where} is {len(text):,} characters long (at most {MAX_REFERENCE:,})",
            hint="give a shorter path, or the repository as a URL without a long SAS "
            "(--repo-sas-token takes it)",
        )
    if any(unicodedata.category(c) == "Cc" for c in text):
        raise UsageError(
            f"{where} {shown(text)} holds a control character",
            hint="no repository name holds one: retype the reference",
        )
    if not is_remote(text) and any(len(part.encode()) > MAX_NAME for part in Path(text).parts):
        raise UsageError(
            f"{where} {shown(text)} has a name longer than {MAX_NAME} bytes",
            hint="no file system holds such a folder: retype the reference",
        )


def _is_repo(folder: str) -> bool:
    return (Path(folder) / CONFIG_FILE).is_file()


def _check_url(location: str, text: str, where: str) -> None:
    """An ``@`` only as ``az://<container>@<account host>``; the rest judged by split_url."""
    if is_fsspec(location):
        return  # fsspec+<protocol>://…: fsspec judges its own URLs (bundle/fsspec_store.py)
    base = location.split("?", 1)[0]
    scheme, _, rest = base.partition("://")
    authority, _, path = rest.partition("/")
    bad_at = "@" in path or (
        "@" in authority
        and (scheme.lower() not in ("az", "abfs", "abfss") or "." not in authority.split("@")[-1])
    )
    if bad_at:
        raise UsageError(
            f"{where} {shown(text)}: '@' may only end the reference as @SNAPSHOT (a hex id "
            "or 'latest') or join az://<container>@<account>.blob.<suffix>",
            hint="container names and prefixes hold no '@'; " + SNAPSHOT_HINT,
        )
    split_url(location)  # container name, '..', '.', empty segments: a UsageError


def parse_reference(
    text: str | Path,
    *,
    snapshot: str | None = None,
    where: str = "REPO",
    allow_snapshot: bool = True,
) -> RepoRef:
    """Parse ``REPO[@SNAPSHOT]`` (and the command's ``--snapshot``) without contacting
    anything. ``allow_snapshot=False``: a command that takes a whole repository (``forget``,
    ``repo …``) refuses ``@SNAPSHOT``."""
    raw = as_location(text)
    _check_text(raw, where)
    location, named = raw, None
    head, at, tail = raw.rpartition("@")
    remote = is_remote(raw)
    if at and head and is_snapshot_token(tail) and (remote or not Path(raw).exists()):
        location, named = head, tail
    elif at and not tail:
        raise UsageError(f"{where} {shown(raw)} names no snapshot after '@'", hint=SNAPSHOT_HINT)
    elif at and head and not remote and not Path(raw).exists() and _is_repo(head):
        raise UsageError(f"{shown(tail)} is not a snapshot id", hint=SNAPSHOT_HINT)
    if remote:
        _check_url(location, raw, where)
    if named is not None:
        named = check_snapshot(named, where=f"{where} @")
        if not allow_snapshot:
            raise UsageError(
                f"{where} {shown(raw)} names a snapshot, but this command takes a whole repository",
                hint=f"drop '@{named}'",
            )
    if snapshot is not None:
        snapshot = check_snapshot(snapshot)
        if named is not None and named != snapshot:
            raise UsageError(
                f"{where} {shown(raw)} and --snapshot {snapshot} name two snapshots",
                hint="give one of them: REPO@ID or --snapshot ID",
            )
        named = snapshot
    return RepoRef(raw, location, named)
