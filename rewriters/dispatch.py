"""The rewriter dispatch: which family module rewrites a URI, and what the change is.

``FAMILY_MODULES`` (an ``amlport.plugins.Registry``, one named entry per URI family that
``model.uris`` parses) maps a family to the module that rewrites it; ``rewrite_uri`` decides
what happens to one URI and ``rewrite_parsed`` runs the family module. The format rewriters
(``files``, ``v2_yaml``, ``mlmodel``, ``pointer_json``, ``text_log``, through ``recorder``)
call ``rewrite_uri`` from here; ``amlport.rewriters`` re-exports it. Living in its own module
(before issue 23 it was the package ``__init__``, which imported ``files`` on its last line to
break the cycle) lets every module import it without caring about the order.
"""

from __future__ import annotations

import re
from typing import Protocol

from amlport.model.uris import ParsedUri, UriError, parse_uri
from amlport.plugins import Registry
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
from amlport.rewriters.rules import KeepWithWarning, RewriteRules, UriChange


class FamilyRewriter(Protocol):
    FAMILIES: tuple[str, ...]

    def rewrite(self, parsed: ParsedUri, rules: RewriteRules) -> str | None: ...


def _is_family_rewriter(value: object) -> bool:
    return callable(getattr(value, "rewrite", None)) and isinstance(
        getattr(value, "FAMILIES", None), tuple
    )


# The table: every family model.uris can parse -> the module that rewrites it (built-ins only:
# a family is a form model.uris parses, so there is no entry-point group).
FAMILY_MODULES: Registry[FamilyRewriter] = Registry("rewriter", check=_is_family_rewriter)
for _module in (storage_url, datastore, job, registry, asset_ref, mlflow_uri, aml_artifact, mount):
    for _family in _module.FAMILIES:
        FAMILY_MODULES.add(_family, _module)


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
