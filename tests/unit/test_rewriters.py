"""URI rewriting: every form of the reference (§4) exported, and the export imported into a
target with other account/container/datastore names; the rules; the export -> import round trip.

docs/rewriting.md carries the same table for people; ``test_docs_table_is_what_the_code_does``
runs every row of it.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

import pytest
from amlport.rewriters import (
    FAMILY_MODULES,
    Identity,
    RewriteRules,
    Unmappable,
    UriChange,
    rewrite_uri,
)
from amlport.rewriters.datastore import locate
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.errors import AmlportError, ExitCode
from amlport.model.uris import FAMILIES, DatastorePath, parse_uri, quote_path
from amlport.model.workspace import WorkspaceDescriptor

REPO = Path(__file__).resolve().parents[2]

SRC = Identity(
    account="stsource01",
    containers={
        "azureml-blobstore-1111": "workspaceblobstore",
        "azureml": "workspaceartifactstore",
        "training-data": "training_data",
    },
    subscription_id="sub-src",
    resource_group="rg-src",
    workspace="ws-src",
    workspace_id="0b1c2d3e-0000-4000-8000-00000000aaaa",
    region="westeurope",
)
TGT = Identity(
    account="sttarget02",
    containers={
        "azureml-blobstore-2222": "blobstore_qa",
        "azureml": "workspaceartifactstore",
        "training-qa": "training_qa",
    },
    subscription_id="sub-dst",
    resource_group="rg-dst",
    workspace="ws-dst",
    region="eastus",
)
EXPORT = RewriteRules("export", SRC)
IMPORT = RewriteRules(
    "import",
    SRC,
    TGT,
    datastore_map={"workspaceblobstore": "blobstore_qa", "training_data": "training_qa"},
    asset_renames={"credit-data": "credit-data-qa"},
)

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


def test_sas_is_dropped_and_reported_even_on_urls_left_alone() -> None:
    sas = "sv=2021&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
    foreign = rewrite_uri(f"https://other01.blob.core.windows.net/c1c/x.csv?{sas}", EXPORT)
    assert foreign is not None and foreign.dropped_sas and foreign.warning
    assert foreign.replacement == "https://other01.blob.core.windows.net/c1c/x.csv"
    plain = rewrite_uri("https://other01.blob.core.windows.net/c1c/x.csv?comp=list", EXPORT)
    assert plain is not None and plain.replacement.endswith("?comp=list")  # not a secret: kept


def test_unmappable_names_the_uri_and_where_but_never_the_query() -> None:
    with pytest.raises(Unmappable) as info:
        rewrite_uri(
            "https://stsource01.blob.core.windows.net/snapshots/x.zip?sig=c2VjcmV0c2VjcmV0", EXPORT
        )
    err = info.value.at("pipeline.yml /jobs/a/path")
    assert isinstance(err, AmlportError) and err.exit_code == ExitCode.ERROR
    assert "snapshots/x.zip" in str(err) and "pipeline.yml /jobs/a/path" in str(err)
    assert "sig=" not in str(err) and "c2VjcmV0" not in str(err)
    assert "mapping" in (err.hint or "")
    again = pickle.loads(pickle.dumps(err))
    assert (again.uri, again.where, again.reason) == (err.uri, err.where, err.reason)


def test_import_without_a_datastore_mapping_is_unmappable() -> None:
    rules = RewriteRules("import", SRC, TGT)  # the target has no "workspaceblobstore"
    with pytest.raises(Unmappable, match="workspaceblobstore"):
        rewrite_uri("azureml://datastores/workspaceblobstore/paths/a.csv", rules)
    same_name = RewriteRules(
        "import", SRC, Identity(account="t", containers={"c": "workspaceblobstore"})
    )
    assert rewrite_uri("azureml://datastores/workspaceblobstore/paths/a.csv", same_name) is None


def test_import_rebinds_forms_that_skipped_export() -> None:
    """Direct promotion: source-bound forms go straight to the target (docs table 2)."""
    cases = {
        f"wasbs://{BS}@stsource01.blob.core.windows.net/data/x.csv": "wasbs://azureml-blobstore-2222@sttarget02.blob.core.windows.net/data/x.csv",
        "https://stsource01.blob.core.windows.net/training-data/x.csv": "https://sttarget02.blob.core.windows.net/training-qa/x.csv",
        "azureml://subscriptions/sub-src/resourcegroups/rg-src/workspaces/ws-src/datastores/"
        "workspaceblobstore/paths/a.csv": "azureml://subscriptions/sub-dst/resourcegroups/rg-dst/workspaces/ws-dst/datastores/"
        "blobstore_qa/paths/a.csv",
        f"azureml:/{ARM}/data/credit-data/versions/2": "azureml:credit-data-qa:2",
    }
    for before, after in cases.items():
        change = rewrite_uri(before, IMPORT)
        assert change is not None and change.replacement == after
    for bound in (f"runs:/{JOB}/model", f"azureml://jobs/{JOB}/outputs/artifacts/paths/m"):
        change = rewrite_uri(bound, IMPORT)
        assert change is not None and change.warning and change.replacement == bound
    unscoped = RewriteRules(
        "import",
        SRC,
        Identity(account="t", containers={"c": "blobstore_qa"}),
        datastore_map={"workspaceblobstore": "blobstore_qa"},
    )
    long = next(iter(k for k in cases if "/datastores/" in k and k.startswith("azureml://sub")))
    change = rewrite_uri(long, unscoped)
    assert (
        change is not None and change.replacement == "azureml://datastores/blobstore_qa/paths/a.csv"
    )


def test_azurite_path_style_urls() -> None:
    azurite = Identity(
        account="amlsrc",
        endpoint="127.0.0.1:10000",
        containers={"azureml-blobstore-1111": "workspaceblobstore"},
    )
    target = Identity(
        account="amldst", endpoint="127.0.0.1:10000", containers={"blobs-dst": "workspaceblobstore"}
    )
    url = "http://127.0.0.1:10000/amlsrc/azureml-blobstore-1111/LocalUpload/x.csv"
    exported = rewrite_uri(url, RewriteRules("export", azurite))
    assert (
        exported is not None
        and exported.replacement
        == "azureml://datastores/workspaceblobstore/paths/LocalUpload/x.csv"
    )
    promoted = rewrite_uri(url, RewriteRules("import", azurite, target))
    assert (
        promoted is not None
        and promoted.replacement == "http://127.0.0.1:10000/amldst/blobs-dst/LocalUpload/x.csv"
    )
    other_port = rewrite_uri(url.replace(":10000", ":10005"), RewriteRules("export", azurite))
    assert other_port is not None and other_port.warning  # another emulator is another account


def test_named_job_outputs_go_through_the_resolver() -> None:
    folders = {
        (JOB, "trained-model"): DatastorePath("workspaceblobstore", f"azureml/{JOB}/trained-model/")
    }
    rules = RewriteRules("export", SRC, job_output=lambda job, out: folders.get((job, out)))
    change = rewrite_uri(f"azureml://jobs/{JOB}/outputs/trained-model/paths/cifar.pt", rules)
    assert change is not None
    assert (
        change.replacement
        == f"azureml://datastores/workspaceblobstore/paths/azureml/{JOB}/trained-model/cifar.pt"
    )
    whole = rewrite_uri(f"azureml://jobs/{JOB}/outputs/trained-model", rules)
    assert whole is not None and whole.replacement.endswith(f"/{JOB}/trained-model/")
    unknown = rewrite_uri(f"azureml://jobs/{JOB}/outputs/other/paths/x", rules)
    assert unknown is not None and unknown.warning and "resolver" in unknown.warning


def test_asset_renames_exact_version_wins_and_may_change_the_version() -> None:
    rules = RewriteRules(
        "import",
        SRC,
        TGT,
        asset_renames={"env": "env-qa", "env:3": "env-pinned:7", "env@latest": "env-qa@stable"},
    )
    expect = {
        "azureml:env:3": "azureml:env-pinned:7",
        "azureml:env:4": "azureml:env-qa:4",
        "azureml:env@latest": "azureml:env-qa@stable",
        "azureml:env": "azureml:env-qa",
    }
    for before, after in expect.items():
        change = rewrite_uri(before, rules)
        assert change is not None and change.replacement == after


def test_unknown_identity_scope_matches_any_workspace() -> None:
    """A source identity without workspace facts cannot tell a long URI of another workspace."""
    bare = RewriteRules(
        "export", Identity(account="stsource01", containers={BS: "workspaceblobstore"})
    )
    change = rewrite_uri(
        "azureml://subscriptions/s/resourcegroups/r/workspaces/w/datastores/workspaceblobstore/paths/p",
        bare,
    )
    assert (
        change is not None
        and change.replacement == "azureml://datastores/workspaceblobstore/paths/p"
    )


def test_identity_from_descriptor() -> None:
    desc = WorkspaceDescriptor(
        account="acct",
        blobstore_container="azureml-blobstore-9",
        subscription_id="s",
        resource_group="r",
        workspace="w",
        datastores={"extra": "azureml-blobstore-9", "lake": "lake-fs"},
    )
    ident = Identity.from_descriptor(desc)
    assert ident.datastore_of("azureml-blobstore-9") == "workspaceblobstore"  # built-in wins
    assert ident.datastore_of("lake-fs") == "lake"
    assert ident.container_of("extra") == "azureml-blobstore-9"
    assert ident.known_datastores == {
        "workspaceblobstore",
        "workspaceartifactstore",
        "extra",
        "lake",
    }
    assert ident.has_scope and ident.owns("ACCT", "core.windows.net")
    assert not ident.owns("acct", "core.chinacloudapi.cn")


def test_rules_reject_a_bad_direction() -> None:
    with pytest.raises(ValueError, match="direction"):
        RewriteRules("sideways", SRC)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- round trip

_ACCOUNT = st.from_regex(r"[a-z][a-z0-9]{2,23}", fullmatch=True)
_CONTAINER = st.from_regex(r"[a-z0-9][a-z0-9-]{1,20}[a-z0-9]", fullmatch=True).filter(
    lambda c: "--" not in c
)
_DATASTORE = st.from_regex(r"[a-z_][a-z0-9_]{2,20}", fullmatch=True)
_SEGMENT = st.text(
    alphabet=st.sampled_from("abcXYZ019-_.~ é%+()'"), min_size=1, max_size=12
).filter(lambda s: s not in (".", ".."))
_PATH = st.lists(_SEGMENT, min_size=0, max_size=4).map("/".join)
_FORMS = ("wasbs", "wasb", "https", "abfss", "dfs", "azurite", "long")


@st.composite
def _bound_uri(draw: st.DrawFn) -> tuple[Identity, str, str, str]:
    """(source identity, a URI bound to it, its container, its decoded path)."""
    form = draw(st.sampled_from(_FORMS))
    account, container, datastore = draw(_ACCOUNT), draw(_CONTAINER), draw(_DATASTORE)
    path = draw(_PATH)
    endpoint = (
        "127.0.0.1:10000"
        if form == "azurite"
        else draw(
            st.sampled_from(["core.windows.net", "core.chinacloudapi.cn", "core.usgovcloudapi.net"])
        )
    )
    ident = Identity(
        account=account,
        endpoint=endpoint,
        containers={container: datastore},
        subscription_id="s1",
        resource_group="r1",
        workspace="w1",
    )
    raw = quote_path(path)
    uri = {
        "wasbs": f"wasbs://{container}@{account}.blob.{endpoint}/{raw}",
        "wasb": f"wasb://{container}@{account}.blob.{endpoint}/{raw}",
        "https": f"https://{account}.blob.{endpoint}/{container}/{raw}",
        "abfss": f"abfss://{container}@{account}.dfs.{endpoint}/{raw}",
        "dfs": f"https://{account}.dfs.{endpoint}/{container}/{raw}",
        "azurite": f"http://{endpoint}/{account}/{container}/{raw}",
        "long": f"azureml://subscriptions/s1/resourcegroups/r1/workspaces/w1/datastores/{datastore}/paths/{raw}",
    }[form]
    return ident, uri, container, path


@settings(max_examples=300, deadline=None)
@given(_bound_uri())
def test_export_then_import_with_an_identity_map_is_the_same_location(
    case: tuple[Identity, str, str, str],
) -> None:
    ident, uri, container, path = case
    exported = rewrite_uri(uri, RewriteRules("export", ident))
    assert exported is not None and exported.after.startswith("azureml://datastores/")
    imported = rewrite_uri(exported.replacement, RewriteRules("import", ident, ident))
    final = exported.replacement if imported is None else imported.replacement
    where = locate(final, ident)
    assert where is not None
    assert (where.account, where.container, where.path.rstrip("/")) == (
        ident.account,
        container,
        path.rstrip("/"),
    )
    original = locate(uri, ident)
    assert original is not None and original.path == where.path


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
