"""The options of every command that writes a workspace (``import``, ``restore``,
``promote``): one declaration each, so the commands cannot drift apart. What they do is the
write guard's (``amlport.storage.guard``): ``--dry-run`` refuses every write, ``--on-conflict``
decides what a blob that is there with other content becomes."""

from __future__ import annotations

import typer

from amlport.storage.guard import POLICIES


def _policy(value: str) -> str:
    """A bad ``--on-conflict`` is a usage error (exit 2) before anything is opened."""
    if value not in POLICIES:
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(POLICIES)}")
    return value


DryRunOpt = typer.Option(
    False, "--dry-run", help="Plan and print what would be written; write nothing at all."
)
OnConflictOpt = typer.Option(
    "fail",
    "--on-conflict",
    callback=_policy,
    help="A target blob with other content: fail (the default: not replaced, exit 3), skip "
    "(left alone, reported as a conflict, exit 1) or overwrite.",
)
ReadOnlyOpt = typer.Option(
    False,
    "--read-only",
    help="With --check: check the target against the snapshot and import nothing "
    "(a disaster-recovery copy is not changed; a missing blob is reported, not restored).",
)
