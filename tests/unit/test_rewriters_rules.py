"""Rewrite rules: SAS and errors, import of forms export left, Azurite, job-output resolver,
asset renames, identities; and the property that export then import with an identity map
gives back the same location."""

from __future__ import annotations

import pickle

import pytest
from helpers.rewriter_identities import EXPORT, IMPORT, SRC, TGT, same_names
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.errors import AmlportError, ExitCode
from amlport.model.uris import DatastorePath, quote_path
from amlport.model.workspace import WorkspaceDescriptor
from amlport.rewriters import Identity, RewriteRules, Unmappable, rewrite_uri
from amlport.rewriters.datastore import locate

BS = "azureml-blobstore-1111"
ARM = (
    "subscriptions/sub-src/resourceGroups/rg-src/providers/"
    "Microsoft.MachineLearningServices/workspaces/ws-src"
)
JOB = "plucky_collar_5x0ds0fgb3"


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
    # The target merely having a datastore of the same name does not map it: the rule is the
    # importer's (``model.mapping.mapped_datastore``), so a URI is never re-bound to a
    # datastore whose files the import blocks (issue 17 re-review).
    target = Identity(account="t", containers={"c": "workspaceblobstore"})
    same_name = RewriteRules("import", SRC, target)
    with pytest.raises(Unmappable, match="not mapped"):
        rewrite_uri("azureml://datastores/workspaceblobstore/paths/a.csv", same_name)
    listed = RewriteRules("import", SRC, target, datastore_map=same_names(target))
    assert rewrite_uri("azureml://datastores/workspaceblobstore/paths/a.csv", listed) is None
    # listed, but naming a datastore the target has no container for: not mapped either
    dangling = RewriteRules("import", SRC, target, datastore_map={"workspaceblobstore": "nope"})
    with pytest.raises(Unmappable, match="'nope', which the target has no container for"):
        rewrite_uri("azureml://datastores/workspaceblobstore/paths/a.csv", dangling)


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
    promoted = rewrite_uri(
        url, RewriteRules("import", azurite, target, datastore_map=same_names(target))
    )
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


def test_unknown_identity_keeps_long_uri_of_any_workspace() -> None:
    """A source identity without workspace facts cannot tell a long URI of another workspace:
    it is kept with a warning (never passed off as the source's own), refused under strict."""
    uri = "azureml://subscriptions/s/resourcegroups/r/workspaces/ws-other/datastores/workspaceblobstore/paths/p"
    ident = Identity(account="stsource01", containers={BS: "workspaceblobstore"})
    for direction in ("export", "import"):
        change = rewrite_uri(uri, RewriteRules(direction, ident, target=ident))
        assert change is not None and change.replacement == uri
        assert change.warning and "ws-other" in change.warning and "unknown" in change.warning
        with pytest.raises(Unmappable, match="identity is unknown"):
            rewrite_uri(uri, RewriteRules(direction, ident, target=ident, strict=True))
    known = Identity(
        account="stsource01", containers={BS: "workspaceblobstore"}, workspace="ws-other"
    )
    change = rewrite_uri(uri, RewriteRules("export", known))
    assert change is not None
    assert change.replacement == "azureml://datastores/workspaceblobstore/paths/p"


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
        RewriteRules("sideways", SRC)  # type: ignore[arg-type,unused-ignore]


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
    imported = rewrite_uri(
        exported.replacement, RewriteRules("import", ident, ident, datastore_map=same_names(ident))
    )
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
