"""Unknown URL schemes are refused wherever a SOURCE, TARGET or REPO is read.

Before: ``--repo s3://bucket/p`` (any ``scheme://`` amlport does not implement) was taken as
a local path and created a folder ``s3:`` in the working directory, exit 0.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from helpers.backup import MAPS, WS, cli

from amlport.bundle.location import as_location, is_remote
from amlport.errors import UsageError
from amlport.storage.opener import is_url

AUTOPRICE = str(WS / "designer-autoprice")
QA = str(MAPS / "qa.yaml")


@pytest.mark.parametrize(
    "location",
    [
        "s3://bucket/p",
        "gs://b",
        "file:///tmp/x",
        "ftp://user:secretpw@host/p",
        "S3://BUCKET",
        "wasbs://c@acct.blob.core.windows.net/p",
        "s3:/bucket/p",  # what pathlib.Path makes of s3://bucket/p
        "hdfs+x.y-z://h[/]..",
    ],
)
def test_unknown_schemes_are_usage_errors_naming_the_scheme(location: str) -> None:
    scheme = location.split(":", 1)[0]
    with pytest.raises(UsageError) as caught:
        is_url(location)
    assert f"{scheme}://" in caught.value.message
    assert "az://" in (caught.value.hint or "")  # the supported forms
    assert "secretpw" not in str(caught.value)  # userinfo is never echoed
    with pytest.raises(UsageError):
        is_remote(Path(location))  # a REPO that went through Path


@pytest.mark.parametrize(
    "location",
    [
        "az://c/p",
        "AZ://c",
        "abfss://c@a.dfs.core.windows.net",
        "HTTPS://acct.blob.core.windows.net/c",
        "http://127.0.0.1:10000/devstoreaccount1/c",
    ],
)
def test_supported_schemes_are_urls(location: str) -> None:
    assert is_url(location)


@pytest.mark.parametrize("location", ["folder", "./s3:/b", "C:/data", "a:b/c", "[x]/..", ""])
def test_local_paths_stay_local(location: str) -> None:
    assert not is_url(location)


def test_path_mangled_urls_are_repaired_for_any_scheme() -> None:
    assert as_location(Path("az://c/p")) == "az://c/p"
    assert as_location(Path("s3://bucket/p")) == "s3://bucket/p"


@pytest.mark.parametrize(
    "args",
    [
        ("backup", AUTOPRICE, "--repo", "s3://bucket/p"),
        ("export", AUTOPRICE, "--to", "s3://bucket/p"),
        ("scan", "s3://bucket/p"),
        ("audit", "gs://bucket"),
        ("snapshots", "s3://bucket/p"),
        ("map", "init", "s3://bucket/p"),
        ("import", "s3://bucket/p", "--to", "t", "--map", QA),
        ("restore", "s3://bucket/p", "latest", "--to", "t", "--map", QA),
        ("diff", "s3://bucket/p", AUTOPRICE),
        ("forget", "s3://bucket/p", "--keep-last", "1"),
    ],
    ids=lambda a: a if isinstance(a, str) and not a.startswith("/") else None,
)
def test_every_command_refuses_an_unknown_scheme_and_creates_nothing(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    res = _run_in(tmp_path, *args)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "is not a storage amlport can open" in " ".join(res.stderr.split())
    assert "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []  # no folder 's3:' (or anything else)


def test_a_target_with_an_unknown_scheme_is_refused(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    work = tmp_path / "work"
    work.mkdir()
    assert cli("backup", AUTOPRICE, "--repo", str(repo)).returncode == 0
    for args in (
        ("restore", str(repo), "latest", "--to", "gs://b/x", "--map", QA),
        ("import", str(repo), "--to", "s3://b/x", "--map", QA),
    ):
        res = _run_in(work, *args)
        assert res.returncode == 2, res.stderr
        assert "is not a storage amlport can open" in " ".join(res.stderr.split())
    assert list(work.iterdir()) == []


def _run_in(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``cli`` with ``folder`` as the working directory (where a folder 's3:' would appear)."""
    here = os.getcwd()
    os.chdir(folder)
    try:
        return cli(*args)
    finally:
        os.chdir(here)
