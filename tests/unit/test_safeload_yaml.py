"""YAML through libyaml (``amlport.safeload``) reads and writes what PyYAML's pure-Python
classes would: the same documents from every corpus and fixture file, and documents written
by the exporters load back unchanged with either."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.errors import ParseError
from amlport.safeload import MAX_YAML_EXPANSION, SAFE_DUMPER, SAFE_LOADER, dump_yaml, load_yaml

REPO = Path(__file__).resolve().parents[2]
SOURCES = [REPO / "fixtures"]  # the workspaces, specs and the real corpus (fixtures/corpus)
FILES = sorted(
    p
    for root in SOURCES
    if root.is_dir()
    for p in root.rglob("*")
    if p.is_file() and (p.suffix in (".yml", ".yaml") or p.name == "MLmodel")
)


def test_libyaml_is_used_when_pyyaml_has_it() -> None:
    assert (SAFE_LOADER is yaml.CSafeLoader) == yaml.__with_libyaml__
    assert (SAFE_DUMPER is yaml.CSafeDumper) == yaml.__with_libyaml__


@pytest.mark.skipif(len(FILES) < 50, reason="the fixtures are missing")
def test_every_corpus_and_fixture_file_loads_as_the_pure_python_loader_reads_it() -> None:
    compared = 0
    for path in FILES:
        text = path.read_text(encoding="utf-8", errors="replace")
        try:
            expected = yaml.load(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError:
            with pytest.raises(ParseError):
                load_yaml(text, str(path))
            continue
        assert load_yaml(text, str(path)) == expected, path
        compared += 1
    assert compared >= 50


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=40),
    st.sampled_from(["yes", "~", "1e3", "0x1F", "- a", "a: b", "#c", "2024-01-01", "日本", "😀"]),
)
DOCS = st.dictionaries(
    st.text(min_size=1, max_size=20),
    st.recursive(
        SCALARS,
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(st.text(min_size=1, max_size=10), inner, max_size=3)
        ),
        max_leaves=12,
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(DOCS)
def test_written_documents_load_back_unchanged_with_either_loader(doc: dict[str, Any]) -> None:
    text = dump_yaml(doc).decode("utf-8")
    assert yaml.load(text, Loader=yaml.SafeLoader) == doc
    assert load_yaml(text, "doc.yml") == doc


def test_alias_bombs_are_still_refused() -> None:
    size = 1000  # one anchored list, referenced until it expands past the bound
    text = f"a: &x [{', '.join(['1'] * size)}]\n" + "".join(
        f"k{i}: *x\n" for i in range(MAX_YAML_EXPANSION // size + 1)
    )
    with pytest.raises(ParseError, match="aliases expand"):
        load_yaml(text, "bomb.yml")
    with pytest.raises(ParseError, match="line 3"):
        load_yaml("a: 1\nb: [\n", "broken.yml")
