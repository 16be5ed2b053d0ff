"""Asset references: ``azureml:<name>:<version>``, ``azureml:<name>@<label>``, ``azureml:<name>``
(compute, datastore), workspace asset ids (``azureml://subscriptions/…/workspaces/<ws>/<type>/
<name>/versions/<v>``, ``azureml://locations/<region>/workspaces/<guid>/…``, the bare
``azureml://models|data/<name>/versions/<v>``), ARM ids (``azureml:/subscriptions/…/providers/
Microsoft.MachineLearningServices/workspaces/<ws>/<type>/<name>[/versions/<v>]``), the
workspace scope (``azureml://subscriptions/…/workspaces/<ws>``) and the ``azureml:azureml://…``
double prefix.

A reference by name is resolved in whichever workspace runs the YAML: neutral. An id that
pins the *source* workspace becomes ``azureml:<name>:<version>`` (both directions); an id of
another workspace is left with a warning. Import applies ``asset_renames`` to every reference
(and the datastore map to ARM ids of datastores). The double prefix is unwrapped: the inner URI
is returned and ``rewrite_uri`` rewrites it in turn.
"""

from __future__ import annotations

from collections.abc import Mapping

from amlport.model.uris import ParsedUri, format_uri, with_fields
from amlport.rewriters.datastore import body
from amlport.rewriters.rules import KeepWithWarning, RewriteRules

FAMILIES: tuple[str, ...] = (
    "azureml_ref",
    "azureml_asset_id",
    "azureml_arm_id",
    "azureml_workspace",
    "azureml_double_prefix",
)


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    family, f = parsed.family, parsed.fields
    if family == "azureml_double_prefix":
        return unwrap(parsed)
    if family == "azureml_workspace":
        return _workspace(parsed, rules)
    if family == "azureml_ref":
        after = _ref(f["name"], f.get("version"), f.get("label"), rules)
        return None if after == body(parsed) else after
    if "subscription" not in f and "workspace_id" not in f:  # azureml://models|data/<n>/versions
        return _bare_id(parsed, rules)
    if not _is_source(parsed, rules):
        raise KeepWithWarning(f"an asset of another workspace ({_scope(f)}); left as is")
    if f["asset_type"].lower() == "datastores" and "version" not in f and not rules.exporting:
        return f"azureml:{rules.target_datastore(f['name'], body(parsed))}"
    return _ref(f["name"], f.get("version"), None, rules)


def unwrap(parsed: ParsedUri) -> str:
    """``azureml:azureml://…`` -> the inner ``azureml://…`` (seen in job JSON)."""
    fields = dict(parsed.fields)
    family = fields.pop("inner_family")
    return format_uri(ParsedUri(family, "", fields))


def _is_source(parsed: ParsedUri, rules: RewriteRules) -> bool:
    f = parsed.fields
    if "workspace_id" in f:
        return rules.source.is_workspace(workspace_id=f["workspace_id"])
    return rules.source.is_workspace(f["subscription"], f["resource_group"], f["workspace"])


def _scope(f: Mapping[str, str]) -> str:
    return f.get("workspace") or f.get("workspace_id") or "?"


def _ref(name: str, version: str | None, label: str | None, rules: RewriteRules) -> str:
    if not rules.exporting:
        name, version, label = renamed(name, version, label, rules.asset_renames)
    if version:
        return f"azureml:{name}:{version}"
    return f"azureml:{name}@{label}" if label else f"azureml:{name}"


def renamed(
    name: str, version: str | None, label: str | None, renames: Mapping[str, str]
) -> tuple[str, str | None, str | None]:
    """Apply ``asset_renames``: an exact ``name:version``/``name@label`` key wins over ``name``."""
    suffix = f":{version}" if version else (f"@{label}" if label else "")
    new = renames.get(name + suffix) if suffix else None
    if new is None:
        new = renames.get(name)
    if new is None:
        return name, version, label
    if "@" in new:
        new_name, _, new_label = new.partition("@")
        return new_name, None, new_label
    if ":" in new:
        new_name, _, new_version = new.partition(":")
        return new_name, new_version, None
    return new, version, label


def _bare_id(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    f = parsed.fields
    if rules.exporting:
        return None
    name, version, label = renamed(f["name"], f["version"], None, rules.asset_renames)
    if (name, version) == (f["name"], f["version"]):
        return None
    if version is None:
        return f"azureml:{name}@{label}"
    return format_uri(with_fields(parsed, name=name, version=version))


def _workspace(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    f = parsed.fields
    if not rules.source.is_workspace(f["subscription"], f["resource_group"], f["workspace"]):
        raise KeepWithWarning(f"the scope of workspace {f['workspace']!r}; left as is")
    target = rules.target
    if rules.exporting or target is None or not target.has_scope:
        raise KeepWithWarning("the scope of the source workspace; left as is")
    changed = with_fields(
        parsed,
        subscription=str(target.subscription_id),
        resource_group=str(target.resource_group),
        workspace=str(target.workspace),
    )
    return format_uri(changed)
