"""Run the installed command the way a user does: a subprocess, real exit code, real output."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any


def amlport(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "amlport", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def app_commands(*, hidden: bool = True) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every runnable command of the amlport app, sub-apps walked through in their order: its
    words (``("map", "init")``) and its click command; ``hidden=False`` leaves hidden ones out."""
    import typer.main

    from amlport.cli.app import app

    def walk(words: tuple[str, ...], command: Any) -> Iterator[tuple[tuple[str, ...], Any]]:
        subs = getattr(command, "commands", None)
        if isinstance(subs, dict):
            for name, sub in subs.items():
                yield from walk((*words, name), sub)
        elif hidden or not command.hidden:
            yield words, command

    yield from walk((), typer.main.get_command(app))


# --- what a repository holds, read through the product ------------------------------------
# Tests that need a snapshot's id or its manifest get them here, whatever the repository's
# format (docs/bundle-format.md, "Format 2"). Tests that tamper with the stored bytes on
# purpose say which format they attack (``init_format1``, ``root_file``, ``pieces``).

SNAPSHOT_NAME = re.compile(r"^[0-9a-f]{64}(\.json)?$")


def snapshot_ids(repo: str | Path) -> list[str]:
    """Every snapshot's id, oldest first (``Repository.list_snapshots``)."""
    from amlport.bundle import Repository

    with Repository.open(repo) as r:
        return [info.id for info in r.list_snapshots()]


def only_snapshot(repo: str | Path) -> str:
    """The id of the one snapshot of a repository (fails when there are several)."""
    [sid] = snapshot_ids(repo)
    return sid


def manifest_of(repo: str | Path, sid: str | None = None) -> dict[str, Any]:
    """The manifest of a snapshot (default: the only one) as a JSON document."""
    from amlport.bundle import Repository

    with Repository.open(repo) as r:
        return r.load_snapshot(sid or only_snapshot(repo)).to_dict()


def manifest_paths(repo: str | Path) -> list[str]:
    """Every file path of every snapshot in a repository."""
    return [f["path"] for sid in snapshot_ids(repo) for f in manifest_of(repo, sid)["files"]]


def stored_snapshots(repo: Path) -> list[str]:
    """The names of the snapshot files in ``repo/snapshots`` in either format (a format-2
    root ``<id>``, a format-1 manifest ``<id>.json``); writes in progress are not snapshots."""
    folder = repo / "snapshots"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if SNAPSHOT_NAME.match(p.name))


def pieces(repo: str | Path, sid: str | None = None) -> tuple[set[str], set[str]]:
    """(data objects, format-2 pieces) one snapshot references (default: the only one)."""
    from amlport.bundle import Repository

    with Repository.open(repo) as r:
        return r.snapshots.pieces(sid or only_snapshot(repo))


def data_objects(repo: str | Path) -> set[str]:
    """The data objects (digests) every snapshot of a repository references."""
    return {d for sid in snapshot_ids(repo) for d in pieces(repo, sid)[0]}


def object_file(repo: Path, digest: str) -> Path:
    """The file of an object (``sha256:<hex>``) in a local repository."""
    hexd = digest.split(":", 1)[1]
    return repo / "objects" / "sha256" / hexd[:2] / hexd


def stored_objects(repo: Path) -> list[Path]:
    """Every object file (data and pieces) of a local repository."""
    base = repo / "objects" / "sha256"
    return sorted(p for p in base.rglob("*") if p.is_file()) if base.is_dir() else []


def root_file(repo: Path, sid: str | None = None) -> Path:
    """The root file of a format-2 snapshot (default: the only one)."""
    return repo / "snapshots" / (sid or only_snapshot(repo))


def format1_file(repo: Path, sid: str | None = None) -> Path:
    """The manifest file of a format-1 snapshot (default: the only one)."""
    return repo / "snapshots" / f"{sid or only_snapshot(repo)}.json"


def init_format1(repo: str | Path) -> None:
    """Create an empty format-1 repository (tests of the format-1 files and their reader)."""
    from amlport.bundle import Repository

    Repository.init(repo, version=1).close()


def rewrite_format1(repo: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    """Edit the only snapshot's format-1 manifest and store it under the hash of its new
    bytes (a forgery whose name matches: only the content checks can catch it)."""
    old = format1_file(repo)
    doc = json.loads(old.read_bytes())
    edit(doc)
    raw = json.dumps(doc, indent=2, sort_keys=True).encode()
    sid = hashlib.sha256(raw).hexdigest()
    old.unlink()
    (repo / "snapshots" / f"{sid}.json").write_bytes(raw)
    return sid


def rewrite_format2(repo: Path, edit: Callable[[dict[str, Any]], None]) -> str:
    """The format-2 counterpart of ``rewrite_format1``: edit the only snapshot's manifest
    (as ``to_dict`` gives it), store the edited lists as pieces and a root naming them, and
    remove the old root. Every piece and the root match their names: a "valid" forgery."""
    from amlport.bundle import Repository, trees
    from amlport.model.manifest import LISTS

    sid = only_snapshot(repo)
    with Repository.open(repo) as r:
        store = r.snapshots
        root = store.read_root(sid)
        doc = r.load_snapshot(sid).to_dict()
        edit(doc)
        writer = trees.TreeWriter(r.objects)
        lists = dict(root["lists"])
        for key in LISTS:
            if key in doc:
                ref = writer.write_list(key, doc[key])
                lists[key] = {**lists[key], "node": ref.node, "count": ref.count}
        header = dict(root["manifest"])
        header.update({k: doc[k] for k in header if k in doc})
        plain = trees.dumps({**root, "manifest": header, "lists": lists}).encode()
        codec = r.objects.codec
        new = codec.meta_name(plain)
        (repo / "snapshots" / new).write_bytes(codec.pack_meta(plain, new))
        root_file(repo, sid).unlink()
    return new
