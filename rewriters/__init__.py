"""amlport.rewriters: re-bind workspace-bound locations (pure; no I/O).

Export makes every location neutral (``azureml://datastores/<ds>/paths/<p>``, names instead of
ids); import binds neutral locations to a target workspace. One module per URI family (the
registry ``FAMILY_MODULES`` in ``dispatch``, which also holds ``rewrite_uri``), one per file
format (``pointer_json``, ``mlmodel``, ``v2_yaml``, ``text_log``; ``files.rewrite_file`` picks
one). Rules, records and errors are in ``rules``. Every form, before and after, is in
``docs/rewriting.md``.

A family module has ``FAMILIES: tuple[str, ...]`` and
``rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None`` (None: leave it unchanged).
It may raise ``KeepWithWarning`` (leave it, tell the user) or ``Unmappable`` (an error).
"""

from __future__ import annotations

from amlport.rewriters.dispatch import FAMILY_MODULES, FamilyRewriter, rewrite_parsed, rewrite_uri
from amlport.rewriters.files import rewrite_file
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
    "FamilyRewriter",
    "Identity",
    "KeepWithWarning",
    "RewriteResult",
    "RewriteRules",
    "Unmappable",
    "UriChange",
    "rewrite_file",
    "rewrite_parsed",
    "rewrite_uri",
]
