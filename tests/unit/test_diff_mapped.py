"""``diff --map`` over two snapshot sides held in memory (pure logic: no repository is read):
asset ids re-keyed like paths and lineage, audit facts compared by rule, state and subject
with A's subjects re-bound under the map."""

from __future__ import annotations

from typing import Any

from amlport.backup.diff import diff_sides
from amlport.backup.facts import AuditFact, compare_facts
from amlport.backup.mapped import under_map
from amlport.backup.sides import SnapshotSide
from amlport.model.manifest import AssetEntry, FileEntry, Manifest
from amlport.model.mapping import Mapping

DEV_BLOB, PROD_BLOB = "dev-blobstore", "prod-blobstore"
DIGEST = "sha256:" + "ab" * 32
HOSTILE = "[x]\x1b[31m\x07\r[/]" + "n" * 1000


def _source(account: str, blob: str, datastores: dict[str, str]) -> dict[str, Any]:
    return {
        "account": account,
        "endpoint": "core.windows.net",
        "workspace": f"ws-{account}",
        "containers": {"blobstore": blob, "artifacts": "azureml"},
        "datastores": datastores,
    }


def _side(source: dict[str, Any], ds: str, facts: list[AuditFact], label: str) -> SnapshotSide:
    path = f"files/{ds}/models/m/data.bin"
    node = f"model:{ds}/models/m"
    manifest = Manifest(
        source=source,
        assets=[AssetEntry(kind="model", name="m", id=node, files=[path])],
        files=[FileEntry(path, DIGEST, 3)],
        lineage={"nodes": [{"id": node, "kind": "model"}], "links": []},
    )
    return SnapshotSide(repo=None, manifest=manifest, label=label, _facts=facts)  # type: ignore[arg-type]


def _mapping() -> Mapping:
    return Mapping.from_dict(
        {
            "target": _source("prodacct", PROD_BLOB, {"prodblob": PROD_BLOB}),
            "datastores": {
                "devblob": "prodblob",
                "workspaceartifactstore": "workspaceartifactstore",
            },
        }
    )


def _fact(ds: str, rule: str = "AMLP-HYG-005", tail: str = "models/m") -> AuditFact:
    return AuditFact(rule, "fail", f"files/{ds}/{tail}", f"designer model in {ds}")


def _pair(a_facts: list[AuditFact], b_facts: list[AuditFact]) -> tuple[SnapshotSide, SnapshotSide]:
    # A names its blobstore ``devblob`` (an alias the walk of an older snapshot used); B
    # files it under its built-in name.
    a = _side(_source("devacct", DEV_BLOB, {"devblob": DEV_BLOB}), "devblob", a_facts, "a")
    b = _side(_source("prodacct", PROD_BLOB, {"prodblob": PROD_BLOB}), "workspaceblobstore",
              b_facts, "b")  # fmt: skip
    return a, b


def test_asset_ids_are_rekeyed_under_the_map_not_removed_and_added() -> None:
    a, b = _pair([], [])
    report = diff_sides(*under_map(_mapping())(a, b))
    assert report.assets.added == report.assets.removed == []
    assert report.assets.unchanged == 1 and not report.different, report.lines()
    plain = diff_sides(a, b)  # without the map the id differs: removed and added
    assert [r.id for r in plain.assets.removed] == ["model:devblob/models/m"]


def test_a_finding_about_the_mapped_datastore_is_the_same_fact() -> None:
    a, b = _pair([_fact("devblob")], [_fact("workspaceblobstore")])
    report = diff_sides(*under_map(_mapping())(a, b))
    assert report.audit_added == report.audit_removed == []
    assert report.audit_unchanged == 1 and not report.different
    assert report.to_dict()["audit"] == {"added": [], "removed": [], "unchanged": 1}


def test_one_fact_flipped_in_b_is_reported_with_its_hostile_subject() -> None:
    extra = _fact("workspaceblobstore", "AMLP-HYG-002", HOSTILE)
    a, b = _pair([_fact("devblob")], [_fact("workspaceblobstore"), extra])
    report = diff_sides(*under_map(_mapping())(a, b))
    assert report.different and report.audit_added == [extra] and report.audit_removed == []
    assert report.to_dict()["audit"]["added"][0]["subject"] == f"files/workspaceblobstore/{HOSTILE}"
    assert f"  + audit fail AMLP-HYG-002: files/workspaceblobstore/{HOSTILE}" in report.lines()
    # fixed in B: the fact is removed; a not-checked outcome that became a failure: both
    gone = diff_sides(*under_map(_mapping())(*_pair([_fact("devblob")], [])))
    assert [f.subject for f in gone.audit_removed] == ["files/workspaceblobstore/models/m"]


def test_facts_are_multisets_and_messages_are_not_compared() -> None:
    one = AuditFact("AMLP-HYG-006", "fail", "files/ds/p.yml", "job a: not pinned")
    two = AuditFact("AMLP-HYG-006", "fail", "files/ds/p.yml", "job b: not pinned")
    renamed = AuditFact("AMLP-HYG-006", "fail", "files/ds/p.yml", "job a-prod: not pinned")
    added, removed, same = compare_facts([one, two], [renamed])
    assert added == [] and len(removed) == 1 and same == 1
    checked = AuditFact("AMLP-HYG-004", "not_checked", "files/ds/m", "")
    failed = AuditFact("AMLP-HYG-004", "fail", "files/ds/m", "")
    assert compare_facts([checked], [failed]) == ([failed], [checked], 0)


def test_a_consumed_diff_is_the_same_and_its_sides_let_go_of_their_snapshots() -> None:
    """``consume``: each side drops what the comparison no longer needs as it goes (a 100k
    diff held both snapshots whole through both walks); the report does not change and the
    caller's manifests are left as they were."""
    kept = diff_sides(*under_map(_mapping())(*_pair([_fact("devblob")], [])))
    a, b = _pair([_fact("devblob")], [])
    given = a.manifest
    consumed = diff_sides(*under_map(_mapping())(a, b), consume=True)
    assert consumed.to_dict() == kept.to_dict() and consumed.audit_removed
    for side in (a, b):  # its facts were known: nothing of its lists is held
        m = side.manifest
        assert (m.files, m.assets, m.lineage, m.rewrites, m.redactions) == ([], [], {}, [], [])
        assert not side.paths()
    assert len(given.files) == len(given.assets) == 1 and given.lineage["nodes"]
