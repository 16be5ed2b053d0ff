"""Safe parsing that holds (issue 17): YAML bounded by what a document expands to, JSON
nesting that an escaped quote cannot hide, and every parser failure — RecursionError
included — a ``ParseError`` naming the file, never a crash."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import yaml

from amlport import safeload
from amlport.errors import ParseError
from amlport.safeload import (
    MAX_JSON_DEPTH,
    MAX_YAML_DEPTH,
    MAX_YAML_EXPANSION,
    compose_yaml,
    load_json,
    load_yaml,
)
from amlport.walk import parsers

REPO = Path(__file__).resolve().parents[2]


def doubling_chain(levels: int) -> str:
    """``x{i}: &a{i} [*a{i-1}, *a{i-1}]``: two aliases a level, 2**levels nodes expanded."""
    lines = ["x0: &a0 [lol]"]
    lines += [f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [18, 22, 26, 64, 400])
def test_doubling_chains_are_refused_quickly(levels: int) -> None:
    # 22 levels cost 384 MB and 26 ran past a minute when only alias events were counted.
    started = time.perf_counter()
    with pytest.raises(ParseError, match="aliases expand to more than") as exc:
        load_yaml(doubling_chain(levels), "chain.yml")
    assert time.perf_counter() - started < 1.0
    assert exc.value.path == "chain.yml"


def test_a_chain_that_stays_under_the_bound_loads_whole() -> None:
    doc = load_yaml(doubling_chain(10), "chain.yml")
    assert len(doc) == 10 and str(doc).count("lol") == 2**9 + sum(2**i for i in range(9))


def test_many_aliases_of_small_nodes_are_fine_the_bound_is_on_expansion() -> None:
    # 500 aliases (the old limit was 64 events) of a 3-node list add 1,500 nodes.
    text = "base: &b {k: v}\n" + "".join(f"e{i}: *b\n" for i in range(500))
    assert load_yaml(text, "anchors.yml")["e499"] == {"k": "v"}


def test_wide_alias_fan_out_past_the_bound_is_refused() -> None:
    size = 2_000
    text = f"a: &x [{', '.join(['1'] * size)}]\n" + "".join(
        f"k{i}: *x\n" for i in range(MAX_YAML_EXPANSION // size + 1)
    )
    with pytest.raises(ParseError, match="alias bomb"):
        load_yaml(text, "fan.yml")


@pytest.mark.parametrize("text", ["&a [*a]", "a: &a {b: [1, *a]}", "- &a [x, [*a]]"])
def test_an_alias_inside_its_own_anchor_is_refused(text: str) -> None:
    with pytest.raises(ParseError, match="recursive"):
        load_yaml(text, "loop.yml")


def test_expansion_is_checked_before_anything_is_constructed() -> None:
    # compose_yaml (the rewriters' entry point) refuses it too, without building values.
    with pytest.raises(ParseError, match="aliases expand"):
        compose_yaml(doubling_chain(30), "chain.yml")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- " * (MAX_YAML_DEPTH + 1) + "x", f"nested deeper than {MAX_YAML_DEPTH}"),
        ("a: " + "[" * 5000 + "]" * 5000, "invalid YAML at line 1"),  # libyaml's own limit
        ("- " * 50_000 + "x", "invalid YAML at line 1"),
        ("when: 2020-02-30\n", "invalid YAML value"),  # ValueError from datetime
        ("n: !!int " + "1" * 5000 + "\n", "invalid YAML value"),  # int digit limit
        ("a: 1\nb: [\n", "line 3"),
    ],
)
def test_hostile_yaml_is_a_parse_error_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as exc:
        load_yaml(text, "bad.yml")
    assert reason in exc.value.reason


def test_nesting_up_to_the_bound_loads() -> None:
    text = "- " * MAX_YAML_DEPTH + "x"
    doc = load_yaml(text, "deep.yml")
    for _ in range(MAX_YAML_DEPTH - 1):
        doc = doc[0]
    assert doc == ["x"]


def test_recursion_in_the_pure_python_parser_is_a_parse_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without libyaml, PyYAML composes by recursion: deep nesting raised RecursionError.
    monkeypatch.setattr(safeload, "SAFE_LOADER", yaml.SafeLoader)
    with pytest.raises(ParseError, match="RecursionError"):
        load_yaml("- " * 20_000 + "x", "deep.yml")
    with pytest.raises(ParseError, match="aliases expand"):
        load_yaml(doubling_chain(22), "chain.yml")


def test_huge_single_lines_without_aliases_load() -> None:
    # The bound is on what aliases add, not on what is written: a long line is read whole.
    items = 150_000
    flat = "[" + ",".join(["1"] * items) + "]"
    assert len(load_yaml(flat, "flat.yml")) == items
    scalar = "k: " + "x" * 8_000_000
    assert len(load_yaml(scalar, "long.yml")["k"]) == 8_000_000


# -- JSON ------------------------------------------------------------------------------------

HOSTILE_POINTER = (
    '{"RelativePath": "x\\"' + "]" * 3000 + '", "AmlDataStoreName": '
    + "[" * 3000 + "]" * 3000 + "}"
)  # fmt: skip


def test_an_escaped_quote_does_not_hide_deep_nesting() -> None:
    # The escape flag was updated before the quote was tested: `\"` ended the string and
    # the 3,000 `]` inside it cancelled the real nesting, so json.loads hit RecursionError.
    with pytest.raises(ParseError, match=f"nested deeper than {MAX_JSON_DEPTH}"):
        parsers.parse_pointer(HOSTILE_POINTER, "azureml/ExperimentRun/dcid.r/Trained_model")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": "x\\\\", "b": [["\\"["]]}', {"a": "x\\", "b": [['"[']]}),
        ('{"a": "\\\\\\"]]]]"}', {"a": '\\"]]]]'}),
        ('{"a": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}', None),
    ],
)
def test_brackets_inside_strings_do_not_count(text: str, expected: object) -> None:
    doc = load_json(text, "f.json")
    if expected is not None:
        assert doc == expected


def test_string_escapes_never_end_a_string_early() -> None:
    # an escaped backslash before the quote does end it: the nesting after it counts.
    text = '{"a": "x\\\\", "b": ' + "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1) + "}"
    with pytest.raises(ParseError, match="nested deeper"):
        load_json(text, "f.json")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("1" * 5000, "invalid JSON"),  # ValueError: integer digit limit
        ('{"a": ' + "[" * 64 + "]" * 64 + "}", "nested deeper"),
        ('{"a": "unterminated', "invalid JSON at line 1"),
    ],
)
def test_hostile_json_is_a_parse_error(text: str, reason: str) -> None:
    with pytest.raises(ParseError) as exc:
        load_json(text, "f.json")
    assert reason in exc.value.reason


def test_recursion_in_the_json_parser_is_a_parse_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever slips past the pre-check, the guarded loader is where RecursionError stops.
    monkeypatch.setattr(safeload, "_max_nesting", lambda text: 0)
    with pytest.raises(ParseError, match="RecursionError"):
        load_json("[" * 100_000 + "]" * 100_000, "f.json")


def test_the_nesting_scan_is_linear() -> None:
    text = '{"s": "' + "\\\\" * 2_000_000 + '", "t": "' + "[" * 2_000_000 + '"}'
    started = time.perf_counter()
    assert load_json(text, "big.json")["t"].startswith("[[[")
    assert time.perf_counter() - started < 2.0


# -- one loader for the whole product ---------------------------------------------------------

RAW_YAML = re.compile(r"\byaml\.(?:safe_load|load|full_load|unsafe_load|compose|compose_all)\(")


def test_every_yaml_load_in_the_product_goes_through_the_guarded_loader() -> None:
    trees = [REPO / "src" / "amlport", REPO / "exporters", REPO / "importers", REPO / "rewriters"]
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for tree in trees
        for path in sorted(tree.rglob("*.py"))
        if path != REPO / "src" / "amlport" / "safeload.py"
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if RAW_YAML.search(line)
    ]
    assert offenders == []
