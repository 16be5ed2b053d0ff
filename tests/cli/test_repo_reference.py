"""One repository reference for every command (``bundle/reference.py``): ``REPO``,
``REPO@SNAPSHOT``, ``--snapshot``; hostile references are usage errors before anything is
contacted. Pure parsing: no storage is touched (issue 21)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amlport.bundle.reference import MAX_REFERENCE, RepoRef, parse_reference
from amlport.errors import UsageError


@pytest.mark.parametrize(
    ("text", "location", "snapshot"),
    [
        ("az://bkp/prod", "az://bkp/prod", None),
        ("az://bkp/prod@5ccda80a", "az://bkp/prod", "5ccda80a"),
        ("az://bkp/prod@latest", "az://bkp/prod", "latest"),
        ("az://bkp@acct.blob.core.windows.net/prod", "az://bkp@acct.blob.core.windows.net/prod",
         None),
        ("az://bkp@acct.blob.core.windows.net/prod@ABCDEF", "az://bkp@acct.blob.core.windows.net/prod",
         "abcdef"),
        ("https://acct.blob.core.windows.net/bkp/a/b@0123", "https://acct.blob.core.windows.net/bkp/a/b",
         "0123"),
        ("http://127.0.0.1:10000/acct/bkp@latest", "http://127.0.0.1:10000/acct/bkp", "latest"),
        ("/backups/repo@5ccda80a", "/backups/repo", "5ccda80a"),
        ("./repo", "./repo", None),
    ],
)  # fmt: skip
def test_repo_at_snapshot(text: str, location: str, snapshot: str | None) -> None:
    assert parse_reference(text) == RepoRef(text, location, snapshot)


def test_the_snapshot_option_is_the_same_thing() -> None:
    assert parse_reference("az://bkp/prod", snapshot="5ccda80a").snapshot == "5ccda80a"
    assert parse_reference("az://bkp/prod@5ccda80a", snapshot="5CCDA80A").snapshot == "5ccda80a"
    with pytest.raises(UsageError, match="name two snapshots"):
        parse_reference("az://bkp/prod@5ccda80a", snapshot="latest")
    with pytest.raises(UsageError, match="is not a snapshot id"):
        parse_reference("az://bkp/prod", snapshot="../x")


def test_a_command_of_the_whole_repository_refuses_a_snapshot() -> None:
    with pytest.raises(UsageError, match="takes a whole repository"):
        parse_reference("az://bkp/prod@latest", allow_snapshot=False)
    assert parse_reference("az://bkp/prod", allow_snapshot=False).snapshot is None


def test_a_folder_named_like_repo_at_id_is_the_folder(tmp_path: Path) -> None:
    odd = tmp_path / "repo@abc"
    odd.mkdir()
    assert parse_reference(str(odd)) == RepoRef(str(odd), str(odd), None)
    assert parse_reference(f"{odd}@latest").location == str(odd)


def test_a_bad_id_after_an_existing_repository_says_so(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text("{}", encoding="utf-8")
    with pytest.raises(UsageError, match="'v1' is not a snapshot id"):
        parse_reference(f"{repo}@v1")


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("", "empty REPO"),
        ("   ", "empty REPO"),
        ("az://bkp/prod@", "names no snapshot"),
        ("az://bkp/pr@od/x", "'@' may only end"),
        ("az://bkp/prod@v1", "'@' may only end"),
        ("az://b@d/p", "'@' may only end"),
        ("https://u@acct.blob.core.windows.net/bkp", "'@' may only end"),
        ("az://bkp/../etc", "cannot be part of a repository prefix"),
        ("az://bkp/./x", "cannot be part of a repository prefix"),
        ("az://bkp/a//b", "cannot be part of a repository prefix"),
        ("az://bkp/[x]", "cannot be part of a repository prefix"),
        ("az://Bad_Name/p", "not a valid container name"),
        ("az://bkp/p\x1b[31m", "control character"),
        ("/backups/re\npo", "control character"),
        ("/backups/re\x85po", "control character"),
        ("az://bkp/" + "a" * (MAX_REFERENCE + 1), "characters long"),
        ("/backups/" + "a" * 300, "longer than 255 bytes"),
        ("s3://bucket/repo", "is not a storage amlport can open"),
    ],
)
def test_hostile_references_are_usage_errors(text: str, said: str) -> None:
    with pytest.raises(UsageError, match=re.escape(said)) as caught:
        parse_reference(text)
    assert "\x1b" not in caught.value.message  # shown escaped (repr)
