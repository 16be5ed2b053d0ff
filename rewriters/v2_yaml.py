"""v2 YAML (jobs, pipelines, components, environments, data, models) and any other YAML.

Every string value that is, or contains, a recognisable URI is rewritten (``path:``,
``environment:``, ``component:``, input/output paths, ``model_uri``, free text such as
``command:``); ``${{…}}`` bindings are not URIs and stay. On import,
``default_datastore:``/``datastore:`` values (``azureml:<ds>`` or ``<ds>``) are datastore names
and go through the datastore map. Locations are YAML paths such as
``/jobs/train/inputs/data/path`` (RFC 6901 escaping).

Comments, order and layout are kept: the file is composed into nodes, and each changed
scalar is replaced in the source text at its own start/end marks (re-quoted in its own style).
The edited text is loaded again and must equal the expected structure; if it does not, the
whole document is re-serialised from the edited nodes (order, anchors and tags kept, comments
lost). A file with no change keeps its exact bytes. Secrets in string values are redacted as
values; a secret elsewhere (a comment, a key) is redacted in the text.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import yaml

from amlport.errors import ParseError
from amlport.rewriters.asset_ref import renamed
from amlport.rewriters.recorder import Decoded, Recorder
from amlport.rewriters.rules import RewriteResult, RewriteRules, Unmappable
from amlport.rewriters.text_log import rewrite_text
from amlport.safeload import compose_yaml, construct_yaml, load_yaml
from amlport.secrets import find_secrets, redact

__all__ = ["rewrite_yaml", "rewrite_yaml_text"]

_STR = "tag:yaml.org,2002:str"
_DATASTORE_KEYS = frozenset({"default_datastore", "datastore"})
_PLAIN_UNSAFE = re.compile(r"^[-?:,\[\]{}#&*!|>'\"%@`\s]|: | #|[,\[\]{}]|\s$")

_PROPERTIES = re.compile(r"(?:[&!][^\s]*[ \t]+)*")
_Edit = tuple[yaml.ScalarNode, str, list[tuple[str, str]], bool]  # node, value, pairs, in_flow


def rewrite_yaml(name: str, data: bytes, rules: RewriteRules) -> RewriteResult:
    return rewrite_yaml_file(name, data, rules, frozenset())


def rewrite_yaml_file(
    name: str, data: bytes, rules: RewriteRules, provenance: frozenset[str]
) -> RewriteResult:
    """Rewrite a YAML file; top-level keys in ``provenance`` are left alone.

    A file that is not valid YAML (or is an alias bomb) is rewritten as plain text, with a
    warning, so its URIs and secrets are still handled.
    """
    decoded = Decoded.of(data)
    rec = Recorder(name, rules)
    try:
        text = rewrite_yaml_text(decoded.text, rec, provenance)
    except ParseError as exc:
        rec = Recorder(name, rules, lenient=True)
        rec.warn("", f"{exc.reason}; rewritten as plain text")
        text = rewrite_text(decoded.text, rec)
    if text == decoded.text:
        return rec.result(data)
    return rec.result(decoded.encode(text, rec))


def rewrite_yaml_text(text: str, rec: Recorder, provenance: frozenset[str] = frozenset()) -> str:
    """Rewrite one YAML document's text. Raises ``ParseError`` if it is not valid YAML."""
    # libyaml's nodes, bounded like every load (syntax, expansion, depth; ``ParseError``):
    # its marks are character offsets too, and the pure-Python composer cost most of a YAML
    # rewrite (and refused tabs libyaml takes).
    root = compose_yaml(text, rec.file)
    if root is None:
        return rec.scrub(text)
    edits: list[_Edit] = []
    _walk(root, "", rec, edits, set(), provenance, in_flow=False)
    new_text = _apply(text, edits) if edits else text
    if edits and not _same(_load(new_text), _construct(root)):
        new_text = yaml.serialize(root, Dumper=yaml.SafeDumper, allow_unicode=True)
    if find_secrets(new_text):  # in a comment or a key: redact the text itself
        new_text = rec.scrub(new_text)
    return new_text


def _walk(
    node: yaml.Node,
    path: str,
    rec: Recorder,
    edits: list[_Edit],
    seen: set[int],
    provenance: frozenset[str],
    in_flow: bool,
) -> None:
    if id(node) in seen:  # an alias: the anchored node was handled where it is defined
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR:
            _scalar(node, path, rec, edits, in_flow)
        return
    flow = in_flow or bool(getattr(node, "flow_style", False))
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, f"{path}/{i}", rec, edits, seen, provenance, flow)
    elif isinstance(node, yaml.MappingNode):
        asset_doc = not path and _is_asset_definition(node)
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            if not path and name in provenance:
                continue
            if asset_doc and name == "name" and isinstance(value, yaml.ScalarNode):
                seen.add(id(value))
                _asset_name(node, value, rec, edits, flow)
                continue
            child = f"{path}/{_escape(name)}"
            if (
                name in _DATASTORE_KEYS
                and isinstance(value, yaml.ScalarNode)
                and _datastore_name(value, child, rec, edits, flow)
            ):
                seen.add(id(value))
                continue
            _walk(value, child, rec, edits, seen, provenance, flow)


def _is_asset_definition(node: yaml.MappingNode) -> bool:
    """A v2 asset's own definition (``$schema: …azuremlschemas…``): its top-level ``name:``
    is the asset's name, which the map's ``assets:`` renames as it renames references."""
    for key, value in node.value:
        if isinstance(key, yaml.ScalarNode) and key.value == "$schema":
            return isinstance(value, yaml.ScalarNode) and "azuremlschemas" in value.value
    return False


def _asset_name(
    doc: yaml.MappingNode, node: yaml.ScalarNode, rec: Recorder, edits: list[_Edit], flow: bool
) -> None:
    """On import, ``name:`` of an asset definition through ``asset_renames`` (with its
    ``version:``: a ``name:version`` key wins over ``name``); the version stays as it is."""
    if rec.rules.exporting or not rec.rules.asset_renames or node.tag != _STR:
        return
    version = next(
        (str(v.value) for k, v in doc.value
         if isinstance(k, yaml.ScalarNode) and k.value == "version"
         and isinstance(v, yaml.ScalarNode)),
        None,
    )  # fmt: skip
    new, _, _ = renamed(node.value, version, None, rec.rules.asset_renames)
    if new != node.value:
        rec.record("/name", node.value, new, "asset_name:import")
        edits.append((node, new, [(node.value, new)], flow))


def _escape(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _scalar(
    node: yaml.ScalarNode, path: str, rec: Recorder, edits: list[_Edit], in_flow: bool
) -> None:
    location = path or "/"
    new, pairs = rec.value(node.value, location)
    clean = rec.scrub(new)
    if clean != node.value:
        edits.append((node, clean, pairs, in_flow))


def _datastore_name(
    node: yaml.ScalarNode, location: str, rec: Recorder, edits: list[_Edit], in_flow: bool
) -> bool:
    """``default_datastore: azureml:<ds>`` on import: map the name. True if handled."""
    value = node.value
    prefix = "azureml:" if value.startswith("azureml:") else ""
    name = value[len(prefix) :]
    if rec.rules.exporting or not name or "${{" in name or "/" in name or ":" in name:
        return False
    try:
        mapped = rec.rules.target_datastore(name, value)
    except Unmappable as exc:
        raise exc.at(f"{rec.file} {location}") from None
    if mapped != name:
        new = prefix + mapped
        rec.record(location, value, new, "datastore_name:import")
        edits.append((node, new, [(value, new)], in_flow))
    return True


def _apply(text: str, edits: list[_Edit]) -> str:
    """Replace each edited scalar in the source text, last first; also update the nodes."""
    for node, value, pairs, in_flow in sorted(edits, key=lambda e: -e[0].start_mark.index):
        start, end = node.start_mark.index, node.end_mark.index
        if node.start_mark.line == node.end_mark.line and node.style in (None, "", "'", '"'):
            # the node's span starts at its anchor/tag, if it has any: keep them
            properties = _PROPERTIES.match(text, start, end)
            kept = properties.group(0) if properties else ""
            source = kept + _render(value, node.style, in_flow)
        else:  # a block or multi-line scalar: substitute inside its source text
            source = text[start:end]
            for old, new in pairs:
                source = source.replace(old, new)
            source = redact(source)
        text = text[:start] + source + text[end:]
        node.value = value
    return text


def _render(value: str, style: str | None, in_flow: bool) -> str:
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    plain = style is None or style == ""
    if plain and value and not _PLAIN_UNSAFE.search(value) and _plain_round_trips(value, in_flow):
        return value
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a YAML double-quoted one


def _plain_round_trips(value: str, in_flow: bool) -> bool:
    doc = f"[{value}]" if in_flow else f"k: {value}"
    try:
        loaded = load_yaml(doc, "value")
    except ParseError:
        return False
    return loaded == ([value] if in_flow else {"k": value})


def _load(text: str) -> Any:
    try:
        return load_yaml(text, "rewritten")
    except ParseError:
        return _Invalid


class _Invalid:
    """Marks text that no longer loads (never equal to a construct)."""


def _construct(root: yaml.Node) -> Any:
    return construct_yaml(root, "document")  # ParseError (as load_yaml) on a bad value


def _same(a: Any, b: Any) -> bool:
    """Equality of loaded YAML, where NaN equals NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)
