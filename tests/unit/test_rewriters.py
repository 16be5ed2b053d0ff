"""URI rewriting: every form of the reference (§4) exported, and the export imported into a
target with other account/container/datastore names; the family table; purity.

docs/rewriting.md carries the same table for people; ``test_docs_table_is_what_the_code_does``
runs every row of it.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.rewriter_identities import EXPORT, IMPORT

from amlport.model.uris import FAMILIES, parse_uri
from amlport.rewriters import (
    FAMILY_MODULES,
    RewriteRules,
    Unmappable,
    UriChange,
    rewrite_uri,
)

REPO = Path(__file__).resolve().parents[2]


SAME, WARN, UNMAPPABLE = "<unchanged>", "<unchanged, warning>", "<Unmappable>"
BS = "azureml-blobstore-1111"
ARM = (
    "subscriptions/sub-src/resourceGroups/rg-src/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-src"
)
TRACKING = f"azureml://westeurope.api.azureml.ms/mlflow/v1.0/{ARM}"
ART = "azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid."
JOB = "plucky_collar_5x0ds0fgb3"
HEX = "f91687126d3744229274c6ecbe85b820"
UPLOAD = "LocalUpload/cc4d1f81626c8537b6e99dadbfeab622/data/"

# (before, export, import of the export result)
TABLE: list[tuple[str, str, str]] = [
    # storage URLs
    (
        f"wasbs://{BS}@stsource01.blob.core.windows.net/azureml/3f1d/Trained_model/",
        "azureml://datastores/workspaceblobstore/paths/azureml/3f1d/Trained_model/",
        "azureml://datastores/blobstore_qa/paths/azureml/3f1d/Trained_model/",
    ),
    (
        f"wasb://{BS}@stsource01.blob.core.windows.net",
        "azureml://datastores/workspaceblobstore/paths/",
        "azureml://datastores/blobstore_qa/paths/",
    ),
    ("wasbs://models@azuremlexamples.blob.core.windows.net/model/", WARN, WARN),
    (f"wasbs://{BS}@stsource01.blob.core.chinacloudapi.cn/x.csv", WARN, WARN),
    (
        f"WASBS://{BS}@StSource01.Blob.Core.Windows.Net/x.csv",  # scheme and host are caseless
        "azureml://datastores/workspaceblobstore/paths/x.csv",
        "azureml://datastores/blobstore_qa/paths/x.csv",
    ),
    (
        "https://stsource01.blob.core.windows.net/azureml/ExperimentRun/dcid.r1/azureml-logs/"
        "70_driver_log.txt?sv=2019-07-07&sr=b&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D",
        f"{ART}r1/azureml-logs/70_driver_log.txt",
        SAME,
    ),
    ("https://azuremlexamples.blob.core.windows.net/datasets/iris.csv", WARN, WARN),
    ("https://stsource01.blob.core.windows.net/snapshots/x.zip", UNMAPPABLE, ""),
    (
        "abfss://training-data@stsource01.dfs.core.windows.net/sales/2024/orders.csv",
        "azureml://datastores/training_data/paths/sales/2024/orders.csv",
        "azureml://datastores/training_qa/paths/sales/2024/orders.csv",
    ),
    (
        "https://stsource01.dfs.core.windows.net/training-data/sales/orders.csv",
        "azureml://datastores/training_data/paths/sales/orders.csv",
        "azureml://datastores/training_qa/paths/sales/orders.csv",
    ),
    (
        "abfss://finance@onelake.dfs.fabric.microsoft.com/Sales.Lakehouse/Files/q1.parquet",
        WARN,
        WARN,
    ),
    ("https://stsource01.file.core.windows.net/azureml-filestore-1111/Users/a.py", UNMAPPABLE, ""),
    ("adl://mlgen1store.azuredatalakestore.net/folder1/folder2", WARN, WARN),
    # datastore URIs
    (
        f"azureml://datastores/workspaceblobstore/paths/{UPLOAD}",
        SAME,
        f"azureml://datastores/blobstore_qa/paths/{UPLOAD}",
    ),
    (f"{ART}r1/model/", SAME, SAME),
    (
        "azureml://datastores/workspaceblobstore/paths/${{name}}/${{output_name}}/",
        SAME,
        "azureml://datastores/blobstore_qa/paths/${{name}}/${{output_name}}/",
    ),
    ("azureml://datastores/${{default_datastore}}/paths/${{name}}/out/", SAME, SAME),
    ("azureml://datastores/mlops_blob/paths/azureml/ddc3/champion_model/", WARN, UNMAPPABLE),
    (
        "azureml://subscriptions/sub-src/resourcegroups/rg-src/workspaces/ws-src/datastores/"
        "workspaceblobstore/paths/UI/2024-06-10_104533_UTC/example_image/",
        "azureml://datastores/workspaceblobstore/paths/UI/2024-06-10_104533_UTC/example_image/",
        "azureml://datastores/blobstore_qa/paths/UI/2024-06-10_104533_UTC/example_image/",
    ),
    (
        f"azureml://{ARM}/datastores/training_data/paths/sales/",
        "azureml://datastores/training_data/paths/sales/",
        "azureml://datastores/training_qa/paths/sales/",
    ),
    (
        "azureml://subscriptions/sub-x/resourceGroups/rg-x/workspaces/ws-other/datastores/"
        "workspaceblobstore/paths/a.csv",
        WARN,
        WARN,
    ),
    (
        "azureml://subscriptions/sub-src/resourceGroups/rg-src/workspaces/ws-src/datastores/"
        "mlops_blob/paths/a.csv",
        UNMAPPABLE,
        "",
    ),
    (f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{JOB}/model.pkl", SAME, SAME),
    (
        "azureml:azureml://datastores/workspaceblobstore/paths/LocalUpload/aa78/data",
        "azureml://datastores/workspaceblobstore/paths/LocalUpload/aa78/data",
        "azureml://datastores/blobstore_qa/paths/LocalUpload/aa78/data",
    ),
    (
        "azureml:azureml://subscriptions/sub-src/resourceGroups/rg-src/workspaces/ws-src/"
        "datastores/workspaceblobstore/paths/data/",
        "azureml://datastores/workspaceblobstore/paths/data/",
        "azureml://datastores/blobstore_qa/paths/data/",
    ),
    # job outputs
    (f"azureml://jobs/{JOB}/outputs/artifacts/paths/model/", f"{ART}{JOB}/model/", SAME),
    (
        "azureml://jobs/AutoML_ad91_5/outputs/artifacts/outputs/mlflow-model/",
        f"{ART}AutoML_ad91_5/outputs/mlflow-model/",
        SAME,
    ),
    (f"azureml://jobs/{JOB}/outputs/trained-model/paths/cifar.pt", WARN, WARN),
    (f"azureml://jobs/{JOB}/outputs/trained-model", WARN, WARN),
    # MLflow
    (f"runs:/{JOB}/model/", f"{ART}{JOB}/model/", SAME),
    (
        "runs:/a57c2e43-4dcd-4188-944a-839bcba35331",
        f"{ART}a57c2e43-4dcd-4188-944a-839bcba35331/",
        SAME,
    ),
    ("models:/credit-default/3", SAME, SAME),
    ("models:/credit-default/Production", SAME, SAME),
    ("models:/credit-default@champion", SAME, SAME),
    ("models:/m-0badaf06aa254da9811188d6c060a176", SAME, SAME),
    ("mlflow-artifacts:/0/8f61417c580541cb84d88586a3a1a44a/artifacts/model/MLmodel", SAME, SAME),
    (
        TRACKING,
        WARN,
        "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/sub-dst/resourceGroups/"
        "rg-dst/providers/Microsoft.MachineLearningServices/workspaces/ws-dst",
    ),
    (
        f"{TRACKING}/experiments/7d3e/runs/{JOB}/artifacts/model/MLmodel",
        f"{ART}{JOB}/model/MLmodel",
        SAME,
    ),
    (TRACKING.replace("ws-src", "ws-other"), WARN, WARN),
    # asset references
    ("azureml:credit-data:1", SAME, "azureml:credit-data-qa:1"),
    ("azureml:credit-data@latest", SAME, "azureml:credit-data-qa@latest"),
    ("azureml:cpu-cluster", SAME, SAME),
    ("azureml:49fa5eab-ad35-e3eb-27bc-5568fd2dcd74:1", SAME, SAME),
    (
        f"azureml:/{ARM}/data/credit-data/versions/2",
        "azureml:credit-data:2",
        "azureml:credit-data-qa:2",
    ),
    (f"azureml:/{ARM}/computes/cpu-cluster", "azureml:cpu-cluster", SAME),
    (
        "azureml:/subscriptions/sub-x/resourceGroups/rg-x/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws-other/data/d1/versions/2",
        WARN,
        WARN,
    ),
    (
        "azureml://subscriptions/sub-src/resourceGroups/rg-src/workspaces/ws-src/models/"
        "price-regressor/versions/7",
        "azureml:price-regressor:7",
        SAME,
    ),
    (
        "azureml://locations/westeurope/workspaces/0b1c2d3e-0000-4000-8000-00000000aaaa/"
        "environments/pipeline_env/versions/10",
        "azureml:pipeline_env:10",
        SAME,
    ),
    (
        "azureml://locations/germanywestcentral/workspaces/be7c6676-5f3a-4e0d-9d5b-2c1f0a7e8b41/"
        "environments/pipeline_env/versions/10",
        WARN,
        WARN,
    ),
    ("azureml://models/price-regressor/versions/7", SAME, SAME),
    ("azureml://data/credit-data/versions/2", SAME, "azureml://data/credit-data-qa/versions/2"),
    ("azureml://registries/azureml/models/Phi-3.5-mini-instruct/versions/4", SAME, SAME),
    ("azureml://registries/azureml/environments/sklearn-1.0/labels/latest", SAME, SAME),
    (
        f"azureml://{ARM}",
        WARN,
        "azureml://subscriptions/sub-dst/resourceGroups/rg-dst/providers/"
        "Microsoft.MachineLearningServices/workspaces/ws-dst",
    ),
    # legacy AutoML artifacts
    (
        "aml://artifact/ExperimentRun/dcid.AutoML_ad91_5/outputs/model.pkl",
        f"{ART}AutoML_ad91_5/outputs/model.pkl",
        SAME,
    ),
    (
        "aml://artifactId/ExperimentRun/dcid.AutoML_9696_38/confusion_matrix",
        f"{ART}AutoML_9696_38/confusion_matrix",
        SAME,
    ),
    # compute mount paths: provenance
    (
        "/mnt/batch/tasks/shared/LS_root/jobs/ws-src/azureml/9685b608/mounts/workspaceblobstore/"
        "azureml/9685b608/Results_dataset",
        SAME,
        SAME,
    ),
    (f"/mnt/azureml/cr/j/{HEX}/cap/data-capability/wd/INPUT_raw_data", SAME, SAME),
    (f"/scratch/azureml/cr/j/{HEX}/cap/data-capability/wd/model_output/MLmodel", SAME, SAME),
    # claims to be a storage URL, but is not one
    ("wasbs://account-name.blob.core.windows.net/container-name/example-data/", WARN, WARN),
]


def _outcome(text: str, rules: RewriteRules) -> tuple[str, UriChange | None]:
    """(expectation code or replacement, the change)."""
    try:
        change = rewrite_uri(text, rules)
    except Unmappable:
        return UNMAPPABLE, None
    if change is None:
        return SAME, None
    if change.after != change.before:
        return change.replacement, change
    return (WARN if change.warning else SAME), change


def _check(text: str, rules: RewriteRules, expected: str) -> str | None:
    got, change = _outcome(text, rules)
    assert got == expected, f"{rules.direction} of {text}"
    if change is not None:
        assert "?" not in change.before and "?" not in change.after  # never a query string
    if got == UNMAPPABLE:
        return None
    return text if change is None else change.replacement  # what ends up in the file


@pytest.mark.parametrize(("before", "exported", "imported"), TABLE, ids=lambda v: v[:70])
def test_every_form_exports_and_imports(before: str, exported: str, imported: str) -> None:
    out = _check(before, EXPORT, exported)
    if out is not None:
        _check(out, IMPORT, imported)


def test_table_covers_every_family() -> None:
    families = {
        parse_uri(before).family
        for before, _, _ in TABLE
        if not before.startswith("wasbs://account")
    }
    assert families == set(FAMILIES)


def test_every_family_has_a_module_that_claims_it() -> None:
    assert set(FAMILY_MODULES) == set(FAMILIES)
    for family, module in FAMILY_MODULES.items():
        assert family in module.FAMILIES
    claimed = [f for m in set(FAMILY_MODULES.values()) for f in m.FAMILIES]
    assert sorted(claimed) == sorted(FAMILIES)


# --------------------------------------------------------------------------- the docs table


def _doc_rows() -> list[tuple[str, str, str]]:
    text = (REPO / "docs" / "rewriting.md").read_text(encoding="utf-8")
    section = text.split("## Every form, before and after", 1)[1].split("\n#", 1)[0]
    rows = []
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if len(cells) == 4 and cells[1].startswith("`"):
            rows.append((cells[1].strip("`"), cells[2], cells[3]))
    return rows


def _doc_expect(cell: str) -> str:
    if cell.startswith("`"):
        return cell.split("`")[1]
    if "Unmappable" in cell:
        return UNMAPPABLE
    return WARN if "warning" in cell else SAME


def test_docs_table_is_what_the_code_does() -> None:
    rows = _doc_rows()
    assert len(rows) >= 50
    assert {parse_uri(r[0]).family for r in rows if "account-name" not in r[0]} == set(FAMILIES)
    for before, export_cell, import_cell in rows:
        out = _check(before, EXPORT, _doc_expect(export_cell))
        if out is not None:
            _check(out, IMPORT, _doc_expect(import_cell))
        assert ("SAS dropped" in export_cell) == (re.search(r"[?&]sig=", before) is not None)


# --------------------------------------------------------------------------- purity


def test_importing_the_rewriters_loads_no_io_library() -> None:
    code = (
        "import sys, amlport.rewriters, amlport.rewriters.files\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('azure', 'fsspec', 'rich', 'typer', 'requests'))\n"
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
