"""The designer-autoprice identities and URI prefixes shared by the rewriter format tests."""

from __future__ import annotations

from amlport.rewriters import Identity, RewriteRules

ACCOUNT = "azmlfromscratchstr"
BLOBSTORE = "azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97"
RUN = "a79bd916-2790-4202-89ed-fbdede3ccf1d"
REL = f"azureml/{RUN}/Trained_model/"
VERIFIED_POINTER = (  # storage layout §3.5, verbatim
    f'{{"Container":"{BLOBSTORE}","SasToken":null,"Uri":"wasbs://{BLOBSTORE}@{ACCOUNT}.blob.'
    f'core.windows.net/{REL}","Account":"{ACCOUNT}","RelativePath":"{REL}","PathType":0,'
    '"AmlDataStoreName":"workspaceblobstore"}'
).encode()
SRC = Identity(
    account=ACCOUNT,
    containers={BLOBSTORE: "workspaceblobstore", "azureml": "workspaceartifactstore"},
    subscription_id="daf7d39a-3a56-4adf-84da-d07d4a095333",
    resource_group="rg-azml-from-scratch",
    workspace="azml-from-scratch",
)
TGT = Identity(
    account="sttarget02",
    containers={"azureml-blobstore-2222": "blobstore_qa", "azureml": "workspaceartifactstore"},
)
EXPORT = RewriteRules("export", SRC)
IMPORT = RewriteRules(
    "import",
    SRC,
    TGT,
    datastore_map={
        "workspaceblobstore": "blobstore_qa",
        "workspaceartifactstore": "workspaceartifactstore",
    },
)
LONG = (
    "azureml://subscriptions/daf7d39a-3a56-4adf-84da-d07d4a095333/resourcegroups/"
    "rg-azml-from-scratch/workspaces/azml-from-scratch/datastores/workspaceblobstore/paths/"
)
WASBS = f"wasbs://{BLOBSTORE}@{ACCOUNT}.blob.core.windows.net/"
SHORT = "azureml://datastores/workspaceblobstore/paths/"
MOUNT = "/mnt/azureml/cr/j/9006738d5a615db5991ba3f7dc18c02b/cap/data-capability/wd/INPUT_Dataset"
SIG = "sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
