"""Registry URIs: ``azureml://registries/<registry>/<type>/<name>/versions/<v>`` (or
``/labels/<label>``). A registry is shared across workspaces: the URI means the same thing in
the target, so it is never rewritten, in either direction.
"""

from __future__ import annotations

from amlport.model.uris import ParsedUri
from amlport.rewriters.rules import RewriteRules

FAMILIES: tuple[str, ...] = ("azureml_registry",)


def rewrite(parsed: ParsedUri, rules: RewriteRules) -> str | None:
    return None
