"""The rule catalogue: ``rules.yaml`` loaded into typed, validated ``Rule`` records.

Rules are data (ids, severities, texts, references); the code that evaluates a rule is named by
its ``check`` field and lives in ``checks_resilience`` / ``checks_hygiene``. Loading validates
the file strictly, so a typo in the catalogue fails the test suite rather than a user's audit.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from amlport.errors import UsageError
from amlport.model.findings import Severity
from amlport.safeload import load_yaml

RULE_ID = re.compile(r"^AMLP-[A-Z]{2,4}-\d{3}\Z")
REFERENCE_KINDS = ("psrule", "aprl", "checkov", "azure_policy")
CATEGORIES = ("resilience", "hygiene")
_REQUIRED = ("id", "check", "category", "severity", "title", "rationale", "remediation")


class CatalogError(Exception):
    """rules.yaml is malformed: a bug in amlport, caught by the tests."""


@dataclass(frozen=True)
class Rule:
    id: str
    check: str
    category: str
    severity: Severity
    title: str
    rationale: str
    remediation: str
    notes: str = ""
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    links: tuple[str, ...] = ()

    def reference_list(self) -> list[str]:
        """``["PSRule: Azure.Storage.SoftDelete", …]`` in a fixed order."""
        return [
            f"{_REFERENCE_LABELS[kind]}: {ref}"
            for kind in REFERENCE_KINDS
            for ref in self.references.get(kind, ())
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "category": self.category,
            "severity": self.severity.value,
            "title": self.title,
            "rationale": self.rationale,
            "remediation": self.remediation,
            "notes": self.notes,
            "references": {k: list(self.references.get(k, ())) for k in REFERENCE_KINDS},
            "links": list(self.links),
        }


_REFERENCE_LABELS = {
    "psrule": "PSRule",
    "aprl": "APRL",
    "checkov": "checkov",
    "azure_policy": "Azure Policy",
}


def parse_catalog(data: Any) -> tuple[Rule, ...]:
    """Validate the YAML document and build the rules, in file order."""
    if not isinstance(data, dict) or data.get("version") != 1:
        raise CatalogError("rules.yaml: expected a mapping with version: 1")
    entries = data.get("rules")
    if not isinstance(entries, list) or not entries:
        raise CatalogError("rules.yaml: 'rules' must be a non-empty list")
    rules = tuple(_parse_rule(i, entry) for i, entry in enumerate(entries))
    ids = [r.id for r in rules]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CatalogError(f"rules.yaml: duplicate rule ids {duplicates}")
    return rules


def _parse_rule(index: int, entry: Any) -> Rule:
    where = f"rules.yaml rule #{index + 1}"
    if not isinstance(entry, dict):
        raise CatalogError(f"{where}: expected a mapping")
    missing = [k for k in _REQUIRED if not isinstance(entry.get(k), str) or not entry[k].strip()]
    if missing:
        raise CatalogError(f"{where}: missing or empty {missing}")
    if not RULE_ID.match(entry["id"]):
        raise CatalogError(f"{where}: bad id {entry['id']!r}")
    if entry["category"] not in CATEGORIES:
        raise CatalogError(f"{where}: unknown category {entry['category']!r}")
    try:
        severity = Severity(entry["severity"])
    except ValueError:
        raise CatalogError(f"{where}: unknown severity {entry['severity']!r}") from None
    return Rule(
        id=entry["id"],
        check=entry["check"],
        category=entry["category"],
        severity=severity,
        title=_clean(entry["title"]),
        rationale=_clean(entry["rationale"]),
        remediation=_clean(entry["remediation"]),
        notes=_clean(str(entry.get("notes") or "")),
        references=_references(where, entry.get("references") or {}),
        links=tuple(str(x) for x in entry.get("links") or ()),
    )


def _references(where: str, refs: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(refs, dict) or set(refs) - set(REFERENCE_KINDS):
        raise CatalogError(f"{where}: references must map {REFERENCE_KINDS} to lists")
    out: dict[str, tuple[str, ...]] = {}
    for kind, values in refs.items():
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise CatalogError(f"{where}: references.{kind} must be a list of strings")
        out[kind] = tuple(values)
    return out


def _clean(text: str) -> str:
    """Folded YAML keeps single spaces; collapse any run of whitespace to be safe."""
    return " ".join(text.split())


@lru_cache(maxsize=1)
def load_rules() -> tuple[Rule, ...]:
    """The built-in catalogue (``amlport/audit/rules.yaml``)."""
    text = resources.files("amlport.audit").joinpath("rules.yaml").read_text(encoding="utf-8")
    return parse_catalog(load_yaml(text, "rules.yaml"))


def rules_by_id() -> dict[str, Rule]:
    return {r.id: r for r in load_rules()}


def select_rules(
    rules: Iterable[Rule], only: Iterable[str] = (), skip: Iterable[str] = ()
) -> list[Rule]:
    """``--rule`` / ``--skip``: ids or shell patterns (``AMLP-HYG-*``); unknown ones are errors."""
    pool = list(rules)
    ids = [r.id for r in pool]
    only_ids = _expand(ids, only, "--rule")
    skip_ids = _expand(ids, skip, "--skip")
    return [r for r in pool if (not only_ids or r.id in only_ids) and r.id not in skip_ids]


def _expand(ids: list[str], patterns: Iterable[str], option: str) -> set[str]:
    chosen: set[str] = set()
    for pattern in patterns:
        matched = fnmatch.filter(ids, pattern.strip().upper())
        if not matched:
            raise UsageError(
                f"{option} {pattern!r} matches no audit rule",
                hint="see docs/audit-rules.md for the rule ids (patterns like AMLP-HYG-* work)",
            )
        chosen.update(matched)
    return chosen
