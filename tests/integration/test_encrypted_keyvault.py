"""A repository key read from Azure Key Vault (``keys.from_key_vault``), against a local
replay of the data plane serving the official ``GetSecret`` example (tests/arm-replay)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import armreplay as ar

from amlport.bundle import Repository, keys
from amlport.errors import UsageError

pytest.importorskip("azure.keyvault.secrets")

EXAMPLE = (
    ar.EXAMPLES
    / "keyvault/data-plane/Microsoft.KeyVault/stable/7.4/examples/GetSecret-example.json"
)
URL = "https://myvault.vault.azure.net/secrets/mysecretname/4387e9f3d6e14c459867679a90fd0f79"


class _Token:
    """A credential that is never asked (the replay answers without a challenge)."""

    def get_token(self, *scopes: str, **kw: Any) -> Any:
        from azure.core.credentials import AccessToken

        return AccessToken("replay", 2**31)


@pytest.fixture
def vault(tmp_path: Path) -> Any:
    server = ar.start_replay(tmp_path / "tls")
    body = json.loads(EXAMPLE.read_text(encoding="utf-8"))["responses"]["200"]["body"]
    server.serve("GET", "/secrets/mysecretname/4387e9f3d6e14c459867679a90fd0f79", body)
    yield server
    server.stop()


def _read(vault: Any, url: str = URL) -> keys.UserKey:
    return keys.from_key_vault(
        url,
        credential=_Token(),
        endpoint=vault.url,
        connection_verify=str(vault.ca_file),
        verify_challenge_resource=False,
    )


def test_a_key_vault_secret_wraps_and_opens_a_repository(
    vault: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(keys, "SCRYPT", {"n": 1 << 10, "r": 8, "p": 1})
    user = _read(vault)
    assert user.kind == keys.KIND_PASSPHRASE and user.origin == "Key Vault secret mysecretname"
    assert "mysecretvalue" not in repr(user)
    repo = Repository.init(tmp_path / "repo", encrypt=True, key=user)
    digest = repo.put_bytes(b"payload")
    keys._CACHE.clear()
    again = Repository.open(repo.path, key=_read(vault))
    assert again.get_bytes(digest) == b"payload"
    assert not vault.unexpected


def test_a_missing_secret_or_a_bad_url_is_a_usage_error(vault: Any) -> None:
    with pytest.raises(UsageError, match="could not be read") as caught:
        _read(vault, "https://myvault.vault.azure.net/secrets/othername")
    assert caught.value.exit_code == 2
    vault.unexpected.clear()
    for bad in ("https://evil.example.com/secrets/x", "http://myvault.vault.azure.net/secrets/x"):
        with pytest.raises(UsageError, match="not a Key Vault secret URL"):
            keys.from_key_vault(bad)
