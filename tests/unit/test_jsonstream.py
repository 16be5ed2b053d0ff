"""The member-by-member JSON object reader: the same values as json.loads, whatever the
block boundaries, and the same refusals."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from amlport.model import jsonstream

DOCS: list[Any] = [
    {},
    {"a": []},
    {"n": 12345678901234567890, "f": -1.5e-7, "t": True, "z": None, "s": 'é\n"\\u'},
    {"long": [{"id": f"x{i}", "v": i, "nested": {"l": [i, [i]]}} for i in range(40)], "b": 1},
    {"long": [1, 22, 333, 4444, 55555], "other": [True, False, None], "e": ""},
    {"dup": [1], "x": 0, "dup": [2, 3]},  # noqa: F601 - duplicate keys: the last wins
    {"g": {"nodes": [{"id": "a", "k": [1, {"x": None}]}], "links": [], "d": True}, "e": {}},
    {"g": {"k": 1, "k": [2]}, "l": [[], [[1]], {"a": [{}]}]},  # noqa: F601
]


def _read(
    text: str, streamed: tuple[str, ...] = ("long", "dup", "a"), hollow: tuple[str, ...] = ()
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in jsonstream.members(io.BytesIO(text.encode()), streamed, hollow=hollow):
        out[key] = list(value) if isinstance(value, jsonstream.Items) else value
    return out


@pytest.mark.parametrize("block", [1, 2, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("indent", [None, 2])
@pytest.mark.parametrize("doc", DOCS, ids=range(len(DOCS)))
def test_members_equal_json_loads_at_any_block_size(
    doc: Any, indent: int | None, block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonstream, "BLOCK", block)
    text = json.dumps(doc, indent=indent, ensure_ascii=False)
    assert _read(text) == json.loads(text)


def test_a_number_cut_by_the_block_end_is_read_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsonstream, "BLOCK", 4)
    assert _read('{"a": 123456789, "b": [98765, 4321]}') == {"a": 123456789, "b": [98765, 4321]}


def test_streamed_member_is_items_and_unread_items_are_skipped() -> None:
    text = json.dumps({"long": [1, 2, 3], "after": "yes"})
    seen = []
    for key, value in jsonstream.members(io.BytesIO(text.encode()), ("long",)):
        if isinstance(value, jsonstream.Items):
            seen.append((key, next(iter(value))))  # read one item, leave the rest
        else:
            seen.append((key, value))
    assert seen == [("long", 1), ("after", "yes")]


def test_a_streamed_key_that_holds_no_array_is_a_whole_value() -> None:
    assert _read('{"long": {"k": 1}}') == {"long": {"k": 1}}


def test_on_bytes_sees_every_byte() -> None:
    raw = json.dumps({"long": list(range(1000)), "s": "é" * 100}).encode()
    got = bytearray()
    for _, value in jsonstream.members(io.BytesIO(raw), ("long",), on_bytes=got.extend):
        if isinstance(value, jsonstream.Items):
            list(value)
    assert bytes(got) == raw


@pytest.mark.parametrize(
    "text",
    [
        "",
        '{"a": 1',
        '{"a": [1, 2',
        '{"a": [1 2]}',
        '{"a" 1}',
        "{a: 1}",
        '{"a": 1,}',
        '{"a": [1,]}',
        '{"a": 1} {"b": 2}',
        '{"a": tru}',
        '{"a": 01}',
        '{"a": {"b": [1,]}}',
        '{"a": {"b" 1}}',
        '{"a": {1: 2}}',
        '{"a": {"b": 1,}}',
        '{"a": [{"b": 1} {"c": 2}]}',
        '{"a": {"b": [1, 2}}',
    ],
)
@pytest.mark.parametrize("block", [2, 1 << 20])
@pytest.mark.parametrize(
    "how", [{"streamed": ("a",)}, {"streamed": ()}, {"streamed": (), "hollow": ("a",)}]
)
def test_invalid_json_is_refused_like_json_loads(
    text: str, block: int, how: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonstream, "BLOCK", block)
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        _read(text, **how)


def test_a_hollow_member_is_read_but_comes_back_empty() -> None:
    doc = {"g": {"nodes": [{"id": i} for i in range(50)]}, "l": [1, [2]], "s": "kept", "n": 3}
    raw = json.dumps(doc).encode()
    got = bytearray()
    out = {}
    for key, value in jsonstream.members(io.BytesIO(raw), hollow=tuple(doc), on_bytes=got.extend):
        out[key] = value
    assert out == {"g": {}, "l": [], "s": "kept", "n": 3}
    assert bytes(got) == raw


@pytest.mark.parametrize("hollow", [(), ("g",)])
def test_a_large_nested_value_is_read_in_pieces(
    hollow: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 MB member (a lineage) never sits in the buffer whole: the buffer stays near
    BLOCK characters whether the value is kept or not."""
    monkeypatch.setattr(jsonstream, "BLOCK", 4096)
    graph = {"nodes": [{"id": f"n{i}", "label": "x" * 40} for i in range(30_000)], "links": []}
    text = json.dumps({"g": graph, "after": 1})
    largest = 0
    more = jsonstream._Text.more

    def watch(self: jsonstream._Text, want: int = 0) -> bool:
        nonlocal largest
        grew = more(self, want)
        largest = max(largest, len(self.buf))
        return grew

    monkeypatch.setattr(jsonstream._Text, "more", watch)
    out = _read(text, (), hollow)
    assert out == ({"g": {}, "after": 1} if hollow else {"g": graph, "after": 1})
    assert len(text) > 2_000_000
    assert largest < 3 * 4096


@pytest.mark.parametrize("text", ["[]", '"a"', "1", "null"])
def test_a_value_that_is_not_an_object_is_refused(text: str) -> None:
    with pytest.raises(jsonstream.StreamError, match="expected"):
        _read(text)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(UnicodeDecodeError):
        list(jsonstream.members(io.BytesIO(b'{"a": "\xff"}')))


def test_deep_nesting_fails_as_json_loads_does() -> None:
    text = '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"
    with pytest.raises(RecursionError):
        json.loads(text)
    with pytest.raises(RecursionError):
        _read(text, ())
