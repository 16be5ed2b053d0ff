"""Peak memory of ``diff`` and ``restore`` at 100k blobs (B, session 10): what each holds
less of, and that the output stays the same.

- ``diff`` keeps of each snapshot's assets only what a comparison reads
  (``compare.compared_asset``); its report equals the report of both snapshots read whole,
  hostile names included.
- ``restore`` writes its import record as it is encoded (``provenance.encoded_pieces``): the
  same bytes as before, never whole in memory, and a write that fails leaves the record that
  was there (or none), never half a record.
"""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from helpers.backup import MAPS, cli, copy_workspace

from amlport.backup import BackupRequest, run_backup
from amlport.backup.compare import diff_specs
from amlport.backup.diff import diff_sides
from amlport.backup.sides import SnapshotSide
from amlport.bundle import Repository
from amlport.model import provenance
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_source

QA = MAPS / "qa.yaml"


def _hostile_names() -> list[str]:
    """Blob names with '[', ']', '..', control characters, non-ASCII and 1,024 characters
    (a local folder holds the long one as components of at most 255 bytes)."""
    head = "hostile/[x]\x1b[31mred\x07\r[/]/" + "/".join(["d" * 200] * 4)
    long_name = head + "/" + "n" * (1024 - len(head) - 4) + ".py"
    assert len(long_name) == 1024
    return [long_name, "LocalUpload/[..] a..b].txt", "LocalUpload/\x01ctl\x7f é ☃.csv"]


def _two_snapshots(tmp_path: Path) -> tuple[Path, str, str]:
    """A backup, then one after hostile names were added, one file changed and one removed."""
    ws = copy_workspace("designer-autoprice", tmp_path / "ws")
    repo = tmp_path / "repo"
    first = str(run_backup(LocalSource(ws), repo, BackupRequest()).snapshot_id)
    blobstore = next(p for p in ws.iterdir() if p.name.startswith("azureml-blobstore-"))
    for i, name in enumerate(_hostile_names()):
        path = blobstore / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(f"hostile {i} ]]>[[\n".encode())
    victims = sorted(p for p in (ws / "azureml").rglob("*") if p.is_file())
    victims[0].write_bytes(victims[0].read_bytes() + b"\nchanged\n")
    victims[1].unlink()
    second = str(run_backup(LocalSource(ws), repo, BackupRequest()).snapshot_id)
    return repo, first, second


def test_diff_holds_only_the_compared_fields_of_assets_and_reports_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, first, second = _two_snapshots(tmp_path)
    import amlport.backup.compare as compare
    from amlport.backup.compare import COMPARED_ATTRS

    held: list[Any] = []
    side = compare._snapshot_side

    def keep(*args: Any, **kwargs: Any) -> SnapshotSide:
        result = side(*args, **kwargs)
        held.append((result.manifest.assets, {f.path: f for f in result.manifest.files}))
        return result

    monkeypatch.setattr(compare, "_snapshot_side", keep)
    report = diff_specs(f"{repo}@{first}", f"{repo}@{second}", open_source)
    r = Repository.open(repo)
    with r:
        whole = diff_sides(
            SnapshotSide(r, r.load_snapshot(first), label=f"{repo}@{first[:16]}"),
            SnapshotSide(r, r.load_snapshot(second), label=f"{repo}@{second[:16]}"),
        )
        full_assets = r.load_snapshot(second).assets
    assert report.to_dict() == whole.to_dict()
    assert report.files["added"] == len(_hostile_names())
    assert report.files["changed"] >= 1 and report.files["removed"] >= 1
    assets, files = held[1]
    assert [(a.kind, a.id, a.name, a.files, a.v2_yaml) for a in assets] == [
        (a.kind, a.id, a.name, a.files, a.v2_yaml) for a in full_assets
    ]
    assert any(a.attrs for a in full_assets)  # what is left out is there to leave out
    assert all(set(a.attrs) <= set(COMPARED_ATTRS) for a in assets)
    assert any(a.attrs.get("unclassified") for a in assets)  # ``mapped.own_records`` reads it
    for asset in assets:  # an asset's paths are its files' own strings
        assert all(p is files[p].path for p in asset.files if p in files)


def test_diff_json_of_hostile_names_is_the_report_of_the_whole_snapshots(tmp_path: Path) -> None:
    """The CLI's JSON (escaped names, exit 1) equals the whole-snapshot report's."""
    repo, first, second = _two_snapshots(tmp_path)
    res = cli("diff", f"{repo}@{first}", f"{repo}@{second}", "--json")
    assert res.returncode == 1, res.stderr[-2000:]
    doc = json.loads(res.stdout)
    r = Repository.open(repo)
    with r:
        whole = diff_sides(
            SnapshotSide(r, r.load_snapshot(first), label=f"{repo}@{first[:16]}"),
            SnapshotSide(r, r.load_snapshot(second), label=f"{repo}@{second[:16]}"),
        ).to_dict()
    assert {k: doc[k] for k in whole} == json.loads(json.dumps(whole))


def _hostile_doc(rewrites: int) -> dict[str, Any]:
    names = _hostile_names()
    return {
        "format": provenance.RECORD_FORMAT,
        "snapshot": "0" * 64,
        "assets": {f"run:{n}": f"{n}\u2028\ud800" for n in names},
        "rewrites": [
            {
                "file": f"files/x/{names[i % 3]}/{i}",
                "before": "a\x00b",
                "after": "é ☃ [..]",
                "rule": "datastore",
            }
            for i in range(rewrites)
        ],
    }


@pytest.mark.parametrize("size", [1, 7, 100, 64 << 10])
def test_record_pieces_are_the_bytes_of_the_whole_record(size: int) -> None:
    doc = _hostile_doc(300)
    want = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8")
    pieces = list(provenance.encoded_pieces(doc, size))
    assert b"".join(pieces) == want == provenance.encode(doc)
    if size == 100:
        assert len(pieces) > 10 and all(len(p) < 2 * size + 1024 for p in pieces)


def test_encoding_a_record_holds_a_piece_not_the_record() -> None:
    """What encoding adds beside the record stays near one piece however long the record
    is: tracemalloc's peak over the document already built, for 2,000 and 20,000 rewrites."""
    extra = []
    for n in (2_000, 20_000):
        doc = _hostile_doc(n)
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            total = sum(len(p) for p in provenance.encoded_pieces(doc))
            extra.append(tracemalloc.get_traced_memory()[1] - base)
        finally:
            tracemalloc.stop()
        assert total > 100 * provenance.PIECE_BYTES * n // 20_000
    assert extra[1] < 8 * provenance.PIECE_BYTES  # the record is ~7 MB of text
    assert extra[1] < 2 * extra[0] + provenance.PIECE_BYTES  # flat, not 10x


def _restore(repo: Path, target: Path, snapshot: str) -> Any:
    return cli("restore", f"{repo}@{snapshot}", "--to", str(target), "--map", str(QA), "--json")


def test_restore_writes_a_readable_record_in_the_encoders_format(tmp_path: Path) -> None:
    repo, _first, second = _two_snapshots(tmp_path)
    target = tmp_path / "target"
    res = _restore(repo, target, second)
    assert res.returncode == 0, res.stderr[-2000:]
    record = json.loads(res.stdout)["import"]["record"]
    raw = (target / record).read_bytes()
    doc = json.loads(raw)
    assert raw == provenance.encode(doc)  # indent 2, sorted keys, ASCII, one newline
    assert doc["snapshot"] == second and doc["counts"]["create"] > 0
    hops, problems = provenance.provenance_from([(record, raw)])
    assert problems == [] and hops[-1]["snapshot"] == second
    snapshot = Repository.open(repo).load_snapshot(second)
    assert set(doc["assets"]) == {a.id for a in snapshot.assets}


class Broken(Exception):
    pass


def test_a_record_write_that_fails_half_way_leaves_the_old_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A record write that fails after its first piece leaves no half record: the earlier
    record of the same snapshot stays as it was, and no temp file is left beside it."""
    from amlport.backup.restore import RestoreRequest, run_restore
    from amlport.importing.engine import load_mapping
    from amlport.storage.opener import open_target

    repo, first, _second = _two_snapshots(tmp_path)
    target = tmp_path / "target"
    mapping = load_mapping(QA)

    def restore() -> Any:
        with open_target(str(target), descriptor=mapping.target) as t:
            return run_restore(
                repo, t, RestoreRequest(mapping, snapshot=first, on_conflict="overwrite")
            )

    done = restore()
    assert done.imported.record is not None
    path = target / done.imported.record
    before = path.read_bytes()
    victim = next(p for p in target.rglob("*") if p.is_file() and "amlport" not in p.parts)
    victim.write_bytes(b"tampered\n")  # the re-run changes a file, so it writes a record

    whole = provenance.encoded_pieces

    def half(doc: dict[str, Any], size: int = provenance.PIECE_BYTES) -> Any:
        pieces = whole(doc, 16)
        yield next(pieces)
        yield next(pieces)
        raise Broken("the encoder failed half way")

    monkeypatch.setattr(provenance, "encoded_pieces", half)
    with pytest.raises(Broken):
        restore()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]
