"""Names that end in a newline (session 10, lead).

Python's ``$`` matches before a final newline, so ``re.match(r"^...$", "valid\\n")`` accepts
the text with its newline. Session 9 fixed one such check (archive member names); every
other validator of a name or identifier that comes from a repository, a bundle, a map or the
command line used the same form. The worst case seen: a stray file named
``snapshots/<id>\\n`` beside a snapshot made ``snapshots``, ``verify`` and ``forget`` of the
whole repository fail ("snapshot … is damaged"), because it was read as a second copy of the
snapshot. Every validator now ends its pattern with ``\\Z``; these tests fail before."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from helpers.cliutil import amlport

from amlport.bundle.objects import hex_of
from amlport.bundle.reference import check_snapshot
from amlport.errors import AmlportError
from amlport.model.manifest import check_digest, parse_schema
from amlport.storage.azure_location import _container_name
from amlport.storage.azure_target import _check_metadata

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
HEX = "ab" * 32


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (check_digest, f"sha256:{HEX}", f"sha256:{HEX}\n"),
        (hex_of, f"sha256:{HEX}", f"sha256:{HEX}\n"),
        (check_snapshot, "latest", "latest\n"),
        (check_snapshot, HEX[:12], HEX[:12] + "\n"),
        (parse_schema, "amlport.bundle/1", "amlport.bundle/1\n"),
        (_container_name, "azureml-blobstore", "azureml-blobstore\n"),
    ],
)
def test_a_validator_refuses_a_trailing_newline(check, good, bad) -> None:  # type: ignore[no-untyped-def]
    check(good)
    with pytest.raises(AmlportError):
        check(bad)


def test_metadata_names_of_a_target_blob_refuse_a_trailing_newline() -> None:
    _check_metadata({"amlport_digest": "x"})
    with pytest.raises(AmlportError):
        _check_metadata({"amlport_digest\n": "x"})


def test_importer_name_checks_refuse_a_trailing_newline() -> None:
    from amlport.importers import azureml_assets, mlflow_registry

    for pattern in (azureml_assets.NAME_RE, mlflow_registry._SAFE_NAME):
        assert pattern.match("model-1")
        assert not pattern.match("model-1\n")
    guid = "0123abcd-0123-4567-89ab-0123456789ab"
    assert azureml_assets.GUID_RE.match(guid) and not azureml_assets.GUID_RE.match(guid + "\n")


def test_every_anchored_validator_of_the_package_ends_with_backslash_z() -> None:
    """A new ``^…$`` validator would bring the flaw back: the package's anchored patterns
    (outside the log and YAML parsers of ``walk/``, which match lines) end with ``\\Z``."""
    offenders = []
    for folder in ("src/amlport", "importers", "exporters", "rewriters"):
        for path in (REPO / folder).rglob("*.py"):
            if "walk" in path.relative_to(REPO).parts:
                continue
            text = path.read_text(encoding="utf-8")
            for m in re.finditer(r'r"\^[^"\n]*\$"', text):
                offenders.append(f"{path.relative_to(REPO)}: {m.group(0)}")
    assert offenders == []


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    repo = tmp_path_factory.mktemp("nl") / "repo"
    res = amlport("backup", str(WS / "designer-autoprice"), "--repo", str(repo))
    assert res.returncode in (0, 1), res.stderr
    return repo


def test_a_stray_snapshot_name_with_a_newline_does_not_break_the_repository(
    repo: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy)
    (only,) = (p for p in (copy / "snapshots").iterdir())
    shutil.copyfile(only, only.with_name(only.name + "\n"))
    listed = amlport("snapshots", str(copy), "--json")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    ids = [s["id"] for s in json.loads(listed.stdout)["snapshots"]]
    assert ids == [only.name]
    checked = amlport("verify", str(copy))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "damaged" not in checked.stdout + checked.stderr
