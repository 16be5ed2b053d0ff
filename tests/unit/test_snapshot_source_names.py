"""A snapshot walked as a workspace (``backup/facts.py`` ``SnapshotSource``, a diff's audit
facts) lists each ``files/<datastore>/<path>`` as ``<path>`` in the datastore's container,
sorted, once per (container, name) — the first entry of the snapshot when two datastores name
one container — and reads it back, hostile names included."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.bundle import SOURCE, manifest, new_repo

from amlport.backup.facts import SnapshotSource
from amlport.errors import SourceNotFound

NAMES = ["[", "]", "a..b/..c", "esc\x1b[31m", "caf\u00e9/\u65e5\u672c", "x" * 200 + "/" + "y" * 200]


def test_listed_and_read_by_container_and_name(tmp_path: Path) -> None:
    repo = new_repo(tmp_path)
    source = {**SOURCE, "datastores": {**SOURCE["datastores"], "alias": "azureml"}}
    contents = {f"files/workspaceblobstore/{n}": f"blob {n}".encode() for n in NAMES}
    contents |= {f"files/workspaceartifactstore/{n}": f"art {n}".encode() for n in NAMES[:3]}
    contents |= {"files/alias/[": b"alias [", "files/alias/only": b"alias only"}
    contents |= {"files/unmapped/z": b"z", "assets/model/m.yaml": b"y", "files/short": b"s"}
    with repo:
        snap = manifest(repo, contents, source=source)
        with SnapshotSource(repo, snap) as src:
            listed = [(b.container, b.name, b.size) for b in src.list_blobs()]
            blob = SOURCE["datastores"]["workspaceblobstore"]
            expected = sorted(
                [(blob, n, len(f"blob {n}".encode())) for n in NAMES]
                # "[" of azureml: the artifact store's entry comes first in the snapshot
                + [("azureml", n, len(f"art {n}".encode())) for n in NAMES[:3]]
                + [("azureml", "only", len(b"alias only")), ("unmapped", "z", 1)]
            )
            assert listed == expected
            for n in NAMES:
                assert src.read_bytes(blob, n) == f"blob {n}".encode()
            assert src.read_bytes("azureml", "[") == b"art ["
            assert src.read_bytes("azureml", "only", max_bytes=5) == b"alias"
            with src.open_stream("unmapped", "z") as fh:
                assert fh.read() == b"z"
            for container, name in [(blob, "missing"), ("azureml", "y" * 10), ("nowhere", "[")]:
                with pytest.raises(SourceNotFound):
                    src.read_bytes(container, name)


def test_it_keeps_none_of_the_manifests_entries(tmp_path: Path) -> None:
    """The source keeps a name and (digest, size) per file, no ``FileEntry``: the caller lets
    go of the snapshot's entries for the walk (docs/design/0007, C session 8); it lists and
    reads the same once the manifest's list is emptied, and each listed name is the string
    the source keys its file by (one string per file through the walk)."""
    import gc

    from amlport.model.manifest import FileEntry

    repo = new_repo(tmp_path)
    contents = {f"files/workspaceblobstore/{n}": f"blob {n}".encode() for n in NAMES}
    blob = SOURCE["datastores"]["workspaceblobstore"]
    with repo:
        snap = manifest(repo, contents)
        src = SnapshotSource(repo, snap)
        kept = [v for k, v in vars(src).items() if k not in ("repo", "descriptor")]
        seen: set[int] = set()
        stack: list[object] = list(kept)
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            assert not isinstance(obj, FileEntry)
            stack.extend(gc.get_referents(obj))
        snap.files.clear()
        with src:
            listed = list(src.list_blobs())
            assert [(b.container, b.name) for b in listed] == [(blob, n) for n in sorted(NAMES)]
            for b in listed:
                assert src.read_bytes(b.container, b.name) == f"blob {b.name}".encode()
                assert b.size == len(f"blob {b.name}".encode())
                assert any(k is b.name for k in vars(src)["_names"][blob])
