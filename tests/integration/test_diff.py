"""``amlport diff``: two snapshots, or a snapshot and a live source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from helpers.backup import FIXTURES, WS, cli, copy_workspace

from amlport.backup import BackupRequest, run_backup
from amlport.backup.compare import diff_specs, parse_spec
from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.storage.base import Source
from amlport.storage.local import LocalSource
from amlport.storage.opener import open_source

EVALUATE = "3f1d0303-1269-415e-8444-925241881589"  # designer-autoprice: Evaluate Model step
SCORE = "71bb6577-f2c4-4651-8da0-c4e84d6d5df0"  # Score Model step
TRAIN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"  # Train Model step
PIPELINE = "a186e29d-388b-46bb-b111-726e328be005"


class CountingSource(LocalSource):
    """Counts payload reads (the walk's small-file reads go through read_bytes)."""

    streams = 0

    def open_stream(self, container: str, name: str) -> BinaryIO:
        CountingSource.streams += 1
        return super().open_stream(container, name)


def _open(location: str) -> Source:
    return CountingSource(Path(location))


@pytest.mark.parametrize("name", FIXTURES)
def test_a_fresh_backup_equals_its_source(name: str, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_backup(LocalSource(WS / name), repo, BackupRequest())
    CountingSource.streams = 0
    report = diff_specs(str(repo), str(WS / name), _open)
    assert not report.different, report.lines()
    assert CountingSource.streams == 0  # the index decided every file from the listing
    assert report.files["unchanged"] > 0 and report.assets.unchanged > 0


def test_designer_changes_are_reported_by_asset_run_and_edge(tmp_path: Path) -> None:
    ws = copy_workspace("designer-autoprice", tmp_path / "ws")
    repo = tmp_path / "repo"
    run_backup(LocalSource(ws), repo, BackupRequest())
    shutil.rmtree(ws / "azureml" / "ExperimentRun" / f"dcid.{EVALUATE}")
    blobstore = next(p for p in ws.iterdir() if p.name.startswith("azureml-blobstore-"))
    shutil.rmtree(blobstore / "azureml" / SCORE)
    conda = ws / f"azureml/ExperimentRun/dcid.{TRAIN}/trained_model_outputs/conda_env.yaml"
    conda.write_text(conda.read_text() + "  - pip:\n    - lightgbm==4.3.0\n")

    res = cli("diff", str(repo), str(ws), "--json")
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    assert doc["different"] is True
    assert [r["id"] for r in doc["runs"]["removed"]] == [f"run:{EVALUATE}"]
    assert [r["id"] for r in doc["runs"]["changed"]] == [f"run:{TRAIN}"]
    assert [r["id"] for r in doc["assets"]["removed"]] == [
        f"output:workspaceblobstore/azureml/{SCORE}/Scored_dataset"
    ]
    changed = {(c["kind"], c["id"]) for c in doc["assets"]["changed"]}
    assert changed == {
        ("environment", f"environment:workspaceartifactstore/ExperimentRun/dcid.{TRAIN}/"
         "trained_model_outputs/conda_env.yaml"),
        ("model", f"model:workspaceblobstore/azureml/{TRAIN}/Trained_model"),
        ("pipeline", f"run:{PIPELINE}"),  # its portable description lost the evaluate step
    }  # fmt: skip
    assert doc["lineage"]["edges_removed"] == [
        {
            "source": f"output:workspaceblobstore/azureml/{SCORE}/Scored_dataset",
            "target": f"run:{EVALUATE}",
            "kind": "consumed",
        }
    ]
    assert doc["lineage"]["edges_added"] == [] and doc["files"]["removed"] == 24


def test_two_snapshots_by_id_prefix_and_the_human_summary(tmp_path: Path) -> None:
    ws = copy_workspace("sdk-bikeshare", tmp_path / "ws")
    repo = tmp_path / "repo"
    first = run_backup(LocalSource(ws), repo, BackupRequest())
    blobstore = next(p for p in ws.iterdir() if p.name.startswith("azureml-blobstore-"))
    (blobstore / "LocalUpload" / "feedbeef" / "day.csv").parent.mkdir(parents=True)
    (blobstore / "LocalUpload" / "feedbeef" / "day.csv").write_text("d,n\n1,2\n")
    second = run_backup(LocalSource(ws), repo, BackupRequest())
    a, b = f"{repo}@{str(first.snapshot_id)[:12]}", f"{repo}@{second.snapshot_id}"
    res = cli("diff", a, b)
    assert res.returncode == 1, res.stderr
    assert "assets: 1 added, 0 removed, 0 changed" in res.stdout
    assert "+ data unclassified:workspaceblobstore/LocalUpload/feedbeef" in res.stdout
    same = cli("diff", b, str(repo))  # REPO alone is its latest snapshot
    assert same.returncode == 0 and "files:  0 added, 0 removed, 0 changed" in same.stdout


def test_live_side_reads_only_what_the_listing_cannot_decide(tmp_path: Path) -> None:
    ws = copy_workspace("sdk-bikeshare", tmp_path / "ws")
    repo = tmp_path / "repo"
    run_backup(LocalSource(ws), repo, BackupRequest())
    grown = next(ws.rglob("daily-bike-share.csv"))
    same_size = next(ws.rglob("evaluate.png"))
    grown.write_bytes(grown.read_bytes() + b"# more\n")  # size differs: no read needed
    data = bytearray(same_size.read_bytes())
    data[-2] = ord("#") if data[-2] != ord("#") else ord("!")
    same_size.write_bytes(bytes(data))  # same size, new etag: one read decides
    CountingSource.streams = 0
    report = diff_specs(str(repo), str(ws), _open)
    assert report.files["changed"] == 2
    assert CountingSource.streams == 1


def test_two_live_sources(tmp_path: Path) -> None:
    left = copy_workspace("sdk-bikeshare", tmp_path / "left")
    right = copy_workspace("sdk-bikeshare", tmp_path / "right")
    report = diff_specs(str(left), str(right), open_source)
    assert not report.different
    victim = sorted(right.rglob("conda.yaml"))[0]
    victim.write_text(victim.read_text() + "\n# edited\n")
    report = diff_specs(str(left), str(right), open_source)
    assert report.different and report.files["changed"] == 1


def test_arguments_are_checked(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    Repository.init(repo)
    assert parse_spec(f"{repo}@abc").snapshot == "abc"
    assert parse_spec(str(repo)).repo == repo and parse_spec(str(repo)).snapshot is None
    assert parse_spec("az://azureml@acct.blob.core.windows.net").live is not None
    with pytest.raises(UsageError, match="no snapshot"):
        diff_specs(str(repo), str(WS / "messy"), open_source)
    res = cli("diff", str(tmp_path / "nope"), str(WS / "messy"))
    assert res.returncode == 2 and "neither a repository" in res.stderr
    assert "Traceback" not in res.stderr


QA_MAP = WS.parents[1] / "tests" / "integration" / "maps" / "qa.yaml"
QA_BLOBSTORE = "azureml-blobstore-99999999-8888-7777-6666-555555555555"  # maps/qa.yaml
CONNECTION = (
    "DefaultEndpointsProtocol=https;AccountName=stdrift;AccountKey="
    + "A" * 86
    + "==;EndpointSuffix=core.windows.net"
)


def _hostile_name() -> str:
    """A 1,024-character blob name with markup, '[', ']' and control characters (a local
    folder holds it as several components of at most 255 bytes)."""
    head = "hostile/[x]\x1b[31mred\x07\r[/]/" + "/".join(["d" * 200] * 4)
    return head + "/" + "n" * (1024 - len(head) - 4) + ".py"


def test_audit_facts_under_the_map_equal_then_one_added(tmp_path: Path) -> None:
    """``diff A B --map``: each side's audit facts (the walk-decided rules that did not pass)
    compared by rule, state and subject; a promotion changes none, a credential pasted into
    a file of B (under a hostile name) is the one fact added, printed escaped."""
    dev = copy_workspace("designer-autoprice", tmp_path / "dev")
    qa, repo = tmp_path / "qa", tmp_path / "repo"
    run_backup(LocalSource(dev), repo, BackupRequest())
    promoted = cli("promote", str(dev), "--to", str(qa), "--map", str(QA_MAP), "--include",
                   "components,data,environments,models,pipelines,runs")  # fmt: skip
    assert promoted.returncode == 0, promoted.stderr[-2000:]
    for a in (str(dev), str(repo)):  # a live side A, a snapshot side A
        same = cli("diff", a, str(qa), "--map", str(QA_MAP), "--json")
        assert same.returncode == 0, same.stdout[-3000:]
        audit = json.loads(same.stdout)["audit"]
        assert audit["added"] == audit["removed"] == [] and audit["unchanged"] >= 3
    name = _hostile_name()
    assert len(name) == 1024
    victim = qa / QA_BLOBSTORE / name
    victim.parent.mkdir(parents=True)
    victim.write_text(f'conn = "{CONNECTION}"\n', encoding="utf-8")
    for a in (str(dev), str(repo)):
        drift = cli("diff", a, str(qa), "--map", str(QA_MAP), "--json")
        assert drift.returncode == 1, drift.stderr[-2000:]
        audit = json.loads(drift.stdout)["audit"]
        assert audit["removed"] == []
        assert [(f["rule_id"], f["state"], f["subject"]) for f in audit["added"]] == [
            ("AMLP-HYG-002", "fail", f"files/workspaceblobstore/{name}")
        ]
        assert CONNECTION not in drift.stdout  # the finding names the file, not the secret
    text = cli("diff", str(repo), str(qa), "--map", str(QA_MAP))
    assert text.returncode == 1
    assert "audit:  1 facts added, 0 removed" in text.stdout
    shown = "files/workspaceblobstore/hostile/[x]\\x1b[31mred\\x07\\x0d[/]/"
    assert f"  + audit fail AMLP-HYG-002: {shown}" in text.stdout, text.stdout[-3000:]
    assert "\x1b" not in text.stdout and "\x07" not in text.stdout and "\r" not in text.stdout
    assert name[-40:] in text.stdout  # the whole name, not cut


def test_a_snapshot_reports_the_credentials_it_redacted(tmp_path: Path) -> None:
    """A snapshot no longer holds the credentials its backup redacted: its audit facts take
    them from the redaction records, so a snapshot equals its source (messy: a designer
    pointer's SAS, connection strings in a log), and a later secret is a fact added."""
    ws = copy_workspace("messy", tmp_path / "ws")
    repo = tmp_path / "repo"
    first = run_backup(LocalSource(ws), repo, BackupRequest())
    report = diff_specs(str(repo), str(ws), open_source)
    rules = {f.rule for f in report.audit_added + report.audit_removed}
    assert not report.different and not rules, report.lines()
    assert report.audit_unchanged >= 3
    blobstore = next(p for p in ws.iterdir() if p.name.startswith("azureml-blobstore-"))
    (blobstore / "LocalUpload" / "leak.py").parent.mkdir(parents=True, exist_ok=True)
    (blobstore / "LocalUpload" / "leak.py").write_text(f'c = "{CONNECTION}"\n')
    second = run_backup(LocalSource(ws), repo, BackupRequest())
    two = diff_specs(f"{repo}@{first.snapshot_id}", f"{repo}@{second.snapshot_id}", open_source)
    assert [(f.rule, f.subject) for f in two.audit_added] == [
        ("AMLP-HYG-002", "files/workspaceblobstore/LocalUpload/leak.py")
    ]
    assert two.audit_removed == []


def test_two_snapshots_are_compared_holding_one_string_per_path_and_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A diff of two snapshots reads the second sharing the first's strings (most paths and
    digests of two snapshots of one workspace are equal): the same report, less memory."""
    repo = tmp_path / "repo"
    first = run_backup(LocalSource(WS / "designer-autoprice"), repo, BackupRequest())
    second = run_backup(
        LocalSource(WS / "designer-autoprice"), repo, BackupRequest(force=True, tags=["2"])
    )
    loaded = _manifests_read_by_diff(monkeypatch)
    report = diff_specs(f"{repo}@{first.snapshot_id}", f"{repo}@{second.snapshot_id}", open_source)
    assert not report.different and report.files["unchanged"] > 0
    a, b = loaded
    assert a.snapshot_id != b.snapshot_id and len(a.files) == len(b.files)
    for x, y in zip(a.files, b.files, strict=True):
        assert x.path is y.path and x.digest is y.digest
    plain = Repository.open(repo).load_snapshot(str(b.snapshot_id))
    assert (plain.files, plain.lineage) == (b.files, b.lineage)
    # the assets as a comparison reads them (``compare.compared_asset``, B session 10)
    assert [(x.kind, x.id, x.name, x.files, x.v2_yaml) for x in plain.assets] == [
        (y.kind, y.id, y.name, y.files, y.v2_yaml) for y in b.assets
    ]


def test_two_snapshots_are_read_without_their_records_and_walked_with_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``diff`` reads each snapshot without its rewrite and redaction records (the comparison
    uses neither: docs/design/0007, C session 8); each side's walk reads its redaction records
    again, so a credential the backup redacted is still a fact: one removed with its file,
    one added with a new file. The report is the one of both snapshots read whole."""
    from amlport.backup.diff import diff_sides
    from amlport.backup.sides import SnapshotSide

    ws = copy_workspace("messy", tmp_path / "ws")
    repo = tmp_path / "repo"
    first = run_backup(LocalSource(ws), repo, BackupRequest()).snapshot_id
    whole_first = Repository.open(repo).load_snapshot(str(first))
    assert whole_first.redactions and whole_first.rewrites  # what the diff leaves out
    redacted = whole_first.file(whole_first.redactions[0].file)
    assert redacted is not None and redacted.original is not None
    gone = ws / redacted.original["container"] / redacted.original["path"]
    gone.unlink()
    blobstore = next(p for p in ws.iterdir() if p.name.startswith("azureml-blobstore-"))
    leak = blobstore / "LocalUpload" / "[..] leak.py"
    leak.parent.mkdir(parents=True, exist_ok=True)
    leak.write_text(f'c = "{CONNECTION}"\n')
    second = run_backup(LocalSource(ws), repo, BackupRequest()).snapshot_id
    loaded = _manifests_read_by_diff(monkeypatch)
    a_text, b_text = f"{repo}@{first}", f"{repo}@{second}"
    report = diff_specs(a_text, b_text, open_source)
    assert [(m.rewrites, m.redactions) for m in loaded] == [([], []), ([], [])]
    assert ("AMLP-HYG-002", "files/workspaceblobstore/LocalUpload/[..] leak.py") in [
        (f.rule, f.subject) for f in report.audit_added
    ]
    assert redacted.path in [f.subject for f in report.audit_removed]
    r = Repository.open(repo)
    with r:
        whole = diff_sides(
            SnapshotSide(r, r.load_snapshot(str(first)), label=f"{repo}@{str(first)[:16]}"),
            SnapshotSide(r, r.load_snapshot(str(second)), label=f"{repo}@{str(second)[:16]}"),
        )
    assert report.to_dict() == whole.to_dict()


def _manifests_read_by_diff(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The snapshots ``diff`` reads from now on, as it holds them (its ``_snapshot_side``)."""
    import amlport.backup.compare as compare

    loaded: list[Any] = []
    side = compare._snapshot_side

    def keep(*args, **kwargs):  # type: ignore[no-untyped-def]
        result = side(*args, **kwargs)
        loaded.append(result.manifest)
        return result

    monkeypatch.setattr(compare, "_snapshot_side", keep)
    return loaded
