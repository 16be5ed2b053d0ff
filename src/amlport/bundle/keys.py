"""The keys of an encrypted repository (docs/design/0013-repository-encryption.md).

An encrypted repository has one random 256-bit master key (``crypto.derive`` makes its
encryption and id keys). It is stored only *wrapped* — sealed with AES-256-GCM under a key
derived from a user key — as ``keys/<id>.json``; a repository may hold several wrapped
copies, one per user key. Rotating a user key is adding a copy wrapped by the new one and
removing the old copy: no object is rewritten (``amlport repo key add|remove|list``).

A user key is one of:

- a key file (``--key-file PATH``, made by ``amlport repo key new PATH``): 256 random bits,
  stretched with HKDF-SHA-256 and a random salt;
- a passphrase (``$AMLPORT_REPO_KEY``): scrypt with a random salt, its parameters recorded;
- a secret in Azure Key Vault (``--key-vault-secret https://<vault>.vault.azure.net/secrets/
  <name>``): its value is a key file's content, or else a passphrase.

Every key and passphrase is a secret: never printed, never in a message, never in a bundle
(``UserKey`` does not show it in its repr). Wrapped key files come from the repository,
which is not trusted (docs/design/0004): each is bounded in size, nesting and types, and
the scrypt parameters it asks for are bounded too (a hostile file cannot make amlport spend
gigabytes of memory).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from amlport.bundle import files
from amlport.bundle.store import RepoStore
from amlport.errors import IntegrityError, ParseError, UsageError
from amlport.model.manifest import format_time
from amlport.safeload import load_json

FOLDER = "keys/"
ENV = "AMLPORT_REPO_KEY"
KEY_FILE_FORMAT = "amlport.key"
RECORD_FORMAT = "amlport.repository-key"
KIND_FILE = "key-file"
KIND_PASSPHRASE = "passphrase"
MAX_KEY_FILE_BYTES = 4096
MAX_RECORD_BYTES = 16 * 1024
MAX_RECORDS = 64
SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}  # 32 MiB, ~0.1 s: what new records get
MAX_SCRYPT_MEMORY = 256 << 20  # 128 * n * r * p: a record asking for more is refused
_ID_RE = re.compile(r"^[0-9a-f]{16}\Z")
_AAD = b"amlport.repository-key/1\x00"
_KEYS_HINT = "list the keys with `amlport repo key list REPO`; add one with `repo key add`"


class WrongKey(UsageError):
    """No wrapped key of the repository opens with the user key given (exit 2)."""


@dataclass(frozen=True)
class UserKey:
    """A user key; ``origin`` says where it came from (for messages), never what it is."""

    kind: str  # KIND_FILE (32 raw bytes) or KIND_PASSPHRASE (UTF-8 bytes)
    secret: bytes = field(repr=False)
    origin: str = ""

    @property
    def fingerprint(self) -> str:
        """A process-local cache key (never shown: a hash of a passphrase is guessable)."""
        return hashlib.sha256(self.kind.encode() + b"\x00" + self.secret).hexdigest()


@dataclass(frozen=True)
class KeyInfo:
    id: str
    kind: str
    created: str

    def to_dict(self) -> dict[str, str]:
        return {"id": self.id, "kind": self.kind, "created": self.created}


# --- user keys ---------------------------------------------------------------------------


def new_key_file_text() -> str:
    """The content of a new key file: 256 random bits."""
    key = base64.b64encode(secrets.token_bytes(32)).decode()
    doc = {"format": KEY_FILE_FORMAT, "version": 1, "key": key}
    return json.dumps(doc, indent=2) + "\n"


def parse_key_text(text: str, origin: str) -> UserKey:
    """A key file's content (UsageError naming ``origin``, never quoting the content)."""
    bad = UsageError(
        f"{origin} is not an amlport key file",
        hint="make one with `amlport repo key new PATH`; a passphrase goes in $AMLPORT_REPO_KEY",
    )
    try:
        data = load_json(text, origin)
    except ParseError:
        raise bad from None
    if not isinstance(data, dict) or data.get("format") != KEY_FILE_FORMAT:
        raise bad
    version, key = data.get("version"), data.get("key")
    if type(version) is not int or version != 1 or not isinstance(key, str) or len(key) > 64:
        raise bad
    try:
        raw = base64.b64decode(key, validate=True)
    except (ValueError, binascii.Error):
        raise bad from None
    if len(raw) != 32 or set(data) - {"format", "version", "key"}:
        raise bad
    return UserKey(KIND_FILE, raw, origin)


def read_key_file(path: str | Path) -> UserKey:
    origin = f"key file {path}"
    try:
        raw = files.read_regular(Path(path), MAX_KEY_FILE_BYTES)
    except FileNotFoundError:
        raise UsageError(f"{origin} does not exist") from None
    except IsADirectoryError:
        raise UsageError(f"{origin} is a directory") from None
    except IntegrityError:  # too large, a FIFO, a symlink…: not a key file we made
        raise UsageError(
            f"{origin} is not a regular file of at most {MAX_KEY_FILE_BYTES} bytes"
        ) from None
    except PermissionError:
        raise UsageError(f"{origin} cannot be read (permission denied)") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{origin} is not an amlport key file") from None
    return parse_key_text(text, origin)


def passphrase_key(passphrase: str, origin: str) -> UserKey:
    if not passphrase:
        raise UsageError(f"{origin} is empty")
    if len(passphrase) > MAX_KEY_FILE_BYTES:
        raise UsageError(f"{origin} is longer than {MAX_KEY_FILE_BYTES} characters")
    return UserKey(KIND_PASSPHRASE, passphrase.encode("utf-8", "surrogatepass"), origin)


def from_env() -> UserKey | None:
    value = os.environ.get(ENV)
    return passphrase_key(value, f"passphrase in ${ENV}") if value else None


def secret_value_key(value: str, origin: str) -> UserKey:
    """A secret's value (Key Vault): a key file's content, else a passphrase."""
    if value.lstrip().startswith("{"):
        return parse_key_text(value, origin)
    return passphrase_key(value, origin)


# --- wrapped master keys -----------------------------------------------------------------


def _kek(user: UserKey, kdf: dict[str, Any]) -> bytes:
    salt = _b64(kdf.get("salt"), "kdf.salt", 16)
    if user.kind == KIND_FILE:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.kdf.hkdf import HKDF

        return HKDF(hashes.SHA256(), 32, salt, b"amlport key wrap/1").derive(user.secret)
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    n, r, p = kdf["n"], kdf["r"], kdf["p"]
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(user.secret)


def _aad(repo_id: str, key_id: str, kind: str) -> bytes:
    return _AAD + f"{repo_id}\x00{key_id}\x00{kind}".encode()


def wrap(master: bytes, user: UserKey, repo_id: str) -> tuple[str, bytes]:
    """(key id, the bytes of ``keys/<id>.json``) of ``master`` wrapped by ``user``."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    key_id = secrets.token_hex(8)
    kdf: dict[str, Any] = {"name": "hkdf-sha256" if user.kind == KIND_FILE else "scrypt",
                           "salt": base64.b64encode(os.urandom(16)).decode()}  # fmt: skip
    if user.kind == KIND_PASSPHRASE:
        kdf.update(SCRYPT)
    nonce = os.urandom(12)
    sealed = AESGCM(_kek(user, kdf)).encrypt(nonce, master, _aad(repo_id, key_id, user.kind))
    record = {
        "format": RECORD_FORMAT,
        "version": 1,
        "id": key_id,
        "created": format_time(datetime.now(timezone.utc)),
        "kind": user.kind,
        "kdf": kdf,
        "cipher": "aes-256-gcm",
        "nonce": base64.b64encode(nonce).decode(),
        "wrapped": base64.b64encode(sealed).decode(),
    }
    return key_id, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()


def add_key(store: RepoStore, repo_id: str, master: bytes, user: UserKey) -> str:
    key_id, record = wrap(master, user, repo_id)
    if not store.create(f"{FOLDER}{key_id}.json", record):
        raise UsageError("a key with the same random id exists; run the command again")
    return key_id


def key_ids(store: RepoStore) -> list[str]:
    names = (n[: -len(".json")] for n in store.list(FOLDER) if n.endswith(".json"))
    return sorted(n for n in names if _ID_RE.match(n))


def read_record(store: RepoStore, key_id: str) -> dict[str, Any]:
    """A checked ``keys/<id>.json`` (IntegrityError when it is not one amlport wrote)."""
    where = f"repository {store.display}, keys/{key_id}.json"
    try:
        raw = store.read(f"{FOLDER}{key_id}.json", limit=MAX_RECORD_BYTES)
    except files.TooLarge:
        raise IntegrityError(f"{where}: larger than {MAX_RECORD_BYTES} bytes",
                             hint=_KEYS_HINT) from None  # fmt: skip
    try:
        data = load_json(raw.decode("utf-8"), where)
    except (UnicodeDecodeError, ParseError):
        raise IntegrityError(f"{where}: not valid JSON", hint=_KEYS_HINT) from None
    ok = (
        isinstance(data, dict)
        and data.get("format") == RECORD_FORMAT
        and type(data.get("version")) is int
        and data.get("version") == 1
        and data.get("id") == key_id
        and data.get("kind") in (KIND_FILE, KIND_PASSPHRASE)
        and data.get("cipher") == "aes-256-gcm"
        and isinstance(data.get("created", ""), str)
        and isinstance(data.get("kdf"), dict)
    )
    if not ok:
        raise IntegrityError(f"{where}: not an amlport wrapped key", hint=_KEYS_HINT)
    _check_kdf(data["kdf"], data["kind"], where)
    _b64(data.get("nonce"), f"{where}: nonce", 12)
    _b64(data.get("wrapped"), f"{where}: wrapped", 48)
    return data


def _check_kdf(kdf: dict[str, Any], kind: str, where: str) -> None:
    _b64(kdf.get("salt"), f"{where}: kdf.salt", 16)
    if kind == KIND_FILE:
        if kdf.get("name") != "hkdf-sha256" or set(kdf) != {"name", "salt"}:
            raise IntegrityError(f"{where}: unknown kdf for a key file", hint=_KEYS_HINT)
        return
    params = [kdf.get(k) for k in ("n", "r", "p")]
    if kdf.get("name") != "scrypt" or set(kdf) != {"name", "salt", "n", "r", "p"}:
        raise IntegrityError(f"{where}: unknown kdf for a passphrase", hint=_KEYS_HINT)
    n, r, p = (v if type(v) is int and v > 0 else 0 for v in params)
    if not (n and r and p):
        raise IntegrityError(f"{where}: scrypt parameters are not positive integers",
                             hint=_KEYS_HINT)  # fmt: skip
    if n & (n - 1) or n < 2 or r > 64 or p > 16 or 128 * n * r * p > MAX_SCRYPT_MEMORY:
        raise IntegrityError(
            f"{where}: scrypt parameters n={n} r={r} p={p} exceed what amlport accepts "
            f"({MAX_SCRYPT_MEMORY >> 20} MiB)",
            hint=_KEYS_HINT,
        )


def _b64(value: Any, where: str, size: int) -> bytes:
    bad = IntegrityError(f"{where} is not {size} bytes of base64", hint=_KEYS_HINT)
    if not isinstance(value, str) or len(value) > 4 * size:
        raise bad
    try:
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise bad from None
    if len(raw) != size:
        raise bad
    return raw


_CACHE: dict[tuple[str, str], bytes] = {}  # (repository id, user key fingerprint) -> master


def remember(repo_id: str, user: UserKey, master: bytes) -> None:
    """Keep an unwrapped master key for this process (a passphrase costs scrypt once)."""
    _CACHE[(repo_id, user.fingerprint)] = master


def unwrap(store: RepoStore, repo_id: str, user: UserKey) -> bytes:
    """The master key, from the first wrapped copy ``user`` opens (WrongKey when none)."""
    cached = _CACHE.get((repo_id, user.fingerprint))
    if cached is not None:
        return cached
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    ids = key_ids(store)
    if not ids:
        raise IntegrityError(
            f"repository {store.display} is encrypted but holds no key (keys/ is empty)",
            hint="restore keys/ from a copy of the repository",
        )
    if len(ids) > MAX_RECORDS:
        raise IntegrityError(f"repository {store.display} holds {len(ids)} keys, more than "
                             f"the {MAX_RECORDS} amlport reads", hint=_KEYS_HINT)  # fmt: skip
    tried = 0
    for key_id in ids:
        record = read_record(store, key_id)
        if record["kind"] != user.kind:
            continue
        tried += 1
        kek = _kek(user, record["kdf"])
        nonce = base64.b64decode(record["nonce"])
        try:
            master = AESGCM(kek).decrypt(nonce, base64.b64decode(record["wrapped"]),
                                         _aad(repo_id, key_id, user.kind))  # fmt: skip
        except InvalidTag:
            continue
        if len(master) == 32:
            _CACHE[(repo_id, user.fingerprint)] = master
            return master
    kinds = "key file" if user.kind == KIND_FILE else "passphrase"
    raise WrongKey(
        f"the {user.origin} does not open repository {store.display} "
        f"({tried} wrapped key(s) for a {kinds} tried)",
        hint=_KEYS_HINT.replace("list the keys", "check the key; list the keys"),
    )


def find_key(store: RepoStore, repo_id: str, user: UserKey) -> str:
    """The id of the wrapped copy ``user`` opens (WrongKey when none)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    for key_id in key_ids(store)[:MAX_RECORDS]:
        record = read_record(store, key_id)
        if record["kind"] != user.kind:
            continue
        try:
            AESGCM(_kek(user, record["kdf"])).decrypt(
                base64.b64decode(record["nonce"]), base64.b64decode(record["wrapped"]),
                _aad(repo_id, key_id, user.kind),
            )  # fmt: skip
        except InvalidTag:
            continue
        return key_id
    raise WrongKey(f"the {user.origin} does not open repository {store.display}")


def list_keys(store: RepoStore) -> list[KeyInfo]:
    infos = []
    for key_id in key_ids(store)[:MAX_RECORDS]:
        record = read_record(store, key_id)
        infos.append(KeyInfo(key_id, record["kind"], record.get("created", "")))
    return infos


def remove_key(store: RepoStore, key_id: str) -> None:
    """Remove one wrapped copy; never the last one (the repository would be unreadable)."""
    if not _ID_RE.match(key_id):
        raise UsageError(f"{key_id!r} is not a key id", hint=_KEYS_HINT)
    ids = key_ids(store)
    if key_id not in ids:
        raise UsageError(f"repository {store.display} has no key {key_id}", hint=_KEYS_HINT)
    if len(ids) == 1:
        raise UsageError(
            f"key {key_id} is the last key of repository {store.display}: removing it would "
            "make every object unreadable",
            hint="add another key first (`amlport repo key add`)",
        )
    store.delete(f"{FOLDER}{key_id}.json")


def from_key_vault(
    url: str,
    *,
    credential: Any = None,
    endpoint: str | None = None,
    **client_options: Any,
) -> UserKey:
    """The secret at a Key Vault secret URL (``https://<vault>.vault.azure.net/secrets/<name>
    [/<version>]``), read with ``credential`` (default: DefaultAzureCredential; needs the
    ``keyvault`` extra). ``endpoint``, ``client_options``: another address and transport
    options for the vault (tests: a local replay of the service)."""
    match = re.match(
        r"^https://(?P<vault>[a-z0-9-]{3,24})\.vault\.azure\.net/secrets/(?P<name>[A-Za-z0-9-]"
        r"{1,127})(?:/(?P<version>[0-9a-f]{32}))?/?\Z",
        url,
    )
    if match is None:
        raise UsageError(
            f"{url!r} is not a Key Vault secret URL",
            hint="give https://<vault>.vault.azure.net/secrets/<name>[/<version>]",
        )
    try:
        from azure.keyvault.secrets import SecretClient
    except ImportError:
        raise UsageError(
            "--key-vault-secret needs the azure-keyvault-secrets package",
            hint="pip install 'amlport[keyvault]'",
        ) from None
    if credential is None:
        try:
            from azure.identity import DefaultAzureCredential
        except ImportError:
            raise UsageError(
                "--key-vault-secret needs the azure-identity package",
                hint="pip install 'amlport[keyvault]'",
            ) from None
        credential = DefaultAzureCredential()
    vault = endpoint or f"https://{match['vault']}.vault.azure.net"
    origin = f"Key Vault secret {match['name']}"
    client = SecretClient(vault_url=vault, credential=credential, **client_options)
    try:
        secret = client.get_secret(match["name"], match["version"])
    except Exception as exc:  # the SDK's errors carry no secret, yet only their kind is shown
        raise UsageError(
            f"{origin} could not be read from {vault} ({type(exc).__name__})",
            hint="check the URL and that your identity may get secrets of that vault",
        ) from None
    finally:
        client.close()
    if not isinstance(secret.value, str) or not secret.value:
        raise UsageError(f"{origin} has no value")
    return secret_value_key(secret.value, origin)
