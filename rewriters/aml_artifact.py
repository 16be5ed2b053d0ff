"""Legacy run-history artifact URIs: ``aml://artifact/ExperimentRun/dcid.<run>/<path>`` and
``aml://artifactId/ExperimentRun/dcid.<run>/<name>`` (AutoML run properties and metrics).

An artifact id is ``<origin>/<container>/<path>`` = ``ExperimentRun/dcid.<run>/<path>``, the
blob path in the artifact store, so both kinds export to the neutral
``azureml://datastores/workspaceartifactstore/paths/ExperimentRun/dcid.<run>/<path>``
([I] for ``artifactId``: the id/path identity is azureml-core's convention). Anything else
after ``aml://artifact/`` is left with a warning. Import leaves them alone (warning).
"""

from __future__ import annotations

from amlport.model.uris import ParsedUri
from amlport.rewriters.datastore import artifact_uri
from amlport.rewriters.rules import KeepWithWarning, RewriteRules

FAMILIES: tuple[str, ...] = ("aml_artifact",)

_PREFIX = "ExperimentRun/dcid."


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    if not rules.exporting:
        raise KeepWithWarning("a run-history artifact of the source workspace; left as is")
    raw = parsed.fields["path"]
    if parsed.run_artifact is None or not raw.startswith(_PREFIX):
        raise KeepWithWarning("not under ExperimentRun/dcid.<run>/; left as is")
    run, _, rest = raw[len(_PREFIX) :].partition("/")
    return artifact_uri(run, rest)
