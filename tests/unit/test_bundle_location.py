"""Repository locations: a folder or an Azure container URL with an optional prefix."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlport.bundle import Repository
from amlport.bundle.location import as_location, is_remote, open_store, split_url
from amlport.bundle.store import LocalStore
from amlport.errors import UsageError
from amlport.storage.opener import StorageAuth

CONN = (
    "DefaultEndpointsProtocol=http;AccountName=amldst;AccountKey=a2V5;"
    "BlobEndpoint=http://127.0.0.1:10000/amldst;"
)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("az://backups", ("az://backups", "")),
        ("az://backups/", ("az://backups", "")),
        ("az://backups/nightly/ws-1", ("az://backups", "nightly/ws-1")),
        (
            "az://backups@stbackup.blob.core.windows.net/team-a",
            ("az://backups@stbackup.blob.core.windows.net", "team-a"),
        ),
        (
            "https://stbackup.blob.core.windows.net/backups/a/b?sv=1&sig=x",
            ("https://stbackup.blob.core.windows.net/backups?sv=1&sig=x", "a/b"),
        ),
        ("http://127.0.0.1:10000/amldst/backups", ("http://127.0.0.1:10000/amldst/backups", "")),
        (
            "http://127.0.0.1:10000/amldst/backups/prod/2024=q1/",
            ("http://127.0.0.1:10000/amldst/backups", "prod/2024=q1"),
        ),
    ],
)
def test_split_url_finds_the_container_and_the_prefix(url: str, expected: tuple[str, str]) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("az://Bad_Container/x", "not a valid container name"),
        ("https://st.blob.core.windows.net/c/p", "not a valid container name"),
        ("az://backups/../etc", "cannot be part of a repository prefix"),
        ("az://backups/a//b", "cannot be part of a repository prefix"),
        ("az://backups/.hidden", "cannot be part of a repository prefix"),
        ("http://127.0.0.1:10000/amldst", "names no container"),
        ("https://stbackup.blob.core.windows.net", "names no container"),
    ],
)
def test_split_url_refuses_what_is_not_a_container_and_prefix(url: str, error: str) -> None:
    with pytest.raises(UsageError, match=error):
        split_url(url)


def test_urls_that_went_through_path_are_recognised() -> None:
    assert as_location(Path("az://backups/x")) == "az://backups/x"
    assert as_location(Path("https://st.blob.core.windows.net/c")) == (
        "https://st.blob.core.windows.net/c"
    )
    assert is_remote(Path("az://backups")) and is_remote("http://127.0.0.1:1/a/c")
    assert not is_remote("/srv/backups") and not is_remote(Path("backups/az"))
    assert as_location("/srv/az:/x") == "/srv/az:/x"


def test_open_store_local_and_remote_without_contacting_anything(tmp_path: Path) -> None:
    local = open_store(tmp_path / "r")
    assert isinstance(local, LocalStore) and local.local_root == tmp_path / "r"
    remote = open_store("az://backups/team-a", StorageAuth(connection_string=CONN))
    try:
        assert remote.local_root is None
        assert remote.display == "http://127.0.0.1:10000/amldst/backups/team-a"
        assert "a2V5" not in repr(remote) and "AccountKey" not in remote.display
        with pytest.raises(UsageError, match="not a local folder"):
            remote.local_path("config.json")
    finally:
        remote.close()


def test_a_credential_for_a_local_folder_is_a_mistake(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="local folder"):
        Repository.init(tmp_path / "r", auth=StorageAuth(sas_token="sv=1&sig=x"))
    assert not (tmp_path / "r").exists()
    repo = Repository.init(tmp_path / "r", auth=StorageAuth())  # no credential: fine
    assert repo.is_local and repo.location == str(tmp_path / "r")
    with repo:
        assert Repository.open(str(tmp_path / "r")).id == repo.id


@pytest.mark.parametrize(
    "command", ["backup", "forget", "restore", "export", "verify", "snapshots"]
)
def test_every_command_taking_a_repository_documents_the_repo_options(command: str) -> None:
    from typer.testing import CliRunner

    from amlport.cli.app import app

    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--repo-connection-string", "--repo-sas-token", "--repo-credential"):
        assert option in result.output


def test_storage_clients_never_send_netrc_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests would add ~/.netrc logins as Basic auth (and read the file per request)."""
    import requests

    from amlport.storage.azure_location import client_options
    from amlport.storage.retry import CountingRetry

    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password hunter2\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    plain = requests.Session().prepare_request(requests.Request("GET", "http://127.0.0.1/c/b"))
    assert "Authorization" in plain.headers  # the lookup this guards against is real
    session = client_options(CountingRetry(), 4)["transport"].session
    ours = session.prepare_request(requests.Request("GET", "http://127.0.0.1/c/b"))
    assert "Authorization" not in ours.headers
