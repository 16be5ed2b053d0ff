"""``amlport.toml``: named profiles (dev, qa, prod) so a scheduled run needs no long flag list.

Where: ``$AMLPORT_CONFIG`` when set, else ``./amlport.toml``, else
``$XDG_CONFIG_HOME/amlport/amlport.toml`` (``~/.config/amlport/amlport.toml``). Which
profile: ``amlport --profile NAME COMMAND`` or ``$AMLPORT_PROFILE``; none is applied unless
one is named (a file lying in the working folder changes nothing by itself)::

    [profiles.prod]
    source = "https://stprodml.blob.core.windows.net"
    repo = "az://amlport-backups/prod"
    workspace_file = "prod-workspace.yaml"
    connection_string = { env = "PROD_STORAGE_CONNECTION_STRING" }
    repo_sas_token = { keyvault = "https://kv-ops.vault.azure.net/secrets/backup-sas" }

A profile gives the defaults of the options and arguments of the same name; what the command
line gives wins. Credentials are given **by reference only**: ``{ env = "NAME" }`` (read
when the command runs) or ``{ keyvault = "https://<vault>.vault.azure.net/secrets/<name>" }``
(read with DefaultAzureCredential, needs ``azure-keyvault-secrets``). A credential written as
a value, or any value of the file that looks like a secret (``secrets.py``: a SAS signature,
an account key, a connection string), is refused: the file is meant to be committed and
shared. Parsed with ``tomllib`` (``tomli`` on Python 3.10), bounded in size and nesting.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlport.errors import UsageError
from amlport.secrets import find_secrets

CONFIG_ENV = "AMLPORT_CONFIG"
PROFILE_ENV = "AMLPORT_PROFILE"
FILE_NAME = "amlport.toml"
MAX_BYTES = 256 * 1024  # a settings file is a few hundred bytes
MAX_DEPTH = 4  # profiles.NAME.KEY.{env|keyvault}

# Plain settings: the profile key -> the parameter it is the default of.
PLAIN = {
    "source": "source",
    "repo": "repo",
    "target": "to",
    "map": "map_file",
    "workspace_file": "workspace_file",
    "cache_dir": "cache_dir",
    "credential": "credential",
    "repo_credential": "repo_credential",
    "target_credential": "target_credential",
}
# Credentials: by reference only.
SECRET = (
    "connection_string",
    "account_key",
    "sas_token",
    "repo_connection_string",
    "repo_account_key",
    "repo_sas_token",
    "target_connection_string",
    "target_account_key",
    "target_sas_token",
)
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}\Z")
_VAULT_REF = re.compile(
    r"^https://(?P<vault>[a-z0-9-]{3,24})\.vault\.[a-z0-9.]+/secrets/(?P<name>[A-Za-z0-9-]{1,127})\Z"
)


@dataclass
class Profile:
    name: str
    file: Path
    values: dict[str, Any] = field(default_factory=dict)  # parameter name -> value
    references: dict[str, dict[str, str]] = field(default_factory=dict)  # parameter -> ref

    def defaults(self) -> dict[str, Any]:
        """Parameter defaults, credentials resolved from their references now."""
        resolved = dict(self.values)
        for param, ref in self.references.items():
            resolved[param] = _resolve(ref, f"{self.file}: profiles.{self.name}.{param}")
        return resolved


def config_file(cwd: Path | None = None) -> Path | None:
    """The settings file in effect, or None."""
    explicit = os.environ.get(CONFIG_ENV)
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(
                f"${CONFIG_ENV} names {path}, which is not a file", hint="fix or unset it"
            )
        return path
    here = (cwd or Path.cwd()) / FILE_NAME
    if here.is_file():
        return here
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(base) / "amlport" / FILE_NAME
    return user if user.is_file() else None


def load_profile(name: str, path: Path | None = None) -> Profile:
    """Profile ``name`` of the settings file (``config_file``), checked whole."""
    path = path or config_file()
    if path is None:
        raise UsageError(
            f"--profile {name}: no {FILE_NAME} found",
            hint=f"create ./{FILE_NAME} or $XDG_CONFIG_HOME/amlport/{FILE_NAME} "
            "(docs/settings.md), or set $AMLPORT_CONFIG",
        )
    doc = parse(path)
    profiles = doc.get("profiles")
    if not isinstance(profiles, dict) or name not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else "none"
        raise UsageError(
            f"{path}: no profile {name!r} (profiles: {known})",
            hint=f"add a [profiles.{name}] table, or name one of those",
        )
    table = profiles[name]
    if not isinstance(table, dict):
        raise UsageError(f"{path}: profiles.{name} is not a table", hint=f"write [profiles.{name}]")
    return _profile(name, path, table)


def parse(path: Path) -> dict[str, Any]:
    """The TOML document, bounded; a usage error naming the file, line and problem."""
    try:
        raw = path.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise UsageError(
            f"{path} is larger than {MAX_BYTES // 1024} KiB", hint="is it the right file?"
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path} is not UTF-8 text") from None
    if found := find_secrets(text):
        kinds = ", ".join(sorted(found))
        raise UsageError(
            f"{path} holds what looks like a secret ({kinds}); it is not read",
            hint='name it instead: { env = "VARIABLE" } or { keyvault = "https://<vault>.'
            'vault.azure.net/secrets/<name>" }, and rotate the credential if the file was shared',
        )
    toml = _toml()
    try:
        doc = toml.loads(text)
    except toml.TOMLDecodeError as exc:
        raise UsageError(f"{path}: invalid TOML: {exc}", hint="see docs/settings.md") from None
    except RecursionError:
        raise UsageError(f"{path}: nested too deeply") from None
    if _depth(doc) > MAX_DEPTH:
        raise UsageError(
            f"{path}: nested deeper than {MAX_DEPTH} levels", hint="see docs/settings.md"
        )
    unknown = sorted(set(doc) - {"profiles"})
    if unknown:
        raise UsageError(f"{path}: unknown key {unknown[0]!r}", hint="only [profiles.NAME] tables")
    return doc


def _toml() -> Any:
    if sys.version_info >= (3, 11):
        import tomllib

        return tomllib
    import tomli  # the same parser, before it joined the standard library

    return tomli


def _depth(value: Any, level: int = 0) -> int:
    if isinstance(value, dict):
        return max([level + 1, *(_depth(v, level + 1) for v in value.values())])
    if isinstance(value, list):
        return max([level + 1, *(_depth(v, level + 1) for v in value)])
    return level


def _profile(name: str, path: Path, table: dict[str, Any]) -> Profile:
    profile = Profile(name=name, file=path)
    where = f"{path}: profiles.{name}"
    for key, value in table.items():
        if key in PLAIN:
            if not isinstance(value, str) or not value or len(value) > 4096:
                raise UsageError(f"{where}.{key} must be a non-empty string")
            profile.values[PLAIN[key]] = value
        elif key in SECRET:
            profile.references[key] = _reference(value, f"{where}.{key}")
        else:
            known = ", ".join([*PLAIN, *SECRET])
            raise UsageError(f"{where}: unknown key {key!r}", hint=f"known keys: {known}")
    return profile


def _reference(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise UsageError(
            f"{where} is a credential: give it by reference, never by value",
            hint='{ env = "VARIABLE" } or { keyvault = "https://<vault>.vault.azure.net/'
            'secrets/<name>" }',
        )
    if set(value) == {"env"} and isinstance(value["env"], str) and _ENV_NAME.match(value["env"]):
        return {"env": value["env"]}
    if (
        set(value) == {"keyvault"}
        and isinstance(value["keyvault"], str)
        and _VAULT_REF.match(value["keyvault"])
    ):
        return {"keyvault": value["keyvault"]}
    raise UsageError(
        f"{where}: a reference is {{ env = NAME }} (a variable name) or {{ keyvault = URL }} "
        "(https://<vault>.vault.azure.net/secrets/<name>)",
        hint="see docs/settings.md",
    )


def _resolve(ref: dict[str, str], where: str) -> str:
    if "env" in ref:
        value = os.environ.get(ref["env"])
        if not value:
            raise UsageError(
                f"{where} names ${ref['env']}, which is not set", hint=f"export {ref['env']}=…"
            )
        return value
    url = ref["keyvault"]
    match = _VAULT_REF.match(url)
    assert match is not None  # checked when the file was read
    try:
        from azure.identity import DefaultAzureCredential
        from azure.keyvault.secrets import SecretClient
    except ImportError:
        raise UsageError(
            f"{where} is a Key Vault reference: reading it needs azure-keyvault-secrets and "
            "azure-identity",
            hint="pip install azure-keyvault-secrets 'amlport[identity]', or use { env = NAME }",
        ) from None
    vault = url.split("/secrets/")[0]
    try:
        secret = SecretClient(vault, DefaultAzureCredential()).get_secret(match["name"])
    except Exception as exc:  # the SDK's errors: auth, network, not found
        raise UsageError(
            f"{where}: cannot read {url}: {type(exc).__name__}",
            hint="check the vault name, your sign-in (az login) and its get permission",
        ) from None
    if not secret.value:
        raise UsageError(f"{where}: {url} is empty")
    return str(secret.value)


def command_defaults(root: Any, profile: Profile) -> dict[str, Any]:
    """``default_map`` for the command tree under ``root``: each command gets the values
    whose parameter it has. ``source`` is a default only where SOURCE is an argument (the
    ``--source ACCOUNT[/WS]`` filter of ``snapshots`` and ``import`` is another thing)."""
    from typer.core import TyperArgument

    values = profile.defaults()

    def of(command: Any) -> dict[str, Any]:
        subs = getattr(command, "commands", None)
        if isinstance(subs, dict):
            return {name: of(sub) for name, sub in subs.items()}
        out: dict[str, Any] = {}
        for param in command.params:
            if param.name not in values:
                continue
            if param.name == "source" and not isinstance(param, TyperArgument):
                continue
            out[param.name] = values[param.name]
        return out

    return of(root)
