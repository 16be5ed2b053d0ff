"""``amlport.toml`` profiles (issue 22, item 5; docs/settings.md): defaults for a scheduled
run, credentials by reference only, a hostile or broken file refused by name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from amlport.cli.settings import load_profile
from amlport.errors import UsageError

REPO = Path(__file__).resolve().parents[2]
DESIGNER = REPO / "fixtures" / "workspaces" / "designer-autoprice"
KEY = "A" * 86 + "=="


def run_in(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AMLPORT_")}
    clean["XDG_CONFIG_HOME"] = str(cwd / "no-such-config")
    return subprocess.run(
        [sys.executable, "-m", "amlport", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**clean, "COLUMNS": "200", **(env or {})},
    )


def write_profile(folder: Path, text: str) -> Path:
    path = folder / "amlport.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_profile_is_a_whole_scheduled_run(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_profile(tmp_path, f'[profiles.dev]\nsource = "{DESIGNER}"\nrepo = "{repo}"\n')
    res = run_in(tmp_path, "--profile", "dev", "backup", "--json")
    assert res.returncode in (0, 1), res.stderr
    assert json.loads(res.stdout)["schema"] == "amlport.backup/1"
    listed = run_in(tmp_path, "--profile", "dev", "snapshots", "--json")
    # --source of `snapshots` is a filter, not the profile's SOURCE: one snapshot is listed
    assert len(json.loads(listed.stdout)["snapshots"]) == 1, listed.stderr


def test_the_command_line_wins_and_env_names_the_profile(tmp_path: Path) -> None:
    write_profile(tmp_path, '[profiles.qa]\nsource = "/nonexistent/qa"\n')
    named = run_in(tmp_path, "scan", "--json", env={"AMLPORT_PROFILE": "qa"})
    assert named.returncode == 2 and "/nonexistent/qa" in named.stderr
    wins = run_in(tmp_path, "--profile", "qa", "scan", str(DESIGNER), "--json")
    assert wins.returncode == 0, wins.stderr


def test_no_profile_named_means_the_file_changes_nothing(tmp_path: Path) -> None:
    write_profile(tmp_path, '[profiles.dev]\nsource = "/nonexistent"\n')
    res = run_in(tmp_path, "scan")
    assert res.returncode == 2 and "Missing argument" in res.stderr


def test_the_user_config_folder_is_found(tmp_path: Path) -> None:
    home = tmp_path / "xdg" / "amlport"
    home.mkdir(parents=True)
    write_profile(home, f'[profiles.p]\nsource = "{DESIGNER}"\n')
    res = run_in(
        tmp_path, "--profile", "p", "scan", "--json", env={"XDG_CONFIG_HOME": str(home.parent)}
    )
    assert res.returncode == 0, res.stderr


def test_a_credential_is_read_from_the_variable_it_names(tmp_path: Path) -> None:
    path = write_profile(tmp_path, '[profiles.p]\naccount_key = { env = "MY_KEY" }\n')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MY_KEY", KEY)
        assert load_profile("p", path).defaults() == {"account_key": KEY}
        mp.delenv("MY_KEY")
        with pytest.raises(UsageError, match=r"\$MY_KEY, which is not set"):
            load_profile("p", path).defaults()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (f'[profiles.p]\naccount_key = "{KEY}"\n', "looks like a secret"),
        ('[profiles.p]\nrepo_sas_token = 42\n', "by reference, never by value"),
        (
            '[profiles.p]\nsource = "https://a.blob.core.windows.net/c?sv=1&sig=abcdEFGH1234%3D"\n',
            "looks like a secret",
        ),
        (
            f'[profiles.p]\n# DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY}\n',
            "looks like a secret",
        ),
        ('[profiles.p]\nsas_token = { env = "A B" }\n', "a reference is"),
        ('[profiles.p]\nsas_token = { keyvault = "https://evil.example/x" }\n', "a reference is"),
        ('[profiles.p]\nsurce = "x"\n', "unknown key 'surce'"),
        ('[profiles.p]\nsource = 3\n', "must be a non-empty string"),
        ("[profiles.p\n", "invalid TOML"),
        ("[profiles.p]\nsource = 'a'\nsource = 'b'\n", "invalid TOML"),
        ("top = 1\n", "unknown key 'top'"),
        ("[profiles.p]\nrepo = " + "[" * 5000 + "]" * 5000 + "\n", "nested"),
        ("[profiles.p]\nsource = '" + "x" * 300_000 + "'\n", "larger than"),
        ('[profiles.other]\nsource = "x"\n', "no profile 'p' (profiles: other)"),
        ("\x00\xff", "invalid TOML"),
    ],
    ids=[
        "key-by-value", "short-value", "sas-in-url", "secret-in-comment", "bad-env-name",
        "not-a-vault", "typo", "wrong-type", "syntax", "duplicate", "unknown-top", "deep",
        "huge", "no-such-profile", "binary",
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_by_name(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "amlport.toml"
    path.write_bytes(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    with pytest.raises(UsageError) as caught:
        load_profile("p", path)
    assert needle in caught.value.message
    assert KEY not in caught.value.message and "abcdEFGH" not in caught.value.message
    assert str(path) in caught.value.message or needle.startswith("no profile")


def test_a_bad_file_is_one_line_exit_2_from_the_cli(tmp_path: Path) -> None:
    write_profile(tmp_path, f'[profiles.p]\nrepo_account_key = "{KEY}"\n')
    res = run_in(tmp_path, "--profile", "p", "snapshots", "x")
    assert res.returncode == 2 and "looks like a secret" in res.stderr
    assert KEY not in res.stderr and "Traceback" not in res.stderr


def test_a_keyvault_reference_needs_its_sdk_or_says_why(tmp_path: Path) -> None:
    path = write_profile(
        tmp_path,
        '[profiles.p]\nsas_token = { keyvault = "https://kv-ops.vault.azure.net/secrets/s" }\n',
    )
    profile = load_profile("p", path)
    assert profile.references == {
        "sas_token": {"keyvault": "https://kv-ops.vault.azure.net/secrets/s"}
    }
