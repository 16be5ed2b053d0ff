"""One options object per concern (``cli/options.py``): every credential option comes from a
shared group, and every command that takes a REPO reads the same ``$AMLPORT_REPO_*``
variables with the same precedence (command line > environment > settings profile)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.models import OptionInfo
from typer.testing import CliRunner

from amlport.cli import repo_options
from amlport.cli.app import app
from amlport.cli.options import GROUPS, REPO, OptionGroup
from amlport.errors import UsageError
from amlport.storage.opener import StorageAuth

CREDENTIAL_FLAG = re.compile(r"^--([a-z]+-)?(connection-string|account-key|sas-token|credential)$")
KEY = "a2V5" * 22  # base64, 88 characters: the shape of an account key
SAS = "sv=2024-05-04&ss=b&srt=co&sp=rl&se=2030-01-01&sig=c2VjcmV0c2ln"
CONN = "DefaultEndpointsProtocol=http;AccountName=x;AccountKey=eA==;BlobEndpoint=http://127.0.0.1:9"
REPO_URL = "az://backups/prod"


def callbacks(typer_app: typer.Typer, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every registered command function (sub-apps included) with its command line name."""
    for info in typer_app.registered_commands:
        name = info.name or (info.callback.__name__ if info.callback else "")
        yield f"{prefix}{name}".strip(), info.callback
    for group in typer_app.registered_groups:
        assert group.typer_instance is not None
        yield from callbacks(group.typer_instance, f"{prefix}{group.name} ")


def commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, path: list[str]) -> Iterator[tuple[str, Any]]:
        subs = getattr(command, "commands", None)
        if isinstance(subs, dict):
            for name, sub in sorted(subs.items()):
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path), command

    yield from walk(typer.main.get_command(app), [])


def test_no_command_declares_a_credential_option_outside_the_shared_objects() -> None:
    grouped = {name: g for g in GROUPS for name, _ in g.options()}
    found = 0
    for name, callback in callbacks(app):
        expanded = {
            name: g
            for g in getattr(callback, "option_groups", {}).values()
            for name, _ in g.options()
        }
        for param in inspect.signature(callback).parameters.values():
            default = param.default
            if not isinstance(default, OptionInfo):
                assert not isinstance(default, OptionGroup), f"{name}: group left unexpanded"
                continue
            flags = [d for d in default.param_decls or () if CREDENTIAL_FLAG.match(d)]
            if not flags:
                continue
            found += 1
            assert param.name in expanded, (
                f"{name}: {flags[0]} is declared by hand; use a group of cli/options.py"
            )
            assert grouped[param.name] is expanded[param.name]
    assert found > 50  # the walk saw the commands (25 of them take a credential)


def test_a_group_spells_the_same_options_in_every_command() -> None:
    seen: dict[str, tuple[Any, ...]] = {}
    for name, command in commands():
        for param in command.params:
            if any(CREDENTIAL_FLAG.match(o) for o in param.opts):
                spelled = (tuple(param.opts), getattr(param, "help", None), param.required)
                assert seen.setdefault(param.name or "", spelled) == spelled, name


def repo_commands() -> list[str]:
    return [n for n, c in commands() if any(p.name == "repo_connection_string" for p in c.params)]


def test_the_repo_commands_are_discovered() -> None:
    found = set(repo_commands())
    assert {"backup", "restore", "snapshots", "verify", "ls", "dump", "diff", "report"} <= found
    assert {"map init", "repo key list", "export", "import", "forget"} <= found


# What a command needs beyond its required parameters to reach its repository.
EXTRA = {
    "export": ["--repo", REPO_URL],
    "unpack": ["--repo", REPO_URL],
    "repo key add": ["--new-passphrase"],
}
EXTRA_ENV = {"repo key add": {"AMLPORT_NEW_REPO_KEY": "a new passphrase"}}


def arguments(name: str, command: Any, tmp: Path) -> list[str]:
    """The fewest arguments that get ``command`` as far as its REPO: every REPO-like value
    is ``az://backups/prod``, a SOURCE a folder, a file option an empty file."""
    (tmp / "src").mkdir(exist_ok=True)
    (tmp / "f.yaml").write_text("{}\n")
    args: list[str] = list(EXTRA.get(name, []))
    for param in command.params:
        if not param.required:
            continue
        exists = getattr(param.type, "exists", False)
        if param.param_type_name == "argument":
            named = str(tmp / "src") if param.name == "source" else REPO_URL
            args.append(str(tmp / "f.yaml") if exists else named)
            continue
        flag = param.opts[0]
        if param.name == "repo":
            value = REPO_URL
        elif param.name == "output":
            value = str(tmp / "out.tar.gz")
        elif param.name == "to":
            value = str(tmp / "target")
        elif exists:
            value = str(tmp / "f.yaml")
        else:
            value = "x"
        args += [flag, value]
    return args


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[StorageAuth | None]:
    """The repository credential each command computes; the run then stops (exit 2)."""
    real = repo_options.repo_auth
    got: list[StorageAuth | None] = []

    def spy(*args: Any, **kwargs: Any) -> StorageAuth | None:
        got.append(real(*args, **kwargs))
        raise UsageError("stopped by the test after the repository credential")

    monkeypatch.setattr(repo_options, "repo_auth", spy)
    return got


VARIABLES = [
    ("AMLPORT_REPO_CONNECTION_STRING", CONN, "connection_string"),
    ("AMLPORT_REPO_ACCOUNT_KEY", KEY, "account_key"),
    ("AMLPORT_REPO_SAS_TOKEN", SAS, "sas_token"),
    ("AMLPORT_REPO_CREDENTIAL", "default", "use_default_credential"),
]


def clean_env(**extra: str) -> dict[str, str | None]:
    """No AMLPORT_* of the machine running the tests (CliRunner patches os.environ)."""
    import os

    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("AMLPORT_")}
    env["AZURE_STORAGE_CONNECTION_STRING"] = None
    return {**env, "COLUMNS": "200", **extra}


@pytest.mark.parametrize("command", repo_commands())
@pytest.mark.parametrize(("variable", "value", "field"), VARIABLES, ids=[v[0] for v in VARIABLES])
def test_every_repo_command_reads_each_amlport_repo_variable(
    command: str,
    variable: str,
    value: str,
    field: str,
    seen: list[StorageAuth | None],
    tmp_path: Path,
) -> None:
    target = dict(commands())[command]
    args = [*command.split(), *arguments(command, target, tmp_path)]
    env = clean_env(**{variable: value}, **EXTRA_ENV.get(command, {}))
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 2, result.output
    assert "stopped by the test" in result.output, result.output
    auth = seen[0]
    assert auth is not None
    assert getattr(auth, field) == (True if field == "use_default_credential" else value)
    assert value == "default" or value not in result.output  # a secret is never echoed


def test_the_command_line_wins_over_the_environment(
    seen: list[StorageAuth | None], tmp_path: Path
) -> None:
    env = clean_env(AMLPORT_REPO_CONNECTION_STRING=CONN)
    CliRunner().invoke(app, ["snapshots", REPO_URL, "--repo-sas-token", SAS], env=env)
    assert seen[0] == StorageAuth(None, None, SAS, False)


def test_the_environment_wins_over_the_profile(
    seen: list[StorageAuth | None], tmp_path: Path
) -> None:
    toml = tmp_path / "amlport.toml"
    toml.write_text('[profiles.p]\nrepo_sas_token = { env = "MY_SAS" }\n')
    env = clean_env(AMLPORT_CONFIG=str(toml), MY_SAS=SAS)
    CliRunner().invoke(app, ["--profile", "p", "snapshots", REPO_URL], env=env)
    assert seen[0] == StorageAuth(None, None, SAS, False)  # the profile, nothing else set
    seen.clear()
    env["AMLPORT_REPO_CONNECTION_STRING"] = CONN
    CliRunner().invoke(app, ["--profile", "p", "snapshots", REPO_URL], env=env)
    assert seen[0] == StorageAuth(CONN, None, None, False)  # the environment, whole
    seen.clear()
    CliRunner().invoke(
        app, ["--profile", "p", "snapshots", REPO_URL, "--repo-account-key", KEY], env=env
    )
    assert seen[0] == StorageAuth(None, KEY, SAS, False)  # the command line (and profile)


def test_the_environment_is_not_read_for_a_folder_or_a_signed_url(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("AMLPORT_REPO_SAS_TOKEN", SAS)
    monkeypatch.setenv("AMLPORT_REPO_CONNECTION_STRING", CONN)
    assert repo_options.repo_auth(str(tmp_path), None, None, None, None) is None
    url = f"https://acct.blob.core.windows.net/bk?{SAS}"
    assert repo_options.repo_auth(url, None, None, None, None) == StorageAuth()


@pytest.mark.parametrize(
    ("variable", "value", "needle"),
    [
        ("AMLPORT_REPO_ACCOUNT_KEY", "not a key: s3cr3t!", "$AMLPORT_REPO_ACCOUNT_KEY is not"),
        ("AMLPORT_REPO_CREDENTIAL", "s3cr3t-value", "$AMLPORT_REPO_CREDENTIAL must be"),
    ],
)
def test_a_bad_variable_is_named_never_echoed(variable: str, value: str, needle: str) -> None:
    result = CliRunner().invoke(app, ["snapshots", REPO_URL], env=clean_env(**{variable: value}))
    assert result.exit_code == 2
    assert needle in result.output and "s3cr3t" not in result.output


def test_help_names_the_variables_and_no_value(tmp_path: Path) -> None:
    env = clean_env(AMLPORT_REPO_SAS_TOKEN=SAS, AMLPORT_REPO_ACCOUNT_KEY=KEY)
    result = CliRunner().invoke(app, ["snapshots", "--help"], env=env)
    assert result.exit_code == 0
    flat = " ".join(result.output.split())
    for variable, value, _ in VARIABLES:
        assert f"${variable}" in flat
        assert value == "default" or value not in result.output


def test_the_repo_group_is_the_one_the_commands_use() -> None:
    assert [name for name, _ in REPO.options()] == [
        "repo_connection_string",
        "repo_account_key",
        "repo_sas_token",
        "repo_credential",
    ]
