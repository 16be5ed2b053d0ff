"""Parsers of the small files Azure ML writes (storage layout §3, §5)."""

from __future__ import annotations

import pytest

from amlport.errors import ParseError
from amlport.model.inventory import Loc
from amlport.walk import parsers

VERIFIED_POINTER = (
    '{"Container":"azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97","SasToken":null,'
    '"Uri":"wasbs://azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97@azmlfromscratchstr'
    '.blob.core.windows.net/azureml/a79bd916-2790-4202-89ed-fbdede3ccf1d/Trained_model/",'
    '"Account":"azmlfromscratchstr","RelativePath":"azureml/a79bd916-2790-4202-89ed-fbdede3ccf1d'
    '/Trained_model/","PathType":0,"AmlDataStoreName":"workspaceblobstore"}'
)


def test_verified_pointer_resolves_to_datastore_folder() -> None:
    doc = parsers.parse_pointer(VERIFIED_POINTER, "p")
    assert not doc.has_sas
    assert doc.account == "azmlfromscratchstr"
    assert parsers.pointer_target(doc, None) == Loc(
        "workspaceblobstore", "azureml/a79bd916-2790-4202-89ed-fbdede3ccf1d/Trained_model"
    )


def test_pointer_with_sas_is_flagged() -> None:
    text = VERIFIED_POINTER.replace('"SasToken":null', '"SasToken":"?sv=2021&sig=abc"')
    assert parsers.parse_pointer(text, "p").has_sas


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"Container": "x", "RelativePath": ', "invalid JSON"),
        ('{"hello": 1}', "not a designer pointer"),
        ("[" * 100 + "]" * 100, "nested deeper"),
    ],
)
def test_bad_pointers_raise_parse_error_with_reason(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as exc:
        parsers.parse_pointer(text, "azureml/ExperimentRun/dcid.x/Trained_model")
    assert reason in exc.value.reason
    assert exc.value.path == "azureml/ExperimentRun/dcid.x/Trained_model"


def test_yaml_alias_bomb_is_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8)
    )
    with pytest.raises(ParseError, match="aliases"):
        parsers.load_yaml(bomb, "bomb.yaml")


def test_invalid_yaml_names_the_line() -> None:
    with pytest.raises(ParseError, match="line 2"):
        parsers.load_yaml("a: 1\nb: c: d\ne: 2\n", "MLmodel")


def test_meta_requires_type() -> None:
    assert parsers.parse_meta("type: DataFrameDirectory\n", "m")["type"] == "DataFrameDirectory"
    with pytest.raises(ParseError, match="'type'"):
        parsers.parse_meta("visualization: []\n", "m")


def test_data_type_ilearner_maps_to_ilearner() -> None:
    type_id = parsers.parse_data_type('{"Id": "ILearnerDotNet", "ShortName": "Model"}', "d")
    assert parsers.LEGACY_TYPES[type_id] == "ILearner"


def test_mlmodel_fields_old_and_new_env_shapes() -> None:
    old = parsers.parse_mlmodel(
        "artifact_path: model\nflavors:\n  python_function: {env: conda.yaml, "
        "loader_module: mlflow.sklearn}\n  sklearn: {pickled_model: model.pkl}\n"
        "run_id: a57c2e43-4dcd-4188-944a-839bcba35331\n",
        "m",
    )
    assert old.run_id == "a57c2e43-4dcd-4188-944a-839bcba35331"
    assert old.flavors == ["python_function", "sklearn"]
    assert old.env_file == "conda.yaml"
    new = parsers.parse_mlmodel(
        "flavors:\n  python_function:\n    env: {conda: conda.yaml, virtualenv: python_env.yaml}\n"
        "run_id: 8f61417c580541cb84d88586a3a1a44a\n",
        "m",
    )
    assert new.env_file == "conda.yaml"
    with pytest.raises(ParseError, match="flavors"):
        parsers.parse_mlmodel("run_id: x\n", "m")


def test_decode_text_falls_back_to_latin1() -> None:
    assert parsers.decode_text("é".encode()) == ("é", True)
    assert parsers.decode_text(b"\xe9t\xe9") == ("été", False)
