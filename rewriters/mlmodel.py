"""MLflow ``MLmodel`` files (storage layout §5).

``run_id`` and ``artifact_path`` (with ``model_uuid``, ``model_id``, ``utc_time_created``,
``mlflow_version``, ``databricks_runtime``) are provenance: they say where the model was
logged, and the walker links ``run_id`` to ``ExperimentRun/dcid.<run_id>/``. They are left
as they are. Every other string value is walked like any YAML (``metadata`` is free-form and
may hold URIs; ``flavors`` values are paths relative to the model folder, which are not URIs
and so stay). A file with nothing to rewrite keeps its exact bytes; one with changes keeps
its layout (see ``v2_yaml``).
"""

from __future__ import annotations

from amlport.rewriters.rules import RewriteResult, RewriteRules
from amlport.rewriters.v2_yaml import rewrite_yaml_file

PROVENANCE_KEYS = frozenset(
    {
        "run_id",
        "artifact_path",
        "model_uuid",
        "model_id",
        "utc_time_created",
        "mlflow_version",
        "databricks_runtime",
    }
)


def rewrite_mlmodel(name: str, data: bytes, rules: RewriteRules) -> RewriteResult:
    return rewrite_yaml_file(name, data, rules, PROVENANCE_KEYS)
