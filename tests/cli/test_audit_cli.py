"""``amlport audit`` on the command line: exit codes, formats, selection, errors.

The command is registered on a fresh Typer app here (``audit_cmd.register``), so these tests do
not depend on the main app having registered it yet.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import pytest
import typer
from helpers.sarif import validate_sarif
from rich.console import Console
from typer.testing import CliRunner, Result

from amlport.cli import audit_cmd, common

REPO = Path(__file__).resolve().parents[2]
ARM = REPO / "fixtures" / "arm"
WS = REPO / "fixtures" / "workspaces"


@pytest.fixture(autouse=True)
def wide_consoles(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles fix their width when created; make it wide and independent of the
    terminal (or xdist worker) the tests run in, so long lines are not wrapped."""
    monkeypatch.setattr(common, "out", Console(soft_wrap=False, width=250))
    monkeypatch.setattr(common, "err", Console(stderr=True, width=250))


@cache
def app() -> typer.Typer:
    cli = typer.Typer(pretty_exceptions_enable=False, add_completion=False)

    @cli.callback()
    def main() -> None:
        """amlport (test harness)."""

    audit_cmd.register(cli)
    return cli


def run(*args: str) -> Result:
    runner = CliRunner()
    env = {"COLUMNS": "250", "AZURE_STORAGE_CONNECTION_STRING": ""}
    return runner.invoke(app(), ["audit", *args], env=env, catch_exceptions=False)


def test_bad_deployment_fails_on_high_with_remediations() -> None:
    res = run("--arm", str(ARM / "bad"), "--fail-on", "high")
    assert res.exit_code == 5, res.output
    out = res.stdout
    for rule_id in ("AMLP-RES-001", "AMLP-LCK-001", "AMLP-RES-002"):
        assert rule_id in out
    assert "Standard_LRS" in out
    assert "no CanNotDelete lock covers" in out
    assert "blob soft delete is disabled" in out
    assert "az storage account migration start" in out
    assert "az lock create --name amlport-cannot-delete" in out
    assert "--enable-delete-retention true" in out


def test_good_deployment_exits_0() -> None:
    res = run("--arm", str(ARM / "good"), "--fail-on", "low")
    assert res.exit_code == 0, res.output
    assert "0 failed" in res.stdout


def test_sarif_output_file_validates(tmp_path: Path) -> None:
    out = tmp_path / "audit.sarif"
    res = run("--arm", str(ARM / "bad"), "--format", "sarif", "-o", str(out))
    assert res.exit_code == 5
    assert res.stdout == ""
    assert f"wrote sarif audit report to {out}" in res.stderr
    doc = json.loads(out.read_text(encoding="utf-8"))
    validate_sarif(doc)
    ids = {r["ruleId"] for r in doc["runs"][0]["results"]}
    assert {"AMLP-RES-001", "AMLP-LCK-001", "AMLP-RES-002"} <= ids


def test_messy_workspace_hygiene_findings_appear_with_paths_in_json() -> None:
    res = run(str(WS / "messy"), "--format", "json")
    assert res.exit_code == 5, res.stderr
    data = json.loads(res.stdout)
    by_rule: dict[str, list[str]] = {}
    for r in data["results"]:
        if r["state"] == "fail":
            by_rule.setdefault(r["rule_id"], []).append(r["path"])
    assert any(
        p.endswith("messy_b_pointer_with_sas/Trained_model") for p in by_rule["AMLP-HYG-001"]
    )
    assert any("messy_c_secrets_in_logs" in p for p in by_rule["AMLP-HYG-002"])
    assert any("messy_a_pointer_target_missing" in p for p in by_rule["AMLP-HYG-003"])
    assert all(p for paths in by_rule.values() for p in paths)
    local = next(r for r in data["results"] if r["rule_id"] == "AMLP-RES-001")
    assert local["state"] == "not_checked" and "local copy" in local["message"]
    assert data["target"]["data_plane"].startswith("not checked")


def test_messy_with_bad_arm_as_markdown(tmp_path: Path) -> None:
    out = tmp_path / "audit.md"
    res = run(str(WS / "messy"), "--arm", str(ARM / "bad"), "--format", "markdown", "-o", str(out))
    assert res.exit_code == 5
    md = out.read_text(encoding="utf-8")
    assert "### High" in md and "AMLP-HYG-001" in md and "AMLP-RES-001" in md
    assert "stmessylegacy0042" in md


def test_table_to_a_file_is_plain_text(tmp_path: Path) -> None:
    out = tmp_path / "audit.txt"
    res = run("--arm", str(ARM / "bad"), "-o", str(out))
    assert res.exit_code == 5
    text = out.read_text(encoding="utf-8")
    assert "HIGH: 3 failed" in text and "\x1b[" not in text


def test_rule_selection_changes_the_exit_code() -> None:
    res = run("--arm", str(ARM / "bad"), "--rule", "AMLP-RES-004", "--rule", "AMLP-RES-005")
    assert res.exit_code == 1, res.output
    res = run("--arm", str(ARM / "bad"), "--skip", "AMLP-*")
    assert res.exit_code == 0


def test_strict_counts_not_checked(tmp_path: Path) -> None:
    assert run("--arm", str(tmp_path), "--fail-on", "low").exit_code == 0
    assert run("--arm", str(tmp_path), "--fail-on", "low", "--strict").exit_code == 5


def test_json_flag_is_format_json() -> None:
    res = run("--arm", str(ARM / "good"), "--json")
    assert json.loads(res.stdout)["exit_code"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((), "nothing to audit"),
        (("--arm", str(ARM / "good"), "--format", "xml"), "unknown --format"),
        (("--arm", str(ARM / "good"), "--fail-on", "critical"), "unknown --fail-on"),
        (("--arm", str(ARM / "good"), "--rule", "AMLP-XYZ-001"), "matches no audit rule"),
        (("--arm", str(ARM / "good"), "--arm-live"), "exclude each other"),
        (("--arm-live",), "--arm-live needs the subscription"),
        ((str(WS / "does-not-exist"),), "does not exist"),
    ],
)
def test_usage_errors_exit_2_in_one_line(args: tuple[str, ...], message: str) -> None:
    res = run(*args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr
    assert "Traceback" not in res.output


def test_broken_arm_file_exits_2_naming_it(tmp_path: Path) -> None:
    (tmp_path / "storage-account.json").write_text("{not json", encoding="utf-8")
    res = run("--arm", str(tmp_path))
    assert res.exit_code == 2
    assert "storage-account.json" in res.stderr and "az storage account show" in res.stderr


def test_help_mentions_exit_codes() -> None:
    res = CliRunner().invoke(app(), ["audit", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "--fail-on" in res.stdout and "--arm" in res.stdout and "not checked" in res.stdout
