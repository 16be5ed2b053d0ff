"""MLflow URIs: ``runs:/<run>/<path>``, ``models:/…``, ``mlflow-artifacts:…`` and Azure ML
tracking URIs (``azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/…/workspaces/<ws>``
and its ``/experiments/<e>/runs/<r>/artifacts/<p>`` form).

- ``runs:/<run>/<p>`` and a tracking artifact URI of the source workspace name a run artifact:
  export writes ``ExperimentRun/dcid.<run>/<p>`` on ``workspaceartifactstore``. Import leaves
  ``runs:/`` alone (the run is not in the target's tracking server) with a warning.
- ``models:/…`` names a registered model by name/version/alias/id: resolved by whichever
  registry the MLflow client points at, so it is neutral already.
- ``mlflow-artifacts:`` belongs to a plain MLflow server, not to workspace storage: unchanged.
- A tracking URI (no run artifact) of the source workspace is left with a warning on export
  (configuration, not data: point MLflow at the target); import re-scopes it to the target
  when the target's subscription, resource group, workspace and region are known.
"""

from __future__ import annotations

from amlport.model.uris import ParsedUri, format_uri, with_fields
from amlport.rewriters.datastore import artifact_uri
from amlport.rewriters.rules import KeepWithWarning, RewriteRules

FAMILIES: tuple[str, ...] = ("runs", "models", "mlflow_artifacts", "mlflow_tracking")


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    f = parsed.fields
    if parsed.family == "runs":
        if not rules.exporting:
            raise KeepWithWarning(f"refers to run {f['run_id']!r} of the source workspace")
        return artifact_uri(f["run_id"], f.get("artifact_path", ""))
    if parsed.family == "mlflow_tracking":
        return _tracking(parsed, rules)
    return None  # models:/ and mlflow-artifacts: are not bound to a workspace's storage


def _tracking(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    f = parsed.fields
    if not rules.source.is_workspace(f["subscription"], f["resource_group"], f["workspace"]):
        raise KeepWithWarning(f"MLflow tracking URI of workspace {f['workspace']!r}; left as is")
    if rules.exporting:
        if "artifact_path" in f:
            return artifact_uri(f["run_id"], f["artifact_path"])
        raise KeepWithWarning(
            "MLflow tracking URI of the source workspace; left as is (configure the target's)"
        )
    target = rules.target
    if "run_id" in f or target is None or not target.has_scope or target.region is None:
        raise KeepWithWarning(
            "MLflow tracking URI of the source workspace; left as is (the target's "
            "subscription, resource group, workspace and region are needed to re-scope it)"
        )
    changed = with_fields(
        parsed,
        region=target.region,
        subscription=str(target.subscription_id),
        resource_group=str(target.resource_group),
        workspace=str(target.workspace),
    )
    return format_uri(changed)
