"""The kinds ``--include`` names (``selection.py`` selects by them). Apart from the selection,
so that a command that only parses its options (a backup decided from its listing) does not
import the exporters and the lineage graph."""

from __future__ import annotations

from amlport.errors import UsageError

INCLUDE_KINDS = {
    "models": "model",
    "pipelines": "pipeline",
    "environments": "environment",
    "runs": "run",
    "data": "data",
    "components": "component",
}
DEFAULT_INCLUDE = frozenset({"models", "pipelines", "environments", "runs", "components"})
ALL_KINDS = frozenset(INCLUDE_KINDS)


def parse_include(text: str) -> frozenset[str]:
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = kinds - set(INCLUDE_KINDS)
    if unknown:
        raise UsageError(
            f"unknown --include kind(s): {', '.join(sorted(unknown))}",
            hint=f"use a comma-separated list of {', '.join(INCLUDE_KINDS)}",
        )
    return kinds
