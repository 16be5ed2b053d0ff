"""A local folder is not Azure: names it cannot hold are failed items; the rest is restored.

An Azure container holds blob names a folder cannot: a 300-byte path segment (NAME_MAX is
255), ``x/model`` beside ``x/model/weights.bin`` (a file and a folder under one name), a
backslash. Before: the restore to a folder stopped with an internal error (an OSError) or
depended on which of two parallel writes came first. Now each such name is a ``failed`` item
naming the file and why, exit 3, and every other file is restored.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.backup import cli

from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.target import LocalTarget, UnwritableName, local_name_problem

BLOB, ART = "names-blobstore", "names-artifacts"
LONG_SEGMENT = "L" * 300
DEEP = "/".join(["d" * 200] * 5) + "/deep.txt"  # 1,009 characters, every segment legal
HOSTILE_OK = "ok/[x][/]y ..z.txt"  # markup, '..' inside a segment (control characters: unit)
CANNOT = {
    f"data/{LONG_SEGMENT}.csv": "304 bytes",
    "x/model": "folder of other blobs",
}
CAN = ("ok/plain.txt", "x/model/weights.bin", HOSTILE_OK, DEEP, "a" * 250 + ".bin")
TARGET = {
    "account": "stnamesqa0001",
    "endpoint": "core.windows.net",
    "workspace": "mlw-names",
    "containers": {"blobstore": "azureml-blobstore-qa", "artifacts": "azureml"},
    "datastores": {
        "workspaceblobstore": "azureml-blobstore-qa",
        "workspaceartifactstore": "azureml",
    },
}


def _descriptor() -> WorkspaceDescriptor:
    return WorkspaceDescriptor.from_dict(TARGET)


@pytest.mark.parametrize(
    ("name", "why"),
    [
        (LONG_SEGMENT, "300 bytes"),
        ("é" * 128, "256 bytes"),  # 128 characters, 256 bytes in UTF-8
        ("dir\\file.txt", "backslash"),
        ("a//b", "empty"),
        ("a/./b", "'.'"),
        ("a/../b", "'..'"),
        ("nul\x00", "NUL"),
    ],
)
def test_names_a_folder_cannot_hold_are_named(name: str, why: str) -> None:
    assert why in str(local_name_problem(name))


@pytest.mark.parametrize("name", [*CAN, "x/model", "[/]", "..x", "\x1b[31mred", "c\x01.txt"])
def test_names_a_folder_holds_pass(name: str) -> None:
    assert local_name_problem(name) is None


def test_local_target_raises_a_typed_error_not_an_oserror(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "t", _descriptor())
    target.ensure_containers()
    with pytest.raises(UnwritableName, match="300 bytes"):
        target.write_bytes("azureml", LONG_SEGMENT, b"x", metadata={}, overwrite=False)
    target.write_bytes("azureml", "x/model", b"file", metadata={}, overwrite=False)
    with pytest.raises(UnwritableName, match=r"x/model/weights\.bin"):  # a file is in the way
        target.write_bytes("azureml", "x/model/weights.bin", b"w", metadata={}, overwrite=False)
    target.write_bytes("azureml", "y/model/weights.bin", b"w", metadata={}, overwrite=False)
    with pytest.raises(UnwritableName, match="y/model"):  # a folder is in the way
        target.write_bytes("azureml", "y/model", b"file", metadata={}, overwrite=True)
    # a legal name near NAME_MAX: its temp file must fit too
    target.write_bytes("azureml", "n" * 255, b"ok", metadata={}, overwrite=False)
    assert (tmp_path / "t" / "azureml" / ("n" * 255)).read_bytes() == b"ok"
    assert not [p for p in (tmp_path / "t").rglob("*") if ".amlport-tmp-" in p.name]


def test_unholdable_is_decided_on_the_whole_set(tmp_path: Path) -> None:
    target = LocalTarget(tmp_path / "t", _descriptor())
    names = ["x/model", "x/model/weights.bin", "x/modelx", "a\\b", "ok"]
    found = target.unholdable("azureml", names)
    assert set(found) == {"x/model", "a\\b"}


@pytest.mark.azurite
def test_restore_to_a_folder_names_what_it_cannot_write_and_restores_the_rest(
    azurite: az.Azurite, tmp_path: Path
) -> None:
    account = azurite.source
    service = account.service_client()
    for container in (BLOB, ART):
        if not service.get_container_client(container).exists():
            service.create_container(container)
    names = [*CANNOT, *CAN]
    for name in names:
        service.get_blob_client(BLOB, name).upload_blob(name.encode(), overwrite=True)
    service.get_blob_client(ART, "ExperimentRun/dcid.r1/logs/x.txt").upload_blob(
        b"log", overwrite=True
    )
    ws_file = tmp_path / "ws.yaml"
    ws_file.write_text(
        yaml.safe_dump(
            {
                "account": account.name,
                "containers": {"blobstore": BLOB, "artifacts": ART},
                "datastores": {"workspaceblobstore": BLOB, "workspaceartifactstore": ART},
            }
        ),
        encoding="utf-8",
    )
    repo, target = tmp_path / "repo", tmp_path / "restored"
    env = {"AZURE_STORAGE_CONNECTION_STRING": account.connection_string}
    res = cli(
        "backup", f"{account.url}", "--repo", str(repo), "--workspace-file", str(ws_file),
        "--connection-string", account.connection_string, env=env,
    )  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    mapfile = tmp_path / "map.yaml"
    mapfile.write_text(
        yaml.safe_dump(
            {
                "target": TARGET,
                "datastores": {"workspaceblobstore": "workspaceblobstore",
                               "workspaceartifactstore": "workspaceartifactstore"},
            }
        ),
        encoding="utf-8",
    )  # fmt: skip
    res = cli("restore", str(repo), "latest", "--to", str(target), "--map", str(mapfile), "--json")
    assert res.returncode == 3, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    failed = {a["subject"].split("/", 2)[2]: a["reason"] for a in doc["import"]["not_done"]}
    assert set(failed) == set(CANNOT)
    for name, why in CANNOT.items():
        assert why in failed[name]
    blobstore = target / "azureml-blobstore-qa"
    for name in CAN:
        assert (blobstore / name).read_bytes() == name.encode(), name
    assert (target / "azureml" / "ExperimentRun/dcid.r1/logs/x.txt").read_bytes() == b"log"
    # a re-run is idempotent: the same names fail, the rest is already there
    again = cli(
        "restore", str(repo), "latest", "--to", str(target), "--map", str(mapfile), "--json"
    )
    assert again.returncode == 3
    redo = json.loads(again.stdout)
    assert redo["import"]["counts"].get("create", 0) == 0
    assert os.path.isdir(blobstore / "x" / "model")
