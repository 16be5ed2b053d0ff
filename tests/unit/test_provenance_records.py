"""Provenance records in model/ (import records, the identity record), the map file as a
workspace file, and an asset's own ``name:`` renamed with its references (pure logic)."""

from __future__ import annotations

import json

import pytest

from amlport.errors import ParseError, UsageError
from amlport.model import provenance as P
from amlport.model.mapping import Mapping, descriptor_from_yaml
from amlport.model.workspace import WorkspaceDescriptor
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.rewriters.v2_yaml import rewrite_yaml

TARGET = {
    "account": "stqa01",
    "workspace": "mlw-qa",
    "containers": {"blobstore": "qa-blobstore", "artifacts": "qa-azureml"},
    "datastores": {"qablob": "qa-blobstore"},
}


def _identity_bytes(doc: object) -> bytes:
    return json.dumps(doc).encode()


def test_one_reserved_prefix() -> None:
    assert P.IMPORTS_PREFIX.startswith(P.RECORDS_PREFIX)
    assert P.IDENTITY_NAME.startswith(P.RECORDS_PREFIX)
    import amlport.walk.classify as classify

    assert not hasattr(classify, "AMLPORT_RECORDS")  # one constant, in model/provenance.py


def test_identity_record_round_trips() -> None:
    desc = WorkspaceDescriptor.from_dict(TARGET)
    raw = P.encode(P.identity_record(desc))
    back = P.identity_from("x", raw)
    assert back == desc and back.container_of("qablob") == "qa-blobstore"


@pytest.mark.parametrize(
    "raw",
    [
        b"x" * (P.MAX_IDENTITY_BYTES + 1),  # huge
        b"[" * 100_000 + b"]" * 100_000,  # deep
        b"\xff\xfe not utf-8",
        b"{not json",
        _identity_bytes({"format": "other/1", "workspace": TARGET}),
        _identity_bytes({"format": P.IDENTITY_FORMAT, "workspace": "a string"}),
        _identity_bytes(
            {"format": P.IDENTITY_FORMAT, "workspace": {**TARGET, "account": "a\x1bb"}}
        ),
        _identity_bytes(
            {
                "format": P.IDENTITY_FORMAT,
                "workspace": {**TARGET, "containers": {"blobstore": "../x"}},
            }
        ),
        _identity_bytes(
            {
                "format": P.IDENTITY_FORMAT,
                "workspace": {**TARGET, "datastores": {"a[b]": "qa-blobstore"}},
            }
        ),
    ],
    ids=["huge", "deep", "binary", "not-json", "format", "shape", "control", "path", "brackets"],
)
def test_hostile_identity_records_are_refused(raw: bytes) -> None:
    with pytest.raises(ParseError):
        P.identity_from("azureml/amlport/identity.json", raw)


def test_promote_record_keeps_every_earlier_hop() -> None:
    mapping = Mapping.from_dict({"target": TARGET})
    dev = {"account": "stdev", "workspace": "mlw-dev", "snapshot": "s1", "time": "2026-01-01"}
    name, doc = P.promote_record(
        {"account": "stqa01", "workspace": "mlw-qa"}, [dev], mapping, {"create": 1}, {}, []
    )
    assert name.startswith(P.IMPORTS_PREFIX)
    assert [(h["account"], h["workspace"]) for h in doc["hops"]] == [
        ("stdev", "mlw-dev"),
        ("stqa01", "mlw-qa"),
    ]
    hops, problems = P.provenance_from([(name, P.encode(doc))])
    assert problems == [] and [h["account"] for h in hops] == ["stdev", "stqa01"]


def test_a_map_file_is_a_workspace_file() -> None:
    text = json.dumps({"target": TARGET, "datastores": {"workspaceblobstore": "qablob"}})
    assert descriptor_from_yaml(text, where="qa.yaml") == WorkspaceDescriptor.from_dict(TARGET)
    assert descriptor_from_yaml(json.dumps(TARGET), where="ws.yaml").workspace == "mlw-qa"
    with pytest.raises(UsageError, match="containrs"):
        descriptor_from_yaml(json.dumps({"target": {**TARGET, "containrs": {}}}), where="m")
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(UsageError):
        descriptor_from_yaml(bomb + "target: *i\n", where="bomb.yaml")


ENV = b"""$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json
name: lendingclub-env
version: 3
"""
COMPONENT = b"""$schema: https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json
name: split
environment: azureml:lendingclub-env@latest
"""


def _rules(renames: dict[str, str]) -> RewriteRules:
    ident = Identity(account="a")
    return RewriteRules("import", ident, target=ident, asset_renames=renames)


def test_asset_renames_apply_to_the_asset_name_and_its_references() -> None:
    rules = _rules({"lendingclub-env": "lendingclub-env-prod"})
    env = rewrite_yaml("env.yml", ENV, rules)
    assert b"name: lendingclub-env-prod\n" in env.data
    assert [(c.location, c.rule) for c in env.changes] == [("/name", "asset_name:import")]
    comp = rewrite_yaml("split.yml", COMPONENT, rules)
    assert b"environment: azureml:lendingclub-env-prod@latest" in comp.data
    assert b"name: split\n" in comp.data  # not renamed: not in the map


def test_a_versioned_rename_wins_and_plain_yaml_keeps_its_name() -> None:
    rules = _rules({"lendingclub-env:3": "env-v3", "lendingclub-env": "env-any"})
    assert b"name: env-v3\n" in rewrite_yaml("env.yml", ENV, rules).data
    plain = b"name: lendingclub-env\nversion: 3\n"  # no $schema: not an asset definition
    assert rewrite_yaml("x.yml", plain, rules).data == plain
    exporting = RewriteRules("export", Identity(account="a"))
    assert rewrite_yaml("env.yml", ENV, exporting).data == ENV
