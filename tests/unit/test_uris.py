"""Every URI form of reference/azureml-storage-layout.md §4 (and the mount paths of §1.1/§2.2)."""

from __future__ import annotations

import dataclasses
import pickle
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from amlport.model.uri_scan import find_uris
from amlport.model.uris import (
    FAMILIES,
    BlobLocation,
    DatastorePath,
    ParsedUri,
    UriError,
    format_uri,
    parse_uri,
    quote_path,
    short_datastore_uri,
    with_fields,
)

SUB = "0a94de80-6d3b-49f2-b3e9-ec5818862801"
ARM_SUB = "d128f140-94e6-4175-87a7-954b9d27db16"
WS_GUID = "be7c6676-5f3a-4e0d-9d5b-2c1f0a7e8b41"
JOB = "plucky_collar_5x0ds0fgb3"
V1_RUN = "a57c2e43-4dcd-4188-944a-839bcba35331"
AUTOML_RUN = "AutoML_ad912b2d-6b5e-4c43-9f4c-2d3b1e0f5a77_5"
HEX32 = "f91687126d3744229274c6ecbe85b820"
HEX64 = "0b8a0c7f9c1e4d2ab3f65e7d8c9b0a1f2e3d4c5b6a79880716253443526170ff"
SIG = "sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
SAS = f"sv=2019-02-02&sr=b&{SIG}&st=2021-05-22T14%3A56%3A35Z&se=2021-05-22T23%3A06%3A35Z&sp=r"
TRACKING = (
    f"azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/{SUB}/resourceGroups/rg-ml-dev"
    "/providers/Microsoft.MachineLearningServices/workspaces/autoprice-dev"
)
V1_ROOT = (
    "/mnt/batch/tasks/shared/LS_root/jobs/dds-ml-east/azureml/"
    "fastai-custom-image_1621695915_a4bb441e"
)


@dataclass(frozen=True)
class Case:
    uri: str
    family: str
    fields: dict[str, str] = field(default_factory=dict)  # a subset of the parsed fields
    datastore_path: DatastorePath | None = None
    blob_location: BlobLocation | None = None
    run_artifact: tuple[str, str] | None = None


CATALOGUE: list[Case] = [
    # --- §4.2 storage URLs
    Case(
        "https://mlstorageacct01.blob.core.windows.net/training-data/path",
        "blob_https",
        {"scheme": "https", "account": "mlstorageacct01", "container": "training-data"},
        blob_location=BlobLocation("mlstorageacct01", "training-data", "path"),
    ),
    Case(
        "https://mslearnaml5524183211.blob.core.windows.net/azureml/ExperimentRun/dcid."
        f"f84ffbe4-1b2c-4d5e-8f90-a1b2c3d4e5f6/azureml-logs/75_job_post-tvmps_{HEX64}_d.txt?{SAS}",
        "blob_https",
        {"container": "azureml"},
        blob_location=BlobLocation(
            "mslearnaml5524183211",
            "azureml",
            "ExperimentRun/dcid.f84ffbe4-1b2c-4d5e-8f90-a1b2c3d4e5f6/azureml-logs/"
            f"75_job_post-tvmps_{HEX64}_d.txt",
        ),
    ),
    Case(
        "http://127.0.0.1:10000/devstoreaccount1/azureml-blobstore-2b053715/LocalUpload/x.csv",
        "blob_https",
        {"host": "127.0.0.1:10000", "account": "devstoreaccount1"},
        blob_location=BlobLocation(
            "devstoreaccount1",
            "azureml-blobstore-2b053715",
            "LocalUpload/x.csv",
            "blob",
            "127.0.0.1:10000",
        ),
    ),
    Case(
        "wasbs://raw-data@mlstorageacct01.blob.core.windows.net/folder/",
        "wasb",
        {
            "scheme": "wasbs",
            "container": "raw-data",
            "account": "mlstorageacct01",
            "path": "folder/",
        },
        blob_location=BlobLocation("mlstorageacct01", "raw-data", "folder/"),
    ),
    Case(
        "wasbs://models@azuremlexamples.blob.core.windows.net/model/",
        "wasb",
        {"container": "models", "account": "azuremlexamples", "endpoint": "core.windows.net"},
        blob_location=BlobLocation("azuremlexamples", "models", "model/"),
    ),
    Case(
        "wasb://models@azuremlexamples.blob.core.windows.net",
        "wasb",
        {"scheme": "wasb", "path": ""},
        blob_location=BlobLocation("azuremlexamples", "models", ""),
    ),
    Case(
        "abfss://curated@mldatalake01.dfs.core.windows.net/sales/2024/orders.csv",
        "abfs",
        {"scheme": "abfss", "container": "curated", "account": "mldatalake01"},
        blob_location=BlobLocation("mldatalake01", "curated", "sales/2024/orders.csv", "dfs"),
    ),
    Case(
        "abfss://finance-ws@onelake.dfs.fabric.microsoft.com/Sales.Lakehouse/Files/raw/q1.parquet",
        "abfs",
        {"account": "onelake", "endpoint": "fabric.microsoft.com"},
        blob_location=BlobLocation(
            "onelake",
            "finance-ws",
            "Sales.Lakehouse/Files/raw/q1.parquet",
            "dfs",
            "fabric.microsoft.com",
        ),
    ),
    Case(
        "https://mldatalake01.dfs.core.windows.net/curated/sales/orders.csv",
        "dfs_https",
        {"container": "curated", "path": "sales/orders.csv"},
        blob_location=BlobLocation("mldatalake01", "curated", "sales/orders.csv", "dfs"),
    ),
    Case(
        "https://mlstorageacct01.file.core.windows.net/azureml-filestore-2b053715/Users/ana/a.py",
        "file_https",
        {"container": "azureml-filestore-2b053715"},
        blob_location=BlobLocation(
            "mlstorageacct01", "azureml-filestore-2b053715", "Users/ana/a.py", "file"
        ),
    ),
    Case(
        "adl://mlgen1store.azuredatalakestore.net/folder1/folder2",
        "adl",
        {"account": "mlgen1store", "path": "folder1/folder2"},
    ),
    # --- azureml datastore URIs (§4.1, §4.2, §1.1)
    Case(
        "azureml://datastores/workspaceblobstore/paths/example-data/iris.csv",
        "azureml_datastore_short",
        {"datastore": "workspaceblobstore", "path": "example-data/iris.csv"},
        datastore_path=DatastorePath("workspaceblobstore", "example-data/iris.csv"),
    ),
    Case(
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/cc4d1f81626c8537b6e99dadbfeab622/data/",
        "azureml_datastore_short",
        datastore_path=DatastorePath(
            "workspaceblobstore", "LocalUpload/cc4d1f81626c8537b6e99dadbfeab622/data/"
        ),
    ),
    Case(
        "azureml://datastores/workspaceblobstore/paths/UI/2023-11-29_114659_UTC/wind_bench_1000_1028.parquet",
        "azureml_datastore_short",
        datastore_path=DatastorePath(
            "workspaceblobstore", "UI/2023-11-29_114659_UTC/wind_bench_1000_1028.parquet"
        ),
    ),
    Case(
        f"azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{JOB}/",
        "azureml_datastore_short",
        datastore_path=DatastorePath("workspaceartifactstore", f"ExperimentRun/dcid.{JOB}/"),
        run_artifact=(JOB, ""),
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourcegroups/buas-y2/workspaces/CV3/datastores/"
        "workspaceblobstore/paths/UI/2024-06-10_104533_UTC/example_image/",
        "azureml_datastore_long",
        {
            "subscription": SUB,
            "resource_group": "buas-y2",
            "rg_segment": "resourcegroups",
            "workspace": "CV3",
            "providers": "",
        },
        datastore_path=DatastorePath(
            "workspaceblobstore", "UI/2024-06-10_104533_UTC/example_image/"
        ),
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourceGroups/buas-y2/workspaces/CV3/datastores/"
        "workspaceblobstore/paths/UI/2024-06-10_104533_UTC/example_image/",
        "azureml_datastore_long",
        {"rg_segment": "resourceGroups"},
        datastore_path=DatastorePath(
            "workspaceblobstore", "UI/2024-06-10_104533_UTC/example_image/"
        ),
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourceGroups/rg-ml-dev/providers/"
        "Microsoft.MachineLearningServices/workspaces/autoprice-dev/datastores/mlops_blob/"
        "paths/azureml/ddc39112-d368-452b-88c2-c087c7063dd0/champion_model/",
        "azureml_datastore_long",
        {"providers": "providers/Microsoft.MachineLearningServices/", "datastore": "mlops_blob"},
        datastore_path=DatastorePath(
            "mlops_blob", "azureml/ddc39112-d368-452b-88c2-c087c7063dd0/champion_model/"
        ),
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourceGroups/rg-ml-dev/workspaces/mlworkspace-cli01/"
        f"datastores/workspaceartifactstore/paths/ExperimentRun/dcid.{JOB}/model",
        "azureml_datastore_long",
        datastore_path=DatastorePath("workspaceartifactstore", f"ExperimentRun/dcid.{JOB}/model"),
        run_artifact=(JOB, "model"),
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourcegroups/rg-ml-dev/workspaces/ws1/datastores/"
        f"workspaceartifactstore/paths/ExperimentRun/dcid.{JOB}/outputs/mlflow-model",
        "azureml_datastore_long",
        datastore_path=DatastorePath(
            "workspaceartifactstore", f"ExperimentRun/dcid.{JOB}/outputs/mlflow-model"
        ),
        run_artifact=(JOB, "outputs/mlflow-model"),
    ),
    Case(
        f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{JOB}/outputs/model.pkl",
        "azureml_datastore_output",
        {
            "datastore": "workspaceartifactstore",
            "path": f"ExperimentRun/dcid.{JOB}/outputs/model.pkl",
        },
        datastore_path=DatastorePath(
            "workspaceartifactstore", f"ExperimentRun/dcid.{JOB}/outputs/model.pkl"
        ),
        run_artifact=(JOB, "outputs/model.pkl"),
    ),
    Case(
        "azureml:azureml://datastores/workspaceblobstore/paths/LocalUpload/"
        "aa784b6f4b0d0d3090bcd00415290f39/data",
        "azureml_double_prefix",
        {"inner_family": "azureml_datastore_short", "datastore": "workspaceblobstore"},
        datastore_path=DatastorePath(
            "workspaceblobstore", "LocalUpload/aa784b6f4b0d0d3090bcd00415290f39/data"
        ),
    ),
    # --- job outputs
    Case(
        f"azureml://jobs/{JOB}/outputs/trained-model/paths/cifar.pt",
        "azureml_job_output",
        {"job": JOB, "output": "trained-model", "path": "cifar.pt"},
    ),
    Case(
        f"azureml://jobs/{JOB}/outputs/artifacts/paths/model/",
        "azureml_job_output",
        {"output": "artifacts", "path": "model/"},
        run_artifact=(JOB, "model/"),
    ),
    Case(
        f"azureml://jobs/{JOB}/outputs/trained-model",
        "azureml_job_output",
        {"job": JOB, "output": "trained-model", "path": ""},
    ),
    Case(
        f"azureml://jobs/{AUTOML_RUN}/outputs/artifacts/outputs/mlflow-model/",
        "azureml_job_output",
        {"output": "artifacts", "subpath": "outputs/mlflow-model/"},
        run_artifact=(AUTOML_RUN, "outputs/mlflow-model/"),
    ),
    # --- MLflow
    Case(
        f"runs:/{JOB}/model/",
        "runs",
        {"run_id": JOB, "artifact_path": "model/"},
        run_artifact=(JOB, "model/"),
    ),
    Case(f"runs:/{V1_RUN}/model", "runs", run_artifact=(V1_RUN, "model")),
    Case(f"runs:/{V1_RUN}", "runs", {"artifact_path": ""}, run_artifact=(V1_RUN, "")),
    Case("models:/credit-default/3", "models", {"name": "credit-default", "version": "3"}),
    Case("models:/credit-default/Production", "models", {"stage": "Production"}),
    Case("models:/credit-default/latest", "models", {"stage": "latest"}),
    Case("models:/credit-default@champion", "models", {"alias": "champion"}),
    Case(
        "models:/m-0badaf06aa254da9811188d6c060a176",
        "models",
        {"model_id": "m-0badaf06aa254da9811188d6c060a176"},
    ),
    Case(
        "mlflow-artifacts:/0/8f61417c580541cb84d88586a3a1a44a/artifacts/model/MLmodel",
        "mlflow_artifacts",
        {"path": "0/8f61417c580541cb84d88586a3a1a44a/artifacts/model/MLmodel"},
        run_artifact=("8f61417c580541cb84d88586a3a1a44a", "model/MLmodel"),
    ),
    Case(
        "mlflow-artifacts://mlflow.internal:5000/3/8f61417c580541cb84d88586a3a1a44a/artifacts",
        "mlflow_artifacts",
        {"host": "mlflow.internal:5000"},
        run_artifact=("8f61417c580541cb84d88586a3a1a44a", ""),
    ),
    Case(
        TRACKING,
        "mlflow_tracking",
        {"region": "eastus", "api_version": "v1.0", "workspace": "autoprice-dev"},
    ),
    Case(
        TRACKING.replace("v1.0", "v2.0"),
        "mlflow_tracking",
        {"api_version": "v2.0", "subscription": SUB, "resource_group": "rg-ml-dev"},
    ),
    Case(
        f"{TRACKING}/experiments/7d3e/runs/{JOB}/artifacts/model/MLmodel",
        "mlflow_tracking",
        {"experiment": "7d3e", "run_id": JOB, "artifact_path": "model/MLmodel"},
        run_artifact=(JOB, "model/MLmodel"),
    ),
    Case(
        f"{TRACKING}/experiments/7d3e/runs/{JOB}/artifacts",
        "mlflow_tracking",
        {"artifact_path": ""},
        run_artifact=(JOB, ""),
    ),
    # --- asset references
    Case("azureml:cifar10-data:1", "azureml_ref", {"name": "cifar10-data", "version": "1"}),
    Case(
        "azureml:AzureML-Minimal@latest",
        "azureml_ref",
        {"name": "AzureML-Minimal", "label": "latest"},
    ),
    Case("azureml:cifar10-data@latest", "azureml_ref", {"label": "latest"}),
    Case("azureml:cpu-cluster", "azureml_ref", {"name": "cpu-cluster"}),
    Case("azureml:workspaceblobstore", "azureml_ref", {"name": "workspaceblobstore"}),
    Case(
        "azureml:49fa5eab-ad35-e3eb-27bc-5568fd2dcd74:1",
        "azureml_ref",
        {"name": "49fa5eab-ad35-e3eb-27bc-5568fd2dcd74", "version": "1"},
    ),
    Case(
        f"azureml:/subscriptions/{ARM_SUB}/resourceGroups/aml-test/providers/"
        "Microsoft.MachineLearningServices/workspaces/lochen-matser-pipline/datasets/"
        "sampledata1234/versions/2",
        "azureml_arm_id",
        {
            "subscription": ARM_SUB,
            "resource_group": "aml-test",
            "workspace": "lochen-matser-pipline",
            "asset_type": "datasets",
            "name": "sampledata1234",
            "version": "2",
        },
    ),
    Case(
        f"azureml:/subscriptions/{ARM_SUB}/resourceGroups/aml-test/providers/"
        "Microsoft.MachineLearningServices/workspaces/lochen-matser-pipline/computes/cpu-cluster",
        "azureml_arm_id",
        {"asset_type": "computes", "name": "cpu-cluster"},
    ),
    Case(
        "azureml://registries/azureml/components/train_model",
        "azureml_registry",
        {"registry": "azureml", "asset_type": "components", "name": "train_model"},
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourceGroups/rg-ml-dev/workspaces/autoprice-dev/"
        "models/price-regressor/versions/7",
        "azureml_asset_id",
        {
            "workspace": "autoprice-dev",
            "asset_type": "models",
            "name": "price-regressor",
            "version": "7",
        },
    ),
    Case(
        f"azureml://locations/germanywestcentral/workspaces/{WS_GUID}/environments/pipeline_env/versions/10",
        "azureml_asset_id",
        {"location": "germanywestcentral", "workspace_id": WS_GUID, "asset_type": "environments"},
    ),
    Case(
        "azureml://models/price-regressor/versions/7", "azureml_asset_id", {"asset_type": "models"}
    ),
    Case("azureml://data/titanic/versions/2", "azureml_asset_id", {"asset_type": "data"}),
    Case(
        "azureml://registries/azureml/models/Phi-3.5-mini-instruct/versions/4",
        "azureml_registry",
        {
            "registry": "azureml",
            "asset_type": "models",
            "name": "Phi-3.5-mini-instruct",
            "version": "4",
        },
    ),
    Case(
        "azureml://registries/azureml/environments/sklearn-1.0/labels/latest",
        "azureml_registry",
        {"asset_type": "environments", "name": "sklearn-1.0", "label": "latest"},
    ),
    Case(
        f"azureml://subscriptions/{SUB}/resourceGroups/rg-ml-dev/providers/"
        "Microsoft.MachineLearningServices/workspaces/autoprice-dev",
        "azureml_workspace",
        {"workspace": "autoprice-dev"},
    ),
    # --- legacy AutoML artifact ids
    Case(
        f"aml://artifact/ExperimentRun/dcid.{AUTOML_RUN}/outputs/model.pkl",
        "aml_artifact",
        {"kind": "artifact"},
        run_artifact=(AUTOML_RUN, "outputs/model.pkl"),
    ),
    Case(
        "aml://artifactId/ExperimentRun/dcid.AutoML_9696b56c-1d2e-4f3a-8b7c-6d5e4f3a2b1c_38/confusion_matrix",
        "aml_artifact",
        {"kind": "artifactId"},
        run_artifact=("AutoML_9696b56c-1d2e-4f3a-8b7c-6d5e4f3a2b1c_38", "confusion_matrix"),
    ),
    # --- compute mount paths (§1.1, §2.2)
    Case(
        f"{V1_ROOT}/mounts/workspaceblobstore",
        "mount_v1",
        {
            "workspace": "dds-ml-east",
            "run_id": "fastai-custom-image_1621695915_a4bb441e",
            "datastore": "workspaceblobstore",
            "path": "",
        },
        datastore_path=DatastorePath("workspaceblobstore", ""),
    ),
    Case(
        "/mnt/batch/tasks/shared/LS_root/jobs/opendatasetspmworkspace/azureml/"
        "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8/mounts/workspaceblobstore/azureml/"
        "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8",
        "mount_v1",
        {"datastore": "workspaceblobstore"},
        datastore_path=DatastorePath(
            "workspaceblobstore", "azureml/8a4a9fb4-e9f5-4527-bb9f-9916c3739be8"
        ),
    ),
    Case(
        "/mnt/batch/tasks/shared/LS_root/jobs/dsvm-aml/azureml/0e6714ac-4c1b-4a8e-9d1f-7b6a5c4d3e2f/"
        "mounts/workspaceblobstore/azureml/0e6714ac-4c1b-4a8e-9d1f-7b6a5c4d3e2f/azureml-setup/"
        "context_manager_injector.py",
        "mount_v1",
        datastore_path=DatastorePath(
            "workspaceblobstore",
            "azureml/0e6714ac-4c1b-4a8e-9d1f-7b6a5c4d3e2f/azureml-setup/context_manager_injector.py",
        ),
    ),
    Case(
        "/mnt/batch/tasks/shared/LS_root/jobs/opendatasetspmworkspace/azureml/"
        "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8/wd/tmprddnqazo",
        "mount_v1",
        {"run_id": "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8", "path": "tmprddnqazo"},
    ),
    Case(
        "/mnt/batch/tasks/shared/LS_root/jobs/ray/azureml/2ffe9e45-bd87-40a0-a2cb-a9ab88a4ee9a/wd",
        "mount_v1",
        {"workspace": "ray", "path": ""},
    ),
    Case(
        f"/mnt/azureml/cr/j/{HEX32}/cap/data-capability/wd/INPUT_raw_data",
        "mount_v2",
        {"root": "/mnt", "job_hex": HEX32, "port": "raw_data", "is_input": "true"},
    ),
    Case(
        f"/mnt/azureml/cr/j/{HEX32}/cap/data-capability/wd/model_output/model.pkl",
        "mount_v2",
        {"port": "model_output", "is_input": "false", "path": "model.pkl"},
    ),
    Case(
        f"/scratch/azureml/cr/j/{HEX32}/cap/data-capability/wd/INPUT_phaseb_champion/MLmodel",
        "mount_v2",
        {"root": "/scratch", "port": "phaseb_champion", "is_input": "true", "path": "MLmodel"},
    ),
]


def _first(family: str, contains: str = "") -> str:
    return next(c.uri for c in CATALOGUE if c.family == family and contains in c.uri)


def _without_query(p: ParsedUri) -> ParsedUri:
    return dataclasses.replace(p, query=None)


@pytest.mark.parametrize("case", CATALOGUE, ids=lambda c: f"{c.family}:{c.uri[:60]}")
def test_catalogue(case: Case) -> None:
    p = parse_uri(case.uri)
    assert p.family == case.family
    assert p.raw == case.uri
    assert {k: p.fields[k] for k in case.fields} == case.fields
    assert p.datastore_path == case.datastore_path
    assert p.blob_location == case.blob_location
    assert p.run_artifact == case.run_artifact
    text = format_uri(p)
    assert text == case.uri.split("?", 1)[0]  # lossless for every catalogue form
    assert parse_uri(text) == _without_query(p)
    assert parse_uri(format_uri(p, keep_query=True)) == p


@pytest.mark.parametrize(
    ("uri", "canonical"),
    [
        ("wasbs://c1@acct01.blob.core.windows.net/", "wasbs://c1@acct01.blob.core.windows.net"),
        ("https://acct01.blob.core.windows.net/c1/", "https://acct01.blob.core.windows.net/c1"),
        (f"azureml://jobs/{JOB}/outputs/out/paths/", f"azureml://jobs/{JOB}/outputs/out"),
        (f"runs:/{JOB}/", f"runs:/{JOB}"),
        (
            f"{TRACKING}/experiments/e/runs/r/artifacts/",
            f"{TRACKING}/experiments/e/runs/r/artifacts",
        ),
        (f"{V1_ROOT}/mounts/workspaceblobstore/", f"{V1_ROOT}/mounts/workspaceblobstore"),
        (
            f"/mnt/azureml/cr/j/{HEX32}/cap/data-capability/wd/INPUT_x/",
            f"/mnt/azureml/cr/j/{HEX32}/cap/data-capability/wd/INPUT_x",
        ),
    ],
)
def test_an_empty_path_formats_as_the_root_form(uri: str, canonical: str) -> None:
    """The only inputs format_uri does not give back verbatim: a root with a trailing '/'."""
    p = parse_uri(uri)
    assert format_uri(p) == canonical
    assert parse_uri(canonical) == p


SPEC_FAMILIES = {
    "azureml_datastore_short",
    "azureml_datastore_long",
    "azureml_datastore_output",
    "azureml_job_output",
    "azureml_registry",
    "azureml_asset_id",
    "azureml_arm_id",
    "azureml_ref",
    "azureml_double_prefix",
    "mlflow_tracking",
    "wasb",
    "blob_https",
    "abfs",
    "dfs_https",
    "file_https",
    "adl",
    "runs",
    "models",
    "mlflow_artifacts",
    "aml_artifact",
    "mount_v1",
    "mount_v2",
}


def test_family_names_are_the_agreed_ones_plus_workspace_scope() -> None:
    assert set(FAMILIES) == SPEC_FAMILIES | {"azureml_workspace"}


def test_catalogue_covers_every_family() -> None:
    covered = {c.family for c in CATALOGUE}
    assert covered == set(FAMILIES)


# --------------------------------------------------------------------------- sovereign clouds

SUFFIXES = [
    "core.windows.net",
    "core.chinacloudapi.cn",
    "core.usgovcloudapi.net",
    "core.cloudapi.de",
]


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize(
    ("template", "family", "service"),
    [
        ("https://acct01.blob.{s}/azureml/ExperimentRun/dcid.r1/x.txt", "blob_https", "blob"),
        ("wasbs://azureml@acct01.blob.{s}/ExperimentRun/dcid.r1/x.txt", "wasb", "blob"),
        ("abfss://azureml@acct01.dfs.{s}/ExperimentRun/dcid.r1/x.txt", "abfs", "dfs"),
        ("https://acct01.dfs.{s}/azureml/ExperimentRun/dcid.r1/x.txt", "dfs_https", "dfs"),
        ("https://acct01.file.{s}/azureml/ExperimentRun/dcid.r1/x.txt", "file_https", "file"),
    ],
)
def test_sovereign_storage_hosts(suffix: str, template: str, family: str, service: str) -> None:
    p = parse_uri(template.format(s=suffix))
    assert p.family == family
    assert p.blob_location == BlobLocation(
        "acct01", "azureml", "ExperimentRun/dcid.r1/x.txt", service, suffix
    )
    assert format_uri(p) == template.format(s=suffix)


def test_hosts_are_case_insensitive_in_the_neutral_key() -> None:
    p = parse_uri("HTTPS://Acct01.blob.Core.Windows.Net/c/Path/X.csv")
    assert p.blob_location == BlobLocation("acct01", "c", "Path/X.csv")
    assert format_uri(p) == "HTTPS://Acct01.blob.Core.Windows.Net/c/Path/X.csv"


@pytest.mark.parametrize("host", ["chinaeast2.api.ml.azure.cn", "usgovarizona.api.ml.azure.us"])
def test_sovereign_tracking_hosts(host: str) -> None:
    uri = TRACKING.replace("eastus.api.azureml.ms", host)
    p = parse_uri(uri)
    assert p.family == "mlflow_tracking"
    assert p.fields["region"] == host.split(".")[0]
    assert format_uri(p) == uri


def test_wasbs_https_and_abfss_share_the_account_container_path_key() -> None:
    keys = {
        (loc.account, loc.container, loc.path)
        for uri in [
            "wasbs://data@acct01.blob.core.windows.net/a/b%20c.csv",
            "https://acct01.blob.core.windows.net/data/a/b%20c.csv",
            "abfss://data@acct01.dfs.core.windows.net/a/b c.csv",
        ]
        if (loc := parse_uri(uri).blob_location) is not None
    }
    assert keys == {("acct01", "data", "a/b c.csv")}


# --------------------------------------------------------------------------- query strings (SAS)

SAS_URL = f"https://acct01.blob.core.windows.net/azureml/ExperimentRun/dcid.r1/log.txt?{SAS}"


def test_query_is_split_off_and_never_formatted_by_default() -> None:
    p = parse_uri(SAS_URL)
    assert p.query == SAS
    assert "sig=" not in format_uri(p)
    assert "sig=" not in repr(p)
    assert "sig=" not in str(p.blob_location)
    assert format_uri(p, keep_query=True) == SAS_URL


def test_parsed_uris_differing_only_in_raw_are_equal() -> None:
    a = parse_uri("azureml://datastores/workspaceblobstore/paths/a.csv")
    b = parse_uri("  azureml://datastores/workspaceblobstore/paths/a.csv\n")
    assert a == b
    assert hash(a) == hash(b)
    assert a.raw != b.raw


@pytest.mark.parametrize(
    "junk",
    [
        f"https://login.example.com/x?{SAS}",
        f"s3://bucket/key?{SAS}",
        f"wasbs://c@acct.blob.example.com/x?{SAS}",
    ],
)
def test_uri_error_never_shows_the_query(junk: str) -> None:
    with pytest.raises(UriError) as info:
        parse_uri(junk)
    message = str(info.value)
    assert "sig=" not in message
    assert "Zm9vYmFy" not in message
    assert junk.split("?")[0] in message
    assert "sig=" not in repr(info.value)


# --------------------------------------------------------------------------- errors

JUNK = [
    "",
    "   ",
    "not a uri",
    "https://learn.microsoft.com/azure/machine-learning/",
    "https://acct01.blob.core.windows.net",
    "https://acct01.blob.core.windows.net/",
    "azureml://",
    "azureml://datastores/workspaceblobstore",
    "azureml://datastores/workspaceblobstore/files/a.csv",
    "azureml:",
    "azureml:/subscriptions/x",
    "azureml:azureml:azureml://datastores/d/paths/p",
    "wasbs://container@acct.blob.example.com/x",
    "runs:/",
    "models:/",
    "s3://bucket/key",
    "/mnt/azureml/cr/j/not-hex/cap/data-capability/wd/INPUT_x",
    "/mnt/batch/tasks/shared/LS_root/jobs/ws/azureml/run/elsewhere/x",
    "/tmp/data.csv",
    "http://localhost:5000/api/2.0/mlflow/runs/get",
]


@pytest.mark.parametrize("junk", JUNK)
def test_unrecognised_text_raises_uri_error(junk: str) -> None:
    with pytest.raises(UriError) as info:
        parse_uri(junk)
    assert isinstance(info.value, ValueError)
    assert info.value.reason


def test_uri_error_pickles() -> None:
    err = UriError("https://x/y?sig=abc", "bad")
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)
    assert "sig" not in str(copy)


def test_parsed_uri_pickles_and_fields_are_read_only() -> None:
    p = parse_uri(SAS_URL)
    assert pickle.loads(pickle.dumps(p)) == p
    with pytest.raises(TypeError):
        p.fields["account"] = "other"  # type: ignore[index]


# --------------------------------------------------------------------------- with_fields


def test_with_fields_rewrites_a_datastore_keeping_the_rest() -> None:
    p = parse_uri(_first("azureml_datastore_long", "/providers/"))
    q = with_fields(p, subscription="11111111-2222-3333-4444-555555555555", workspace="ws-new")
    assert q.family == p.family
    assert q.fields["providers"] == p.fields["providers"]
    assert format_uri(q).startswith("azureml://subscriptions/11111111-2222-3333-4444-555555555555/")
    assert "/workspaces/ws-new/datastores/mlops_blob/paths/" in format_uri(q)
    assert q.datastore_path == p.datastore_path


def test_with_fields_keeps_the_query_separate() -> None:
    q = with_fields(parse_uri(SAS_URL), account="target01", endpoint="core.chinacloudapi.cn")
    assert format_uri(q) == (
        "https://target01.blob.core.chinacloudapi.cn/azureml/ExperimentRun/dcid.r1/log.txt"
    )
    assert q.query == SAS


def test_with_fields_on_double_prefix_and_mount_v2() -> None:
    p = with_fields(parse_uri(_first("azureml_double_prefix")), datastore="blob_target")
    assert format_uri(p).startswith("azureml:azureml://datastores/blob_target/paths/")
    m = parse_uri(f"/mnt/azureml/cr/j/{HEX32}/cap/data-capability/wd/out")
    assert format_uri(with_fields(m, is_input="true")).endswith("/wd/INPUT_out")


@pytest.mark.parametrize(
    ("uri", "changes"),
    [
        ("azureml://datastores/workspaceblobstore/paths/a.csv", {"datastore": "a/b"}),
        ("azureml://datastores/workspaceblobstore/paths/a.csv", {"path": "ExperimentRun/x?y"}),
        ("wasbs://c@acct01.blob.core.windows.net/a.csv", {"endpoint": "example.com"}),
        ("models:/m/3", {"stage": "Production"}),
        ("azureml:cpu-cluster", {"nonexistent": "x"}),
    ],
)
def test_with_fields_refuses_changes_the_family_cannot_express(
    uri: str, changes: dict[str, str]
) -> None:
    with pytest.raises(UriError):
        with_fields(parse_uri(uri), **changes)


def test_job_output_gains_paths_segment_when_given_a_path() -> None:
    p = parse_uri(f"azureml://jobs/{JOB}/outputs/trained-model")
    q = with_fields(p, path="x/")
    assert format_uri(q) == f"azureml://jobs/{JOB}/outputs/trained-model/paths/x/"
    assert q.fields["path"] == "x/"


# --------------------------------------------------------------------------- percent-encoding


def test_neutral_keys_are_decoded_fields_are_not() -> None:
    p = parse_uri("azureml://datastores/workspaceblobstore/paths/UI/my%20data/r%C3%A9sum%C3%A9.csv")
    assert p.fields["path"] == "UI/my%20data/r%C3%A9sum%C3%A9.csv"
    assert p.datastore_path == DatastorePath("workspaceblobstore", "UI/my data/résumé.csv")
    raw = parse_uri("azureml://datastores/workspaceblobstore/paths/UI/my data/résumé.csv")
    assert raw.datastore_path == p.datastore_path
    assert p != raw  # the written text differs, the key does not


def test_mount_paths_are_not_decoded() -> None:
    p = parse_uri(f"{V1_ROOT}/mounts/workspaceblobstore/a%20b")
    assert p.datastore_path == DatastorePath("workspaceblobstore", "a%20b")


def test_short_datastore_uri_and_quote_path() -> None:
    dp = DatastorePath("workspaceblobstore", "UI/a b?/100%/résumé.csv")
    uri = short_datastore_uri(dp)
    assert uri == "azureml://datastores/workspaceblobstore/paths/UI/a%20b%3F/100%25/résumé.csv"
    assert parse_uri(uri).datastore_path == dp
    assert quote_path("x\ny") == "x%0Ay"


def test_datastore_path_drops_leading_slashes_only() -> None:
    assert DatastorePath("d", "//a/b/") == DatastorePath("d", "a/b/")


# -------------------------------------------------------------------- find_uris on real lines


def _found(text: str) -> list[str]:
    spans = list(find_uris(text))
    for start, end, uri in spans:
        assert text[start:end] == uri
    return [uri for _, _, uri in spans]


def test_find_in_55_mounting_line() -> None:
    line = (
        "2021/05/22 15:06:35 Mounting azureml-blobstore-6e64c585-4845-4356-b1e0-a28ca62f252a "
        f"container from ddsmleast9411768689 account at {V1_ROOT}/mounts/workspaceblobstore"
    )
    assert _found(line) == [f"{V1_ROOT}/mounts/workspaceblobstore"]
    ((start, end, _),) = find_uris(line)
    assert line[start - 3 : start] == "at " and end == len(line)


def test_find_in_70_driver_log_lines() -> None:
    wd = (
        "/mnt/batch/tasks/shared/LS_root/jobs/opendatasetspmworkspace/azureml/"
        "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8/wd/tmprddnqazo"
    )
    line = (
        f"[2021-05-05T06:41:42.237729] Command=python hello.py --sample_input_data {wd} "
        "--sample_input_string hello --sample_output_data DatasetOutputConfig:sample_output"
    )
    assert _found(line) == [wd]
    cwd = (
        "/mnt/batch/tasks/shared/LS_root/jobs/opendatasetspmworkspace/azureml/"
        "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8/mounts/workspaceblobstore/azureml/"
        "8a4a9fb4-e9f5-4527-bb9f-9916c3739be8"
    )
    assert _found(f"[2021-05-05T06:41:42.240602] Command Working Directory={cwd}") == [cwd]
    current = (
        "[2021-09-15T19:45:53.724595] Current directory: /mnt/batch/tasks/shared/LS_root/jobs/"
        "quick-starts-ws-158411/azureml/hd_712b7a91-75c5-4c77-9057-c505f22ad072_4/wd/azureml/"
        "HD_712b7a91-75c5-4c77-9057-c505f22ad072_4"
    )
    (uri,) = _found(current)
    assert parse_uri(uri).fields["run_id"] == "hd_712b7a91-75c5-4c77-9057-c505f22ad072_4"


def test_find_in_data_capability_lines() -> None:
    uri = (
        "azureml://subscriptions/93044a08-7b2c-4d1e-9f3a-5c6d7e8f9a0b/resourcegroups/rg-mlops/"
        "workspaces/mlops-ws/datastores/mlops_blob/paths/azureml/"
        "ddc39112-d368-452b-88c2-c087c7063dd0/champion_model/"
    )
    warn = f"WARN  06:17:47  Failed to mount URI {uri} due to exception of type ExecutionError"
    assert _found(warn) == [uri]
    mount = f"/mnt/azureml/cr/j/{HEX32}/cap/data-capability/wd/INPUT_phaseb_champion"
    assert _found(f"INFO  06:17:46  create dir for {mount}") == [mount]


def test_find_sas_urls_in_get_details_output() -> None:
    url = (
        "https://wu2modtimesmls2858026735.blob.core.windows.net/azureml/ExperimentRun/dcid."
        f"81160342-0f1e-4d2c-8b3a-9c8d7e6f5a4b/azureml-logs/55_azureml-execution-tvmps_{HEX64}_d.txt"
        f"?{SAS}"
    )
    text = f"{{'logFiles': {{'azureml-logs/55_azureml-execution-tvmps_{HEX64}_d.txt': '{url}'}}}}"
    assert _found(text) == [url]
    assert "sig=" not in format_uri(parse_uri(url))


def test_find_in_json_yaml_and_prose() -> None:
    double = (
        "azureml:azureml://datastores/workspaceblobstore/paths/LocalUpload/"
        "aa784b6f4b0d0d3090bcd00415290f39/data"
    )
    assert _found(
        f'{{"path": "{double}", "component": "azureml:49fa5eab-ad35-e3eb-27bc-5568fd2dcd74:1"}}'
    ) == [
        double,
        "azureml:49fa5eab-ad35-e3eb-27bc-5568fd2dcd74:1",
    ]
    yaml = (
        "compute: azureml:cpu-cluster\n"
        "environment: azureml://registries/azureml/environments/sklearn-1.0/labels/latest\n"
        "  path: azureml://datastores/workspaceblobstore/paths/example-data/titanic.csv\n"
    )
    assert [parse_uri(u).family for u in _found(yaml)] == [
        "azureml_ref",
        "azureml_registry",
        "azureml_datastore_short",
    ]
    prose = (
        f"Register it (see runs:/{JOB}/model/), or use "
        "wasbs://models@azuremlexamples.blob.core.windows.net/model/. Done, "
        "[link](https://acct01.blob.core.windows.net/c/a_(1).csv)."
    )
    assert _found(prose) == [
        f"runs:/{JOB}/model/",
        "wasbs://models@azuremlexamples.blob.core.windows.net/model/",
        "https://acct01.blob.core.windows.net/c/a_(1).csv",
    ]


def test_find_skips_non_storage_urls_and_log_prefixes() -> None:
    text = (
        "INFO:azureml:Starting run; docs https://learn.microsoft.com/x?u="
        "https://acct01.blob.core.windows.net/c/p.csv azureml:INFO and azureml:"
    )
    assert _found(text) == ["https://acct01.blob.core.windows.net/c/p.csv"]


def _cpu_growth(piece: str, small: int = 2**17, large: int = 2**20) -> float:
    """How much more CPU ``find_uris`` takes on a ``large`` line of ``piece`` than on a
    ``small`` one (best of three each; CPU time of this process, so other processes on the
    machine do not count). Linear work grows by ``large / small`` (8), quadratic by its
    square (64): the tests assert the shape of the cost, not a speed."""

    def best(size: int) -> float:
        line = piece * (size // len(piece) + 1)
        runs = []
        for _ in range(3):
            t0 = time.process_time()
            for _ in find_uris(line):
                pass
            runs.append(time.process_time() - t0)
        return max(min(runs), 1e-4)

    return best(large) / best(small)


def test_find_on_a_one_megabyte_line_is_linear() -> None:
    chunk = (
        "x azureml://datastores/workspaceblobstore/paths/a/b.csv, "
        f"https://acct01.blob.core.windows.net/c/x?{SAS}. "
    )
    line = chunk * (2**20 // len(chunk) + 1)
    assert len(list(find_uris(line))) == 2 * (2**20 // len(chunk) + 1)
    assert _cpu_growth(chunk) < 24


@pytest.mark.parametrize(
    "piece",
    ["https://", "azureml:", "azureml://", "/mnt/azureml/cr/j/", "https:// ", "(", "runs:/a)", "a"],
)
def test_find_on_adversarial_megabyte_lines_is_linear(piece: str) -> None:
    assert _cpu_growth(piece) < 24


# --------------------------------------------------------------------------- properties

_SEGMENT_CHARS = st.characters(codec="utf-8", exclude_characters="/")
_SEGMENTS = st.lists(st.text(_SEGMENT_CHARS, min_size=1, max_size=12), max_size=5)
_DATASTORE = st.from_regex(r"[a-z][a-z0-9_]{0,29}", fullmatch=True)
_ACCOUNT = st.from_regex(r"[a-z0-9]{3,24}", fullmatch=True)
_CONTAINER = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True)
_ENDPOINT = st.sampled_from(SUFFIXES)
_NAME = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,20}", fullmatch=True)


@st.composite
def _paths(draw: Any) -> str:
    path = "/".join(draw(_SEGMENTS))
    return path + "/" if path and draw(st.booleans()) else path


def _round_trips(uri: str) -> ParsedUri:
    p = parse_uri(uri)
    assert format_uri(p) == uri
    assert parse_uri(format_uri(p)) == p
    return p


@given(ds=_DATASTORE, path=_paths())
def test_short_datastore_uri_round_trips(ds: str, path: str) -> None:
    dp = DatastorePath(ds, path)
    p = _round_trips(short_datastore_uri(dp))
    assert p.family == "azureml_datastore_short"
    assert p.datastore_path == dp


@given(ds=_DATASTORE, path=_paths())
def test_unencoded_datastore_paths_are_taken_literally(ds: str, path: str) -> None:
    assume("%" not in path and "?" not in path)
    uri = f"azureml://datastores/{ds}/paths/{path}"
    assume(uri == uri.strip())
    p = _round_trips(uri)
    assert p.datastore_path == DatastorePath(ds, path)


@given(ds=_DATASTORE, path=_paths())
def test_find_uris_finds_short_datastore_uris_in_prose(ds: str, path: str) -> None:
    uri = short_datastore_uri(DatastorePath(ds, path))
    assume(uri[-1] not in ".,:;!?*)]}")
    text = f"copied to {uri} (done)"
    assert list(find_uris(text)) == [(10, 10 + len(uri), uri)]


@given(ds=_DATASTORE, path=_paths(), new_ds=_DATASTORE, new_path=_paths())
def test_with_fields_moves_a_datastore_path(ds: str, path: str, new_ds: str, new_path: str) -> None:
    p = parse_uri(short_datastore_uri(DatastorePath(ds, path)))
    q = with_fields(p, datastore=new_ds, path=quote_path(new_path))
    assert q.datastore_path == DatastorePath(new_ds, new_path)
    assert parse_uri(format_uri(q)) == q


@given(
    sub=st.uuids().map(str),
    rg=_NAME,
    ws=_NAME,
    ds=_DATASTORE,
    path=_paths(),
    rg_segment=st.sampled_from(["resourcegroups", "resourceGroups"]),
    providers=st.sampled_from(["", "providers/Microsoft.MachineLearningServices/"]),
)
def test_long_datastore_uri_round_trips(
    sub: str, rg: str, ws: str, ds: str, path: str, rg_segment: str, providers: str
) -> None:
    uri = (
        f"azureml://subscriptions/{sub}/{rg_segment}/{rg}/{providers}workspaces/{ws}"
        f"/datastores/{ds}/paths/{quote_path(path)}"
    )
    p = _round_trips(uri)
    assert p.family == "azureml_datastore_long"
    assert p.datastore_path == DatastorePath(ds, path)
    assert (p.fields["rg_segment"], p.fields["providers"]) == (rg_segment, providers)


@given(
    account=_ACCOUNT,
    container=_CONTAINER,
    endpoint=_ENDPOINT,
    path=_paths(),
    encode=st.booleans(),
)
def test_storage_urls_round_trip_and_agree(
    account: str, container: str, endpoint: str, path: str, encode: bool
) -> None:
    if encode:
        written = "/".join(quote(seg, safe="") for seg in path.split("/"))
    else:
        assume("%" not in path and "?" not in path and path == path.rstrip())
        written = path
    suffix = f"/{written}" if written else ""
    wasbs = _round_trips(f"wasbs://{container}@{account}.blob.{endpoint}{suffix}")
    https = _round_trips(f"https://{account}.blob.{endpoint}/{container}{suffix}")
    expected = BlobLocation(account, container, path, "blob", endpoint)
    assert wasbs.blob_location == https.blob_location == expected


_URI_BITS = st.sampled_from(
    [
        "azureml:",
        "azureml://",
        "datastores/",
        "/paths/",
        "https://",
        "wasbs://",
        "@",
        ".blob.",
        "core.windows.net",
        "/mnt/azureml/cr/j/",
        "/mnt/batch/tasks/shared/LS_root/jobs/",
        "runs:/",
        "models:/",
        "aml://artifact/",
        "ExperimentRun/dcid.",
        "?sig=",
        "(",
        ")",
        ".",
        " ",
        '"',
        "/",
        ":",
        "%",
        "é",
    ]
)


_URI_TEXT = st.one_of(st.text(), st.lists(st.one_of(_URI_BITS, st.text(max_size=3))).map("".join))


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(_URI_TEXT)
def test_find_uris_never_raises_and_spans_parse(text: str) -> None:
    last_end = 0
    for start, end, uri in find_uris(text):
        assert last_end <= start < end <= len(text)
        assert text[start:end] == uri
        parse_uri(uri)
        last_end = end


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(_URI_TEXT)
def test_parse_uri_raises_only_uri_error(text: str) -> None:
    try:
        p = parse_uri(text)
    except UriError:
        return
    assert parse_uri(format_uri(p)) == _without_query(p)
