"""The rows of ``Inventory.to_dict`` (``amlport scan --json``): the direct conversion gives
exactly what ``dataclasses.asdict`` followed by ``_jsonable`` gave, for every record of every
fixture workspace and for values outside the plain types (which take the general way)."""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pytest
from helpers.walkfacts import WORKSPACES, scanned

from amlport.model import inventory
from amlport.model.inventory import _jsonable, _plain


def _reference(record: Any) -> dict[str, Any]:
    """The conversion before the direct one (``asdict``, then ``_jsonable``)."""
    return {k: _jsonable(v) for k, v in asdict(record).items()}


def _records(inv: inventory.Inventory) -> list[Any]:
    return [
        *inv.runs.values(),
        *inv.outputs.values(),
        *inv.models.values(),
        *inv.pointers,
        *inv.environments.values(),
        *inv.pipelines.values(),
        *inv.components.values(),
        *inv.assets.values(),
        *inv.uploads.values(),
    ]


@pytest.mark.parametrize("name", sorted(d.name for d in WORKSPACES.iterdir() if d.is_dir()))
def test_every_record_of_a_fixture_converts_as_before(name: str) -> None:
    inv, _ = scanned(name)
    records = _records(inv)
    assert records
    for record in records:
        assert _plain(record) == _reference(record)


@dataclass
class _Where:
    datastore: str
    path: str


class _Kind(str, enum.Enum):
    RUN = "run"


@dataclass
class _Inner:
    tags: dict[str, Any] = field(default_factory=dict)
    at: _Where | None = None


@dataclass
class _Record:
    name: str
    size: int = 0
    ratio: float = 0.5
    flag: bool = False
    none: None = None
    parts: tuple[Any, ...] = ()
    items: list[Any] = field(default_factory=list)
    props: dict[Any, Any] = field(default_factory=dict)
    inner: _Inner = field(default_factory=_Inner)


HOSTILE_NAME = "a[b]/../c\x01\x7f" + "x" * 1024

CASES = [
    _Record(HOSTILE_NAME),
    _Record("nested", parts=(1, "two", (3, [4])), items=[_Where("ds", HOSTILE_NAME), {"k": [1]}]),
    _Record(
        "where",
        inner=_Inner(
            {"z": 1, "a": {"datastore": "d", "path": "p"}},
            _Where("d", "]"),
        ),
    ),
    _Record("sorted", props={"b": 1, "a": 2, "[": {"y": None, "x": True}}),
    _Record("deep", items=[[[[[[{"a": [_Inner({"t": 1})]}]]]]]]),
    # Outside the plain types: each takes the general way, with the same result as before.
    _Record("enum", items=[_Kind.RUN], props={"k": _Kind.RUN}),
    _Record("counter", props={"c": Counter(a=2, b=1)}),
    _Record("int keys", props={2: "b", 10: "a"}),
    _Record("enum keys", props={_Kind.RUN: 1}),
    _Record("location of non-strings", props={"x": {"datastore": 1, "path": None}}),
]


@pytest.mark.parametrize("record", CASES, ids=lambda r: r.name[:20])
def test_hostile_and_unusual_values_convert_as_before(record: _Record) -> None:
    assert _plain(record) == _reference(record)


def test_the_rows_are_copies_not_the_records_own_containers() -> None:
    record = _Record("copy", items=[1], props={"a": [1]})
    row = _plain(record)
    row["items"].append(2)
    row["props"]["a"].append(2)
    assert record.items == [1] and record.props == {"a": [1]}


@pytest.mark.parametrize(("record", "direct"), [(r, i < 5) for i, r in enumerate(CASES)])
def test_only_the_plain_values_take_the_direct_way(record: _Record, direct: bool) -> None:
    try:
        for name in record.__dataclass_fields__:
            inventory._direct(getattr(record, name))
    except inventory._Unusual:
        assert not direct
    else:
        assert direct
