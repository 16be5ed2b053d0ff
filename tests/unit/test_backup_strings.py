"""What a backup holds through its transfer, held once (docs/design/0007, "Peak memory of
backup at 100k (B, session 7)"): the source index keyed by the plan's own path strings,
and the lineage compressed until the snapshot is written."""

from __future__ import annotations

import gc
from pathlib import Path

from amlport.export.plan import BundlePlan, rewrite_space
from amlport.lineage.packed import PackedNodeLink
from amlport.storage.base import BlobInfo
from amlport.storage.local import LocalSource
from amlport.walk.handlers import SPECS_CONTAINER
from amlport.walk.listing import Listing

HOSTILE = ["a[1]/b]c", "x/../y", "ctl\x01\x1b[0m\x7f", "n" * 1024, "sp ace/ü/名前", "..", "["]


def _plan(tmp_path: Path) -> BundlePlan:
    (tmp_path / "azureml").mkdir()
    (tmp_path / "azureml-blobstore-1234").mkdir()
    (tmp_path / "other").mkdir()
    return BundlePlan(LocalSource(tmp_path), Listing())


def test_a_containers_path_prefix_and_a_name_are_the_bundle_path(tmp_path: Path) -> None:
    """The index keys its rows by ``path_prefix(space) + name``: for a blob's container and
    for its rewritten forms' space, exactly the blob's bundle path, whatever the name."""
    plan = _plan(tmp_path)
    containers = ["azureml", "azureml-blobstore-1234", "unknown-container", SPECS_CONTAINER]
    for container in containers:
        for name in HOSTILE:
            path = plan.bundle_path(container, name)
            assert plan.path_prefix(container) + name == path
            assert plan.path_prefix(rewrite_space(container)) + name == path


def test_listed_offers_the_planned_path_object_while_the_caller_holds_it(
    tmp_path: Path,
) -> None:
    plan = _plan(tmp_path)
    for name in HOSTILE:
        plan.listing.add(BlobInfo("azureml", name, 1, etag="e"))
    plan.listing.freeze()
    planned = {name: plan.add_blob("azureml", name) for name in HOSTILE}
    shared = plan.planned_paths()
    for name, path in planned.items():
        held = plan.listed("azureml", name)
        assert held[0] is path and shared[path] is path
        assert plan.listed(rewrite_space("azureml"), name)[0] is path
        assert held[1] == name
    assert plan.listed("azureml", "not planned") == ()
    del shared
    gc.collect()
    assert plan.listed("azureml", HOSTILE[0])[0] is None  # the table went with the caller


def test_a_packed_node_link_unpacks_to_an_equal_document() -> None:
    doc = {
        "directed": True,
        "multigraph": True,
        "nodes": [{"id": f"run:{name}", "kind": "run", "n": i} for i, name in enumerate(HOSTILE)]
        + [{"id": "x", "size": 2**70, "ratio": 0.5, "none": None, "tags": ["a", "b"]}],
        "links": [{"source": "x", "target": f"run:{HOSTILE[0]}", "kind": "produced", "key": 0}],
    }
    packed = PackedNodeLink(doc)
    again = packed.unpack()
    assert again == doc and again is not doc
    assert list(again["nodes"][-1]) == list(doc["nodes"][-1])  # key order too
    assert packed.unpack() == doc  # as often as asked
    big = {"nodes": [{"id": f"n{i}", "kind": "output"} for i in range(5000)], "links": []}
    assert len(PackedNodeLink(big)) < 50_000  # held compressed
