"""Safe parsing of untrusted text (pure): decoding, bounded YAML, bounded JSON.

Everything amlport reads from a workspace, a repository or the user is untrusted. Every YAML
and JSON document the product parses goes through here, so the bounds are the same
everywhere and this is the one place where a parser's failure — a syntax error, a value the
constructor rejects, an alias bomb, pathological nesting, even a ``RecursionError`` — becomes
a ``ParseError`` naming the file (the walker turns it into a finding; a configuration file's
loader turns it into a usage error).

YAML is bounded by what a document *expands to*, not by how it is spelled: the composed node
graph is counted with alias multiplicity (memoised per node, so the count is linear in the
written nodes) and refused before anything is constructed when aliases would add more than
``MAX_YAML_EXPANSION`` nodes, when it nests deeper than ``MAX_YAML_DEPTH`` or when an alias
refers to a node that contains it. A doubling chain (two aliases per level) is refused at its
16th level in microseconds, where counting alias events let it through.

YAML goes through libyaml (PyYAML's C parser and emitter, in every PyYAML wheel) when it is
there: the same safe YAML 1.1 types at a fraction of the CPU (parsing the walk's YAML and
writing the exporters' documents was a third of a backup's own CPU). Without it, PyYAML's
pure-Python classes do the same. The two emitters differ on a few rare inputs (a character
outside the Basic Multilingual Plane is escaped by libyaml; an empty key is written
``'': v``); either output loads to the same document.
"""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from amlport.errors import ParseError

SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
SAFE_DUMPER: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
# Nodes aliases may add beyond those written: no real Azure ML file comes near it, and a
# document this size still prints and compares in milliseconds.
MAX_YAML_EXPANSION = 100_000
MAX_YAML_DEPTH = 64
MAX_JSON_DEPTH = 64

# Errors a parser or constructor raises on hostile input besides its own error type: bad
# timestamps and over-long integers (ValueError), and nesting past the interpreter's stack.
_PARSER_FAILURES = (ValueError, TypeError, OverflowError, RecursionError)


def decode_text(data: bytes) -> tuple[str, bool]:
    """Decode as UTF-8 (BOM tolerated); fall back to Latin-1. Returns (text, was_utf8)."""
    try:
        return data.decode("utf-8-sig"), True
    except UnicodeDecodeError:
        return data.decode("latin-1"), False


def load_yaml(text: str, path: str) -> Any:
    """Safe-load one YAML document, bounded (see the module docstring); ``ParseError`` with
    a reason and, for syntax errors, the line."""
    root = compose_yaml(text, path)
    return None if root is None else construct_yaml(root, path)


def construct_yaml(root: yaml.Node, path: str) -> Any:
    """The Python value of a node graph ``compose_yaml`` returned (safe types only)."""
    loader = SAFE_LOADER("")
    try:
        return loader.construct_document(root)
    except yaml.YAMLError as exc:
        raise ParseError(path, _yaml_reason(exc)) from None
    except _PARSER_FAILURES as exc:
        raise ParseError(path, f"invalid YAML value: {_short(exc)}") from None
    finally:
        loader.dispose()


def compose_yaml(text: str, path: str) -> yaml.Node | None:
    """The node graph of one YAML document (for rewriters that edit text in place), with the
    same bounds as ``load_yaml``; None for an empty document."""
    try:
        root: yaml.Node | None = yaml.compose(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as exc:
        raise ParseError(path, _yaml_reason(exc)) from None
    except _PARSER_FAILURES as exc:
        raise ParseError(path, f"invalid YAML: {_short(exc)}") from None
    if root is not None:
        _check_expansion(root, path)
    return root


def _yaml_reason(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None) or exc.__class__.__name__
    return f"invalid YAML{where}: {problem}"


def _short(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {str(exc)[:120]}"


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _check_expansion(root: yaml.Node, path: str) -> None:
    """Count the nodes ``root`` expands to (an aliased node once per alias) and its depth.

    Iterative post-order over the graph, memoised by node identity: linear in the written
    nodes, no Python recursion, and it stops at the first node past a bound."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            size[key] = 1 + sum(size[id(k)] for k in kids)
            # collections nest (a scalar is depth 0), counted as JSON brackets are
            nested = max((depth[id(k)] for k in kids), default=0)
            depth[key] = 0 if isinstance(node, yaml.ScalarNode) else 1 + nested
            on_path.discard(key)
            _refuse_over_bounds(size[key] - len(size), depth[key], path)
            continue
        if key in size:
            continue
        if key in on_path:
            raise ParseError(path, "YAML alias refers to a node that contains it (recursive)")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((k, False) for k in _children(node) if id(k) not in size)


def _refuse_over_bounds(added: int, depth: int, path: str) -> None:
    # ``added``: nodes this subtree expands to beyond the distinct nodes seen so far, a lower
    # bound on what aliases add to the whole document.
    if added > MAX_YAML_EXPANSION:
        raise ParseError(
            path, f"YAML aliases expand to more than {MAX_YAML_EXPANSION} extra nodes (alias bomb)"
        )
    if depth > MAX_YAML_DEPTH:
        raise ParseError(path, f"YAML nested deeper than {MAX_YAML_DEPTH} levels")


def dump_yaml(doc: Any) -> bytes:
    """A document amlport writes (v2 asset YAML, run descriptions): keys in their order,
    UTF-8 text as is."""
    text: str = yaml.dump(doc, Dumper=SAFE_DUMPER, sort_keys=False, allow_unicode=True)
    return text.encode("utf-8")


def load_json(text: str, path: str) -> Any:
    """Parse JSON, refusing pathological nesting before the parser recurses into it."""
    if _max_nesting(text) > MAX_JSON_DEPTH:
        raise ParseError(path, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        reason = f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        raise ParseError(path, reason) from None
    except _PARSER_FAILURES as exc:
        raise ParseError(path, f"invalid JSON: {_short(exc)}") from None


# A JSON string, escapes included (an unterminated one runs to the end of the text); unrolled
# so that a long string costs no backtracking.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def _max_nesting(text: str) -> int:
    """The deepest bracket nesting outside strings (an escaped quote does not end one)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_JSON_STRING.sub("", text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest
