"""Format rewriters: the designer pointer (the verified §3.5 file exported and re-imported),
MLmodel, v2 YAML, text logs, and the dispatch by file name and content."""

from __future__ import annotations

import codecs
import json

import pytest
import yaml
from helpers.rewriter_designer import (
    ACCOUNT,
    BLOBSTORE,
    EXPORT,
    IMPORT,
    LONG,
    MOUNT,
    REL,
    RUN,
    SHORT,
    SIG,
    SRC,
    TGT,
    VERIFIED_POINTER,
    WASBS,
)
from helpers.rewriter_identities import same_names

from amlport.model.inventory import Loc
from amlport.rewriters import Identity, RewriteRules, Unmappable, rewrite_file, v2_yaml
from amlport.rewriters.files import format_of, needs_rewrite
from amlport.safeload import SAFE_LOADER
from amlport.secrets import find_secrets
from amlport.walk import parsers

# --------------------------------------------------------------------------- pointer


def test_verified_pointer_exports_to_the_neutral_form() -> None:
    result = rewrite_file(f"ExperimentRun/dcid.{RUN}/Trained_model", VERIFIED_POINTER, EXPORT)
    assert (
        result.data
        == (
            f'{{"Container":null,"SasToken":null,"Uri":"{SHORT}{REL}","Account":null,'
            f'"RelativePath":"{REL}","PathType":0,"AmlDataStoreName":"workspaceblobstore"}}'
        ).encode()
    )
    assert [(c.location, c.before, c.after) for c in result.changes] == [
        ("/Container", BLOBSTORE, "null"),
        ("/Account", ACCOUNT, "null"),
        ("/Uri", f"{WASBS}{REL}", f"{SHORT}{REL}"),
    ]
    assert {c.rule for c in result.changes} == {"pointer:export"}
    assert result.redactions == {} and result.warnings == []


def test_verified_pointer_reimports_into_a_target() -> None:
    exported = rewrite_file("Trained_model", VERIFIED_POINTER, EXPORT).data
    result = rewrite_file("Trained_model", exported, IMPORT)
    doc = json.loads(result.data)
    assert list(doc) == list(json.loads(VERIFIED_POINTER))  # key order kept
    assert doc == {
        "Container": "azureml-blobstore-2222",
        "SasToken": None,
        "Uri": f"wasbs://azureml-blobstore-2222@sttarget02.blob.core.windows.net/{REL}",
        "Account": "sttarget02",
        "RelativePath": REL,
        "PathType": 0,
        "AmlDataStoreName": "blobstore_qa",
    }
    assert b"\n" not in result.data  # the compact one-line shape
    pointer = parsers.parse_pointer(result.data.decode(), "p")
    assert parsers.pointer_target(pointer, None) == Loc("blobstore_qa", REL.rstrip("/"))
    assert ACCOUNT.encode() not in result.data and BLOBSTORE.encode() not in result.data


def test_export_then_import_into_the_source_gives_back_the_original_bytes() -> None:
    exported = rewrite_file("Trained_model", VERIFIED_POINTER + b"\n", EXPORT).data
    back = rewrite_file(
        "Trained_model", exported, RewriteRules("import", SRC, SRC, datastore_map=same_names(SRC))
    )
    assert back.data == VERIFIED_POINTER + b"\n"


def test_pointer_sas_token_is_counted_never_recorded() -> None:
    sas = f"sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2030-01-01T00:00:00Z&spr=https&{SIG}"
    data = VERIFIED_POINTER.replace(b'"SasToken":null', f'"SasToken":"{sas}"'.encode())
    for rules in (EXPORT, RewriteRules("import", SRC, SRC, datastore_map=same_names(SRC))):
        result = rewrite_file("Trained_model", data, rules)
        assert json.loads(result.data)["SasToken"] is None
        assert result.redactions == {"sas_token": 1}
        assert not any("sig" in c.before + c.after for c in result.changes)
        assert not find_secrets(result.data.decode())


def test_pointer_import_to_azurite_and_errors() -> None:
    exported = rewrite_file("Trained_model", VERIFIED_POINTER, EXPORT).data
    azurite = Identity(
        account="amldst", endpoint="127.0.0.1:10000", containers={"c-dst": "workspaceblobstore"}
    )
    doc = json.loads(
        rewrite_file(
            "p", exported, RewriteRules("import", SRC, azurite, datastore_map=same_names(azurite))
        ).data
    )
    assert doc["Uri"] == f"http://127.0.0.1:10000/amldst/c-dst/{REL}"
    with pytest.raises(Unmappable) as info:
        rewrite_file("dcid.x/Trained_model", exported, RewriteRules("import", SRC, TGT))
    assert "dcid.x/Trained_model /AmlDataStoreName" in str(info.value)
    no_account = Identity(containers={"c": "workspaceblobstore"})
    with pytest.raises(Unmappable, match="no storage account"):
        rewrite_file(
            "p",
            exported,
            RewriteRules("import", SRC, no_account, datastore_map=same_names(no_account)),
        )


def test_pointer_without_datastore_name_gets_it_from_its_container() -> None:
    doc = json.loads(VERIFIED_POINTER)
    del doc["AmlDataStoreName"]
    result = rewrite_file("p", json.dumps(doc, indent=2).encode(), EXPORT)
    out = json.loads(result.data)
    assert out["AmlDataStoreName"] == "workspaceblobstore" and out["Container"] is None
    assert result.data.decode().startswith('{\n  "Container": null')  # indented stays indented


def test_truncated_pointer_loses_its_identity_anyway() -> None:
    data = VERIFIED_POINTER[:130]  # like the messy fixture's defect h
    assert format_of("Trained_model", data) == "pointer"
    result = rewrite_file("Trained_model", data, EXPORT)
    assert BLOBSTORE.encode() not in result.data and result.data.startswith(b'{"Container":null')
    assert result.warnings and "plain text" in result.warnings[0]


# --------------------------------------------------------------------------- MLmodel

MLMODEL = f"""\
artifact_path: model
flavors:
  python_function:
    env:
      conda: conda.yaml
    loader_module: mlflow.sklearn
    model_path: model.pkl
metadata:
  # where the training data came from
  training_data: {LONG}UI/2023/raw.csv
  source_model: runs:/{RUN}/model
  registry: azureml://registries/azureml/models/x/versions/1
mlflow_version: 2.9.2
model_uuid: 11e1c044d234592090512dbee9c43f3a
run_id: {RUN}
utc_time_created: '2023-11-29 09:04:50.000000'
"""


def test_mlmodel_rewrites_metadata_and_leaves_provenance() -> None:
    result = rewrite_file("model/MLmodel", MLMODEL.encode(), EXPORT)
    text = result.data.decode()
    assert "# where the training data came from" in text
    doc = yaml.safe_load(text)
    assert doc["metadata"]["training_data"] == f"{SHORT}UI/2023/raw.csv"
    art = "azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid."
    assert doc["metadata"]["source_model"] == f"{art}{RUN}/model"
    assert doc["run_id"] == RUN and doc["artifact_path"] == "model"
    assert {c.location for c in result.changes} == {
        "/metadata/training_data",
        "/metadata/source_model",
    }
    assert text.splitlines()[1:8] == MLMODEL.splitlines()[1:8]  # untouched lines are untouched


def test_mlmodel_without_uris_keeps_its_bytes() -> None:
    plain = MLMODEL.split("metadata:")[0].encode() + b"run_id: abc\n"
    assert rewrite_file("MLmodel", plain, EXPORT).data is plain


def test_invalid_mlmodel_is_rewritten_as_text() -> None:
    broken = f"flavors: {{sklearn: {{pickled_model: model.pkl\nsource: {WASBS}m/\n".encode()
    result = rewrite_file("MLmodel", broken, EXPORT)
    assert f"{SHORT}m/".encode() in result.data
    assert any("invalid YAML" in w for w in result.warnings)


# --------------------------------------------------------------------------- v2 YAML

PIPELINE = f"""\
$schema: https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json
# promoted from dev
type: pipeline
settings:
  default_datastore: azureml:workspaceblobstore   # the blob store
  default_compute: azureml:cpu-cluster
inputs:
  raw: {{type: uri_file, path: {WASBS}UI/raw.csv}}
  quoted: '{LONG}it''s/data.csv'
  dq: "{WASBS}a b/c.csv?sv=1&{SIG}"
  anchored: &shared {LONG}shared/
  again: *shared
  listed: [runs:/{RUN}/model, keep]
  a/b~c: {WASBS}escaped/
jobs:
  train:
    type: command
    component: azureml:train:3
    environment: azureml://registries/azureml/environments/sklearn-1.0/labels/latest
    inputs:
      data: ${{{{parent.inputs.raw}}}}
    outputs:
      model:
        type: mlflow_model
        path: azureml://datastores/workspaceblobstore/paths/${{{{name}}}}/model/
    command: >-
      python train.py --data {WASBS}data/
      --model ${{{{outputs.model}}}}
"""


def test_v2_yaml_rewrites_every_uri_and_keeps_the_layout() -> None:
    result = rewrite_file("specs/pipeline.yml", PIPELINE.encode(), EXPORT)
    text = result.data.decode()
    for kept in ("# promoted from dev", "# the blob store", "&shared", "*shared", "${{name}}"):
        assert kept in text
    doc = yaml.safe_load(text)
    assert doc["inputs"]["raw"]["path"] == f"{SHORT}UI/raw.csv"
    assert doc["inputs"]["quoted"] == f"{SHORT}it's/data.csv"
    assert doc["inputs"]["dq"] == f"{SHORT}a b/c.csv"
    assert doc["inputs"]["again"] == doc["inputs"]["anchored"] == f"{SHORT}shared/"
    assert doc["inputs"]["listed"][0].endswith(f"dcid.{RUN}/model")
    assert doc["jobs"]["train"]["inputs"]["data"] == "${{parent.inputs.raw}}"
    assert doc["jobs"]["train"]["command"].startswith(f"python train.py --data {SHORT}data/")
    assert result.redactions == {"sas_signature": 1}
    locations = {c.location for c in result.changes}
    assert locations == {
        "/inputs/raw/path",
        "/inputs/quoted",
        "/inputs/dq",
        "/inputs/anchored",
        "/inputs/listed/0",
        "/inputs/a~1b~0c",
        "/jobs/train/command",
    }
    assert ACCOUNT not in text and BLOBSTORE not in text


def test_v2_yaml_import_maps_datastore_names_and_paths() -> None:
    exported = rewrite_file("pipeline.yml", PIPELINE.encode(), EXPORT).data
    result = rewrite_file("pipeline.yml", exported, IMPORT)
    doc = yaml.safe_load(result.data)
    assert doc["settings"]["default_datastore"] == "azureml:blobstore_qa"
    assert doc["inputs"]["raw"]["path"] == "azureml://datastores/blobstore_qa/paths/UI/raw.csv"
    out = doc["jobs"]["train"]["outputs"]["model"]["path"]
    assert out == "azureml://datastores/blobstore_qa/paths/${{name}}/model/"
    assert "datastore_name:import" in {c.rule for c in result.changes}
    assert b"# the blob store" in result.data


def test_v2_yaml_unmappable_names_the_yaml_path() -> None:
    data = f"inputs:\n  x:\n    path: https://{ACCOUNT}.blob.core.windows.net/snapshots/a.zip\n"
    with pytest.raises(Unmappable) as info:
        rewrite_file("job.yml", data.encode(), EXPORT)
    assert "job.yml /inputs/x/path" in str(info.value)


def test_v2_yaml_falls_back_to_a_redump_that_still_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(v2_yaml, "_render", lambda value, style, in_flow: "{broken")
    result = rewrite_file("pipeline.yml", PIPELINE.encode(), EXPORT)
    doc = yaml.safe_load(result.data)
    assert doc["inputs"]["raw"]["path"] == f"{SHORT}UI/raw.csv"
    assert list(doc) == list(yaml.safe_load(PIPELINE))  # order kept


@pytest.mark.parametrize(
    "before",
    ["retries:\t3\n", 'title: "Modèle für Preise 😀"\n', "\ufeff", "\ufeff\ufeff"],
    ids=["tab-after-colon", "non-ascii", "bom", "two-boms"],
)
def test_v2_yaml_edits_land_in_place_whatever_comes_before(before: str) -> None:
    """Edits go at the parser's marks (character offsets). A tab after a colon, which the C
    loader accepts and the Python one refused, used to escape as a raw scanner error."""
    data = f"{before}path: {WASBS}UI/raw.csv\nnext: [a, '{WASBS}x.csv']\n".encode()
    text = rewrite_file("job.yml", data, EXPORT).data.decode("utf-8-sig").lstrip("\ufeff")
    assert text == text.replace(WASBS, "")  # every URI rewritten
    doc = yaml.load(text, Loader=SAFE_LOADER)
    assert (doc["path"], doc["next"]) == (f"{SHORT}UI/raw.csv", ["a", f"{SHORT}x.csv"])
    assert text.startswith(before.lstrip("\ufeff"))


def test_secret_in_a_yaml_comment_is_redacted() -> None:
    key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    data = f"# AccountKey={key}\nname: x\n".encode()
    result = rewrite_file("env.yaml", data, EXPORT)
    assert key.encode() not in result.data and yaml.safe_load(result.data) == {"name": "x"}


def test_unchanged_yaml_keeps_its_bytes_and_other_files_are_dispatched() -> None:
    data = b"name: x  # comment\nversion: 1\n"
    assert rewrite_file("conda.yaml", data, EXPORT).data is data
    assert format_of("a/b/MLmodel", b"x") == "mlmodel"
    assert format_of("c.YML", b"x") == "yaml"
    assert format_of("system_logs/data_capability/rslex.log.2023-11-29-09", b"") == "log"
    assert format_of("process_info.json", b'{"a": 1}') == "log"
    assert format_of("Trained_model", VERIFIED_POINTER) == "pointer"
    assert format_of("score.py", b"print()") == "other"


def test_needs_rewrite_skips_only_binary_names() -> None:
    assert not needs_rewrite("azureml/r/Results_dataset/_data.parquet", 10)
    assert not needs_rewrite("model/data/model/variables/variables.data-00000-of-00001", 10)
    assert not needs_rewrite("model/model.pkl", 10)
    for name in (
        "dcid.r/Trained_model",
        "MLmodel",
        "x.yml",
        "std_log.txt",
        "score.py",
        "Dockerfile",
    ):
        assert needs_rewrite(name, 10**9)


def test_other_text_is_scrubbed_binary_never_altered() -> None:
    script = (
        b"conn = 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=QUJDREVGR0hJSktMTU5P'\n"
    )
    result = rewrite_file("score.py", script, EXPORT)
    assert b"QUJDREVG" not in result.data and result.redactions["connection_string"] == 1
    blob = b"\x00\x01PK" + script
    binary = rewrite_file("model.bin", blob, EXPORT, bundle_path="files/ws/model.bin")
    assert binary.data is blob and binary.warnings[0].startswith("files/ws/model.bin")
    assert "connection_string" in binary.warnings[0] and "QUJDREVG" not in binary.warnings[0]


# --------------------------------------------------------------------------- text logs

V1_MOUNT = "/mnt/batch/tasks/shared/LS_root/jobs/azml-from-scratch/azureml/9685b608/mounts/"
LOG = f"""\
INFO  18:12:23  Mounting URI {LONG}azureml/358b/Untrained_model/ to {MOUNT}
2022/10/05 Mounting {BLOBSTORE} container from {ACCOUNT} account at {V1_MOUNT}workspaceblobstore
INFO GET https://{ACCOUNT}.blob.core.windows.net/azureml/ExperimentRun/dcid.r1/a.txt?sv=2019&{SIG}
copy https://other01.blob.core.windows.net/pub/x.csv and https://other01.blob.core.windows.net/y
skip https://{ACCOUNT}.blob.core.windows.net/snapshots/s.zip
"""


def test_log_rewrites_uris_keeps_provenance_and_downgrades_unmappable() -> None:
    result = rewrite_file("azureml-logs/55_x.txt", LOG.encode(), EXPORT)
    lines = result.data.decode().split("\n")
    assert (
        lines[0] == f"INFO  18:12:23  Mounting URI {SHORT}azureml/358b/Untrained_model/ to {MOUNT}"
    )
    assert lines[1] == LOG.split("\n")[1]  # prose naming the account + a mount path: provenance
    art = "azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.r1/a.txt"
    assert lines[2] == f"INFO GET {art}"
    assert lines[4] == LOG.split("\n")[4]  # unmappable in a log: left, with a warning
    assert [(c.location, c.rule) for c in result.changes] == [
        ("line 1", "azureml_datastore_long:export"),
        ("line 3", "blob_https:export"),
    ]
    assert result.redactions == {"sas_signature": 1}
    other = [w for w in result.warnings if "other01" in w]
    assert len(other) == 2 and all("line 4" in w for w in other)
    assert any("line 5" in w and "snapshots/s.zip" in w for w in result.warnings)


def test_log_warnings_repeat_once_per_message() -> None:
    line = "GET https://other01.blob.core.windows.net/pub/x.csv\n"
    result = rewrite_file("a.log", (line * 3).encode(), EXPORT)
    assert result.warnings == [
        "a.log line 1 (and 2 more): https://other01.blob.core.windows.net/pub/x.csv: storage "
        "account 'other01' is not the source workspace's account; left as is (the target must "
        "be able to reach it)"
    ]


def test_latin1_log_keeps_its_encoding_and_bytes() -> None:
    data = b"Donn\xe9es lues depuis " + f"{WASBS}UI/donn%C3%A9es.csv".encode() + b" \x93ok\x94\r\n"
    result = rewrite_file("user_logs/std_log.txt", data, EXPORT)
    expected = (
        b"Donn\xe9es lues depuis " + f"{SHORT}UI/donn%C3%A9es.csv".encode() + b" \x93ok\x94\r\n"
    )
    assert result.data == expected


def test_utf8_bom_is_kept() -> None:
    data = codecs.BOM_UTF8 + f"é {WASBS}x\n".encode()
    assert rewrite_file("a.txt", data, EXPORT).data == codecs.BOM_UTF8 + f"é {SHORT}x\n".encode()


def test_json_log_stays_valid_json() -> None:
    doc = {"uri": f"{WASBS}a.csv?sv=1&{SIG}", "conn": "AccountKey=QUJDREVGR0hJSktMTU5P", "n": 1}
    result = rewrite_file("azureml-logs/process_info.json", json.dumps(doc).encode(), EXPORT)
    assert json.loads(result.data)["uri"] == f"{SHORT}a.csv"
    assert not find_secrets(result.data.decode())
