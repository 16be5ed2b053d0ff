"""amlport.importers: the built-in import plugins, registered by name in ``IMPORTERS``.

Which importers an import (or a promote) runs is decided by its flags, not by the table:
``datastore`` always (the storage files), ``azureml_assets`` with ``--emit-assets`` (v2 YAML,
``--workspace`` live registration), ``mlflow`` with ``--register-mlflow``; the engine
(``importing.engine._importers``, ``asset_importers``) takes each from this table by name. The
entries are lazy (``"module:Class"``): azure-ai-ml and mlflow are imported only by a run that
uses them. There is no entry-point group for importers: a third-party importer would need a
flag of its own. ``amlport plugins`` lists them (``amlport.plugins.Registry``, design 0015).
"""

from __future__ import annotations

from amlport.plugins import Registry

IMPORTERS: Registry[type] = Registry("importer")
IMPORTERS.add_lazy("datastore", "amlport.importers.datastore:DatastoreImporter")
IMPORTERS.add_lazy("azureml_assets", "amlport.importers.azureml_assets:AzureMLAssetsImporter")
IMPORTERS.add_lazy("mlflow", "amlport.importers.mlflow_registry:MlflowRegistryImporter")
