"""Maps and workspace files checked against their schema (issue 17): wrong types, unknown or
misspelt keys, names that would let a write leave its target, unfilled ``map init``
placeholders, two sources onto one target and alias bombs are each a ``UsageError`` that
names the file and the key — never accepted silently, never an internal error."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from amlport.errors import ExitCode, UsageError
from amlport.model.mapping import Mapping
from amlport.model.workspace import WorkspaceDescriptor
from amlport.storage.local import load_descriptor_file

REPO = Path(__file__).resolve().parents[2]
MAPS = REPO / "tests" / "integration" / "maps"
WORKSPACES = REPO / "fixtures" / "workspaces"
BLOB = "azureml-blobstore-99999999-8888-7777-6666-555555555555"

GOOD_TARGET: dict[str, Any] = {
    "account": "stqa0001",
    "endpoint": "core.windows.net",
    "subscription_id": "11111111-2222-3333-4444-555555555555",
    "resource_group": "rg-ml-qa",
    "workspace": "mlw-qa",
    "containers": {"blobstore": BLOB, "artifacts": "azureml"},
    "datastores": {"workspaceblobstore": BLOB, "workspaceartifactstore": "azureml"},
}
GOOD_MAP: dict[str, Any] = {
    "target": GOOD_TARGET,
    "datastores": {
        "workspaceblobstore": "workspaceblobstore",
        "workspaceartifactstore": "workspaceartifactstore",
    },
    "assets": {"Trained_model-a79bd916": "autoprice-regressor"},
}


def refused(data: Any, *, kind: str = "map") -> str:
    with pytest.raises(UsageError) as exc:
        if kind == "map":
            Mapping.from_dict(data, where="qa.yaml")
        else:
            WorkspaceDescriptor.from_dict(data, where="ws/workspace.yaml")
    assert exc.value.exit_code == ExitCode.ERROR
    return exc.value.message


def edited(path: str, value: Any, base: dict[str, Any] = GOOD_MAP) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node[key]
    node[last] = value
    return doc


def test_the_shipped_maps_and_workspace_files_are_valid() -> None:
    for path in sorted(MAPS.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert Mapping.from_yaml(text, where=str(path)).target.account.startswith("st")
    for path in sorted(WORKSPACES.glob("*/workspace.yaml")):
        assert load_descriptor_file(path).blobstore_container
    mapping = Mapping.from_dict(GOOD_MAP)
    assert mapping.target_datastore("workspaceblobstore") == "workspaceblobstore"
    assert Mapping.from_dict(mapping.to_dict()) == mapping


@pytest.mark.parametrize(
    ("path", "value", "says"),
    [
        ("target.containers", [BLOB, "azureml"], "'target.containers' must be a mapping"),
        ("target.containers", BLOB, "not a string"),
        ("target.containers", "", "not a string"),
        ("target.account", 1234, "target.account must be a storage account name"),
        ("target.account", None, "target.account must be"),
        ("target.workspace", ["mlw"], "target.workspace must be a workspace name, not a list"),
        ("target.datastores", ["workspaceblobstore"], "'target.datastores' must be a mapping"),
        ("datastores", "workspaceblobstore", "'datastores' must be a mapping"),
        ("datastores.workspaceblobstore", 7, "datastores['workspaceblobstore'] must be"),
        ("assets", ["a", "b"], "'assets' must be a mapping"),
        ("target", "stqa0001", "'target' must be a mapping"),
    ],
)
def test_wrong_types_name_the_key_and_the_file(path: str, value: Any, says: str) -> None:
    message = refused(edited(path, value))
    assert message.startswith("qa.yaml: ")
    assert says in message


@pytest.mark.parametrize(
    ("path", "key", "says"),
    [
        ("", "datastore", "unknown key 'datastore' (did you mean 'datastores'?)"),
        ("", "traget", "unknown key 'traget' (did you mean 'target'?)"),
        ("target", "containrs", "unknown key 'containrs' in 'target' (did you mean 'containers'?)"),
        ("target.containers", "blobstor", "in 'target.containers' (did you mean 'blobstore'?)"),
        ("target", "zzz", "unknown key 'zzz' in 'target' (known: account, endpoint"),
    ],
)
def test_unknown_and_misspelt_keys_are_named(path: str, key: str, says: str) -> None:
    doc = copy.deepcopy(GOOD_MAP)
    node = doc
    for part in filter(None, path.split(".")):
        node = node[part]
    node[key] = "x"
    assert says in refused(doc)


def test_a_missing_target_and_missing_required_keys_are_named() -> None:
    assert "target is required" in refused({"datastores": {}})
    target = {k: v for k, v in GOOD_TARGET.items() if k not in ("account", "containers")}
    message = refused({"target": target})
    assert "target.account is required" in message
    assert "target.containers is required" in message
    assert "blobstore is required" in refused(edited("target.containers", {"artifacts": "x"}))


def test_every_problem_is_reported_at_once() -> None:
    doc = edited("target.account", 5)
    doc["target"]["regoin"] = "westeurope"
    doc["datastores"] = {"workspaceblobstore": "../up"}
    message = refused(doc)
    assert "3 problems" in message
    for part in ("target.account", "'regoin'", "datastores['workspaceblobstore']"):
        assert part in message


HOSTILE_CONTAINERS = [
    "../escape",
    "../../etc",
    "a/b",
    "/abs",
    "..",
    "x\\y",
    "x\x00y",
    "x\ny",
    "x\x1b[31m",
    "ws[prod]",
    "x[/]y",
    "UPPER",
    "c" * 1024,
    "-leading",
]


@pytest.mark.parametrize("name", HOSTILE_CONTAINERS)
def test_container_names_that_could_leave_the_target_are_refused(name: str) -> None:
    for path in ("target.containers.blobstore", "target.containers.artifacts"):
        assert path in refused(edited(path, name))
    ds = refused(edited("target.datastores", {"workspaceblobstore": name}))
    assert "target.datastores['workspaceblobstore']" in ds
    workspace = refused(edited("containers.blobstore", name, GOOD_TARGET), kind="ws")
    assert workspace.startswith("ws/workspace.yaml: containers.blobstore")


@pytest.mark.parametrize("name", ["../x", "a/b", "x\x07", "we ird", "c" * 300])
def test_datastore_names_are_names(name: str) -> None:
    assert "datastores" in refused(edited("datastores", {"workspaceblobstore": name}))
    assert "datastores key" in refused(edited("datastores", {name: "workspaceblobstore"}))


def test_control_characters_in_names_are_refused() -> None:
    assert "control character" in refused(edited("target.workspace", "mlw\x1b]0;pwned\x07"))
    # asset names are only typed here: the importer refuses a bad one, naming it
    assert Mapping.from_dict(edited("assets", {"odd\x1bname": "odd\x1bname"})).assets
    assert "assets['a'] must be an asset name, not a list" in refused(edited("assets.a", ["x"]))


# -- map init placeholders ------------------------------------------------------------------


def test_an_unfilled_map_init_template_names_every_placeholder() -> None:
    from amlport.importing import mapinit

    placeholders = mapinit.template_of.__code__.co_consts  # the template's own spelling
    assert "<target storage account>" in placeholders
    doc = copy.deepcopy(GOOD_MAP)
    doc["target"].update(
        account="<target storage account>",
        subscription_id="<target subscription id>",
        resource_group="<target resource group>",
        workspace="<target workspace name>",
        containers={"blobstore": "azureml-blobstore-<target workspace guid>"},
    )
    message = refused(doc)
    for key, text in [
        ("target.account", "<target storage account>"),
        ("target.subscription_id", "<target subscription id>"),
        ("target.resource_group", "<target resource group>"),
        ("target.workspace", "<target workspace name>"),
        ("target.containers.blobstore", "<target workspace guid>"),
    ]:
        assert f"{key} still holds the placeholder '{text}'" in message


def test_one_placeholder_left_is_enough_to_refuse() -> None:
    message = refused(edited("target.resource_group", "rg-<target resource group>"))
    assert message == (
        "qa.yaml: target.resource_group still holds the placeholder "
        "'<target resource group>' from 'amlport map init'; fill it in"
    )


# -- collisions -----------------------------------------------------------------------------


def test_two_source_datastores_onto_one_target_datastore_are_refused() -> None:
    doc = edited("datastores.mlops_blob", "workspaceblobstore")
    message = refused(doc)
    assert "'mlops_blob', 'workspaceblobstore' all map onto target container" in message


def test_two_target_datastores_of_one_container_are_a_collision_too() -> None:
    doc = edited("target.datastores.qablob", BLOB)
    doc["datastores"] = {"workspaceblobstore": "qablob", "other": "workspaceblobstore"}
    assert f"map onto target container '{BLOB}'" in refused(doc)


def test_distinct_targets_and_unmapped_ones_are_not_collisions() -> None:
    doc = edited("datastores.extra", "not_in_target")
    assert Mapping.from_dict(doc).target_datastore("extra") is None


# -- YAML: bombs, syntax -----------------------------------------------------------------------


def chain(levels: int) -> str:
    lines = ["  x0: &a0 [lol]"] + [
        f"  x{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)
    ]
    return "\n".join(lines) + "\n"


def test_alias_chains_in_a_map_file_are_refused_naming_it() -> None:
    text = yaml.safe_dump(GOOD_MAP) + "bomb:\n" + chain(26)
    with pytest.raises(UsageError, match=r"^qa\.yaml: YAML aliases expand"):
        Mapping.from_yaml(text, where="qa.yaml")


def test_alias_chains_in_a_workspace_file_are_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(GOOD_TARGET) + "region:\n" + chain(26), encoding="utf-8")
    with pytest.raises(UsageError) as exc:
        load_descriptor_file(path)
    assert exc.value.message.startswith(f"{path}: YAML aliases expand")


def test_a_broken_workspace_file_names_the_file_and_the_line(tmp_path: Path) -> None:
    path = tmp_path / "workspace.yaml"
    path.write_text("account: st1\ncontainers:\n  blobstore: [b\nendpoint: x\n", "utf-8")
    with pytest.raises(UsageError) as exc:
        load_descriptor_file(path)
    assert exc.value.message.startswith(f"{path}: invalid YAML at line ")
    assert "ParserError" not in exc.value.message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n", "42\n"])
def test_a_workspace_file_that_is_not_a_mapping_says_so(tmp_path: Path, text: str) -> None:
    path = tmp_path / "workspace.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError, match="the file must be a mapping"):
        load_descriptor_file(path)
