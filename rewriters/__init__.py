"""amlport.rewriters: re-bind workspace-bound locations (pure; no I/O).

Export makes every location neutral (``azureml://datastores/<ds>/paths/<p>``, names instead of
ids); import binds neutral locations to a target workspace. One module per URI family (the
static table ``FAMILY_MODULES`` below), one per file format (``pointer_json``, ``mlmodel``,
``v2_yaml``, ``text_log``; ``files.rewrite_file`` picks one). Rules, records and errors are in
``rules``. Every form, before and after, is in ``docs/rewriting.md``.

A family module has ``FAMILIES: tuple[str, ...]`` and
``rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None`` (None: leave it unchanged).
It may raise ``KeepWithWarning`` (leave it, tell the user) or ``Unmappable`` (an error).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Protocol

from amlport.model.uris import ParsedUri, UriError, parse_uri
from amlport.rewriters import (
    aml_artifact,
    asset_ref,
    datastore,
    job,
    mlflow_uri,
    mount,
    registry,
    storage_url,
)
from amlport.rewriters.rules import (
    Change,
    Identity,
    KeepWithWarning,
    RewriteResult,
    RewriteRules,
    Unmappable,
    UriChange,
)

__all__ = [
    "FAMILY_MODULES",
    "Change",
    "Identity",
    "RewriteResult",
    "RewriteRules",
    "Unmappable",
    "UriChange",
    "rewrite_file",
    "rewrite_parsed",
    "rewrite_uri",
]


class FamilyRewriter(Protocol):
    FAMILIES: tuple[str, ...]

    def rewrite(self, parsed: ParsedUri, rules: RewriteRules) -> str | None: ...


# The static table: every family model.uris can parse -> the module that rewrites it.
FAMILY_MODULES: Mapping[str, FamilyRewriter] = MappingProxyType(
    {
        "wasb": storage_url,
        "abfs": storage_url,
        "blob_https": storage_url,
        "dfs_https": storage_url,
        "file_https": storage_url,
        "adl": storage_url,
        "azureml_datastore_short": datastore,
        "azureml_datastore_long": datastore,
        "azureml_datastore_output": datastore,
        "azureml_job_output": job,
        "azureml_registry": registry,
        "azureml_ref": asset_ref,
        "azureml_asset_id": asset_ref,
        "azureml_arm_id": asset_ref,
        "azureml_workspace": asset_ref,
        "azureml_double_prefix": asset_ref,
        "runs": mlflow_uri,
        "models": mlflow_uri,
        "mlflow_artifacts": mlflow_uri,
        "mlflow_tracking": mlflow_uri,
        "aml_artifact": aml_artifact,
        "mount_v1": mount,
        "mount_v2": mount,
    }
)

_DOUBLE_PREFIX = "azureml_double_prefix"
# Text that claims to be an Azure storage / Azure ML location; if it does not parse, say so.
_CLAIMS_TO_BE_BOUND = re.compile(
    r"(?i)^(?:wasbs?://|abfss?://|adl://|azureml:|aml://|runs:/)"
    r"|^https?://[^/?#\s]*\.(?:blob|dfs|file)\.|^https?://[^/?#\s]*\.api\.(?:azureml\.ms|ml\.azure)"
)
_SAS = re.compile(r"(?i)(?:^|&)sig=")


def rewrite_parsed(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    """The family rewriter for ``parsed``: new text without query, or None to leave it.

    Raises ``KeepWithWarning`` and ``Unmappable`` (without a location) like the family does.
    An unwrapped double prefix is rewritten once more, as the URI it wraps.
    """
    after = FAMILY_MODULES[parsed.family].rewrite(parsed, rules)
    if parsed.family == _DOUBLE_PREFIX and after is not None:
        return rewrite_parsed(parse_uri(after), rules) or after
    return after


def rewrite_uri(text: str, rules: RewriteRules) -> UriChange | None:
    """Decide what happens to one URI (``text`` is the whole URI, query string included).

    Returns None when nothing changes and nothing is worth reporting; otherwise a
    ``UriChange`` whose ``replacement`` goes where ``text`` was. A SAS query string is always
    dropped. Raises ``Unmappable`` (its ``where`` is empty: the caller knows the location).
    """
    try:
        parsed = parse_uri(text)
    except UriError:
        return _unrecognised(text)
    before = datastore.body(parsed)
    rule = f"{parsed.family}:{rules.direction}"
    has_sas = parsed.query is not None and _SAS.search(parsed.query) is not None
    try:
        after = rewrite_parsed(parsed, rules)
    except KeepWithWarning as keep:
        return _kept(text, before, rule, keep.reason, has_sas)
    if after is None:
        return _kept(text, before, rule, None, has_sas)
    return UriChange(before, after, after, rule, dropped_sas=has_sas)


def _kept(
    text: str, before: str, rule: str, warning: str | None, has_sas: bool
) -> UriChange | None:
    if has_sas:
        return UriChange(before, before, before, rule, warning, dropped_sas=True)
    if warning is None:
        return None
    return UriChange(before, before, text, rule, warning)


def _unrecognised(text: str) -> UriChange | None:
    stripped = text.strip()
    if "${{" in stripped or not _CLAIMS_TO_BE_BOUND.search(stripped):
        return None
    before = stripped.partition("?")[0]
    return UriChange(before, before, text, "unrecognised", "not a recognised URI form; left as is")


# Format rewriters use rewrite_uri, so they are imported once it exists.
from amlport.rewriters.files import rewrite_file  # noqa: E402
