"""``audit`` reports what ``scan`` finds about outputs: orphan outputs (AMLP-HYG-008) and
outputs a run read that are not there (AMLP-HYG-009), with the same paths, under stable ids."""

from __future__ import annotations

import shutil
from pathlib import Path

from amlport.audit import AuditRequest, State, run_audit
from amlport.audit.catalog import load_rules
from amlport.audit.engine import AuditReport, Result
from amlport.audit.facts import ControlPlane, DataPlane
from amlport.model import findings as F
from amlport.model.inventory import Inventory
from amlport.storage.local import LocalSource
from amlport.walk import walk

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
BLOBSTORE = "azureml-blobstore-ef3d03d0-cda7-4922-a95a-e9a5ef50252f"


def _audit(inv: Inventory) -> AuditReport:
    request = AuditRequest(
        inventory=inv, data_plane=DataPlane.not_checked("local copy"), control_plane=ControlPlane()
    )
    return run_audit(request)


def _results(report: AuditReport, rule_id: str) -> list[Result]:
    return [r for r in report.results if r.rule.id == rule_id]


def _messy_with_orphans(tmp_path: Path) -> Path:
    """The messy workspace plus output folders of runs whose records are gone (one with a
    hostile run id: brackets, markup and a control character in a blob name)."""
    root = tmp_path / "messy"
    shutil.copytree(WS / "messy", root)
    for run in ("deleted_run_4f2a", "gone[/]run[bold]\x1b"):
        port = root / BLOBSTORE / "azureml" / run / "model_output"
        port.mkdir(parents=True)
        (port / "model.pkl").write_bytes(b"weights")
    return root


def test_the_rules_are_in_the_catalogue_with_stable_ids() -> None:
    by_id = {r.id: r for r in load_rules()}
    assert by_id["AMLP-HYG-008"].check == "orphan_outputs"
    assert by_id["AMLP-HYG-009"].check == "missing_outputs"
    assert by_id["AMLP-HYG-008"].category == by_id["AMLP-HYG-009"].category == "hygiene"
    docs = (REPO / "docs" / "audit-rules.md").read_text(encoding="utf-8")
    assert "### AMLP-HYG-008" in docs and "### AMLP-HYG-009" in docs


def test_orphan_outputs_are_audit_failures_with_the_scan_paths(tmp_path: Path) -> None:
    inv = walk(LocalSource(_messy_with_orphans(tmp_path)))
    scan_paths = {f.path for f in inv.findings if f.code == F.ORPHAN_OUTPUT}
    assert len(scan_paths) == 2
    flagged = _results(_audit(inv), "AMLP-HYG-008")
    assert {r.outcome.path for r in flagged} == scan_paths
    assert all(r.state is State.FAIL for r in flagged)
    assert any("deleted_run_4f2a/model_output" in str(r.outcome.path) for r in flagged)


def test_missing_expected_outputs_are_audit_failures_with_the_scan_paths() -> None:
    inv = walk(LocalSource(WS / "messy"))
    scan_paths = {f.path for f in inv.findings if f.code == F.MISSING_OUTPUT}
    assert scan_paths, "the messy fixture has an empty upload-mode output"
    flagged = _results(_audit(inv), "AMLP-HYG-009")
    assert {r.outcome.path for r in flagged} == scan_paths
    assert all(r.state is State.FAIL for r in flagged)
    assert any(
        "messy_e_empty_output_producer/champion_model" in str(r.outcome.path) for r in flagged
    )


def test_clean_workspaces_pass_both_rules() -> None:
    report = _audit(walk(LocalSource(WS / "designer-autoprice")))
    for rule_id in ("AMLP-HYG-008", "AMLP-HYG-009"):
        (result,) = _results(report, rule_id)
        assert result.state is State.PASS
