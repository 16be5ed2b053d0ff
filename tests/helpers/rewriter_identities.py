"""Source and target identities shared by the rewriter tests (URI forms and rules)."""

from __future__ import annotations

from amlport.rewriters import Identity, RewriteRules


def same_names(target: Identity) -> dict[str, str]:
    """A map listing every datastore of ``target`` under its own name (what a map file that
    keeps the names says): a datastore is mapped only when the map lists it."""
    return {name: name for name in target.known_datastores}


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
    datastore_map={
        "workspaceblobstore": "blobstore_qa",
        "training_data": "training_qa",
        "workspaceartifactstore": "workspaceartifactstore",
    },
    asset_renames={"credit-data": "credit-data-qa"},
)
