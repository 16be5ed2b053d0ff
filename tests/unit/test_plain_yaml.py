"""``exporters/plain_yaml.dump`` writes the bytes ``safeload.dump_yaml`` writes, for any
document (hypothesis): its own where it can, PyYAML's elsewhere."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlport.exporters import plain_yaml
from amlport.safeload import dump_yaml

NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_./-]{0,30}", fullmatch=True)
# text that PyYAML writes plain, quoted, escaped or folded: spaces, indicators, numbers,
# booleans, dates, ``: ``, `` #``, ``---``, control and non-ASCII characters, long lines
PROSE = st.lists(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12),
    max_size=25,
).map(" ".join)  # long lines with single and double spaces: PyYAML folds them
HOSTILE = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40),
    PROSE,
    st.text(max_size=20),
    st.sampled_from(
        [
            "yes",
            "No",
            "ON",
            "null",
            "~",
            "1",
            "-1",
            "0x1f",
            "1.5",
            "1e3",
            "1_000",
            "12:30:00",
            "2024-01-02",
            ".inf",
            "---",
            "...",
            "a: b",
            "a #b",
            "a:",
            "a:b",
            "-a",
            "? x",
            "[a]",
            "a[1]",
            "x]..y",
            "tab\there",
            "=",
            "<<",
            "a" * 300,
            "word " * 30,
            "é",
            "\x85",
            "x\ny",
            " lead",
            "trail ",
            "'q'",
            '"q"',
            "%x",
            "@x",
            "`x",
            "!x",
            "&x",
            "*x",
            "|x",
            ">x",
            "#x",
            ",x",
            "{x",
            "a, b",
            "a (b)",
            "k=v; w",
        ]
    ),
)
SCALARS = st.one_of(
    NAMES, HOSTILE, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False)
)
KEYS = st.one_of(NAMES, NAMES, HOSTILE)


def _docs(leaves: Any, keys: Any = KEYS) -> Any:
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=5)
        ),
        max_leaves=20,
    )


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(KEYS, _docs(SCALARS), max_size=6))
def test_the_same_bytes_as_pyyaml(doc: dict[str, Any]) -> None:
    assert plain_yaml.dump(doc) == dump_yaml(doc)


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        NAMES, _docs(st.one_of(NAMES, st.none(), st.integers()), keys=NAMES), min_size=1
    )
)
def test_names_are_written_without_pyyaml(doc: dict[str, Any]) -> None:
    """A document of names (ids, locations, modules) is written here (the fast path), and
    still equals PyYAML's."""
    expected = dump_yaml(doc)
    if _nested_sequence(doc):
        return  # ``- - x``: PyYAML's
    try:
        plain_yaml.dump_yaml = _refuse  # type: ignore[assignment]
        got = plain_yaml.dump(doc)
    finally:
        plain_yaml.dump_yaml = dump_yaml  # type: ignore[assignment]
    assert got == expected


@pytest.mark.parametrize(
    "value",
    [
        "True",
        "0.7",
        "%22Split+Rows%22",
        "a: b",
        "it's",
        "-",
        "[x]",
        "null",
        "short text",
        "the canvas: module positions, comments and the draft's name and description in Studio",
        "word " * 30 + "end",
        "x" * 90 + " y",
    ],
)
def test_quoted_parameters_are_written_without_pyyaml(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys = {value: "v"} if len(value) < 100 else {}  # a longer key: PyYAML's ``? ``
    doc = {"steps": [{"parameters": {"p": value, **keys}}]}
    expected = dump_yaml(doc)
    monkeypatch.setattr(plain_yaml, "dump_yaml", _refuse)
    assert plain_yaml.dump(doc) == expected


def _refuse(doc: Any) -> bytes:
    raise AssertionError("given to PyYAML")


def _nested_sequence(value: Any, in_list: bool = False) -> bool:
    if isinstance(value, list):
        return (bool(value) and in_list) or any(_nested_sequence(v, True) for v in value)
    if isinstance(value, dict):
        return any(_nested_sequence(v) for v in value.values())
    return False


def _containers(value: Any, found: list[Any]) -> list[Any]:
    if isinstance(value, (dict, list)):
        found.append(value)
        for item in value.values() if isinstance(value, dict) else value:
            _containers(item, found)
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(NAMES, _docs(st.one_of(NAMES, SCALARS), keys=NAMES), min_size=1),
    st.data(),
)
def test_containers_met_twice_as_pyyaml(doc: dict[str, Any], data: st.DataObject) -> None:
    """Containers met more than once (in any order, inside each other): the anchors and
    aliases PyYAML writes, numbered as it numbers them."""
    found = _containers(doc, [])
    for i in range(data.draw(st.integers(1, 4))):
        shared = data.draw(st.sampled_from(found))
        holder = data.draw(st.sampled_from(found))
        if isinstance(holder, dict):
            holder[f"ref{i}"] = shared
        else:
            holder.append(shared)
    assert plain_yaml.dump(doc) == dump_yaml(doc)


def test_a_container_met_twice_is_pyyamls_anchor_and_alias(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shared: dict[str, Any] = {"exclude": False, "ruleType": "AllColumns"}
    empty: list[Any] = []
    items = ["x", {"y": "z"}]
    docs = [
        {"x": shared, "y": shared, "z": [shared, {"w": shared}]},
        {"x": empty, "y": [empty], "l": items, "m": [items, {"n": items}]},
    ]
    expected = [dump_yaml(doc) for doc in docs]
    monkeypatch.setattr(plain_yaml, "dump_yaml", _refuse)
    for doc, want in zip(docs, expected, strict=True):
        assert plain_yaml.dump(doc) == want
        assert b"&id001" in want


@pytest.mark.parametrize(
    "value",
    ["word " * 15, "x" * 200, "a: b", "yes", "12", "", None, True, 3, "tab\there", "é", "'"],
)
def test_each_kind_of_value_as_pyyaml(value: Any) -> None:
    for doc in (
        {"k": value},
        {"steps": [{"run_id": "r", "v": value, "l": [value, {"m": value}]}]},
        {"deep": {"deeper": {"deepest": value}}},
    ):
        assert plain_yaml.dump(doc) == dump_yaml(doc)
