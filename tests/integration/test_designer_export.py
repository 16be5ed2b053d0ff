"""Export carries the designer pipeline's document (issue 20, item 3): the description a person
rebuilds the pipeline from, beside the run-graph YAML, in the bundle."""

from __future__ import annotations

from pathlib import Path

import yaml
from helpers.cliutil import amlport

from amlport.bundle import Repository
from amlport.export import ExportRequest, run_export
from amlport.storage.local import LocalSource

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
PARENT = "a186e29d-388b-46bb-b111-726e328be005"


def test_designer_export_carries_the_document(tmp_path: Path) -> None:
    repo_path = tmp_path / "repo"
    run_export(LocalSource(WS / "designer-autoprice"), repo_path, ExportRequest())
    repo = Repository.open(repo_path)
    manifest = repo.load_snapshot(repo.list_snapshots()[0].id)
    [pipeline] = [a for a in manifest.assets if a.kind == "pipeline"]
    markdown = pipeline.attrs["designer_document"]
    assert markdown == f"pipelines/{PARENT}.md" and markdown in pipeline.files
    text = repo.read_file(manifest, markdown).decode("utf-8")
    assert "### 1. Select Columns in Dataset" in text and "### 7. Evaluate Model" in text
    doc = yaml.safe_load(repo.read_file(manifest, pipeline.attrs["description"]))
    steps = doc["designer"]["steps"]
    assert [s["name"] for s in steps][:3] == [
        "Select Columns in Dataset",
        "Clean Missing Data",
        "Split Data",
    ]
    mode = next(p for p in steps[1]["parameters"] if p["key"] == "cleaning-mode")
    assert (mode["value"], mode["raw"]) == ("Remove entire row", "%22Remove+entire+row%22")


def test_designer_document_is_emitted_beside_the_v2_assets(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_export(LocalSource(WS / "designer-autoprice"), repo, ExportRequest())
    out = tmp_path / "assets"
    qa = REPO / "tests" / "integration" / "maps" / "qa.yaml"
    ran = amlport(
        "import", str(repo), "--to", str(tmp_path / "t"), "--map", str(qa),
        "--emit-assets", str(out),
    )  # fmt: skip
    assert ran.returncode in (0, 1), ran.stderr
    text = (out / "designer" / f"{PARENT}.md").read_text(encoding="utf-8")
    assert text.startswith(f"# Designer pipeline run {PARENT}")
    again = amlport(
        "import", str(repo), "--to", str(tmp_path / "t"), "--map", str(qa),
        "--emit-assets", str(out),
    )  # fmt: skip
    assert again.returncode in (0, 1), again.stderr  # a re-run: the same files, skipped


def test_designer_document_is_restored_into_the_target(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    run_export(LocalSource(WS / "designer-autoprice"), repo, ExportRequest())
    qa = REPO / "tests" / "integration" / "maps" / "qa.yaml"
    target = tmp_path / "t"
    ran = amlport("import", str(repo), "--to", str(target), "--map", str(qa))
    assert ran.returncode in (0, 1), ran.stderr
    [doc] = target.rglob(f"amlport/pipelines/{PARENT}.md")
    assert doc.read_text(encoding="utf-8").startswith(f"# Designer pipeline run {PARENT}")
    described = amlport("describe", str(target), PARENT[:8])  # the target is a workspace too
    assert described.returncode == 0, described.stderr
    assert "### 5. Train Model" in described.stdout
