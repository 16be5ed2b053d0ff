"""Job output URIs: ``azureml://jobs/<job>/outputs/<output>[/paths/<p>]``.

``artifacts`` is the reserved output name of the job's run artifacts (equivalent to
``runs:/<job>/<p>``), stored at ``ExperimentRun/dcid.<job>/<p>`` in ``workspaceartifactstore``;
the AutoML variant has no ``/paths/`` segment. Export writes that neutral location. A named
output lives wherever the job wrote it (the default datastore's ``azureml/<job>/<output>/``,
or a custom ``path:``), which storage alone cannot tell: only a resolver in the rules
(``job_output``) maps it; otherwise it is left with a warning. Import leaves job URIs alone
(a job of the source workspace does not exist in the target) and warns.
"""

from __future__ import annotations

from amlport.model.uris import ParsedUri, quote_path
from amlport.rewriters.datastore import artifact_uri, short_uri
from amlport.rewriters.rules import KeepWithWarning, RewriteRules

FAMILIES: tuple[str, ...] = ("azureml_job_output",)


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    f = parsed.fields
    job, output = f["job"], f["output"]
    if not rules.exporting:
        raise KeepWithWarning(f"refers to job {job!r} of the source workspace; left as is")
    raw_path = f.get("path", f.get("subpath", ""))
    if output == "artifacts":
        return artifact_uri(job, raw_path)
    folder = None if rules.job_output is None else rules.job_output(job, output)
    if folder is None:
        raise KeepWithWarning(
            f"output {output!r} of job {job!r}: where it was written is unknown (no job-output "
            "resolver in the rules); left as is"
        )
    base = quote_path(folder.path)
    joined = f"{base.rstrip('/')}/{raw_path}" if raw_path else base
    return short_uri(folder.datastore, joined)
