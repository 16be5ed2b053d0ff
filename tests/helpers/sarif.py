"""The SARIF 2.1.0 schema check of audit reports (schema: tests/unit/sarif-schema-2.1.0.json)."""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import jsonschema

from helpers import TESTS

SCHEMA = TESTS / "unit" / "sarif-schema-2.1.0.json"


@cache
def sarif_validator() -> jsonschema.Draft4Validator:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    jsonschema.Draft4Validator.check_schema(schema)
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_sarif(doc: Any) -> None:
    errors = sorted(sarif_validator().iter_errors(doc), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
