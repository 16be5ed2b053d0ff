"""The designer's ``Trained_model`` pointer (storage layout §3.5): one JSON object

    {"Container":…,"SasToken":null,"Uri":"wasbs://<container>@<account>.blob.<sfx>/<rel>",
     "Account":…,"RelativePath":"<rel>","PathType":0,"AmlDataStoreName":"<ds>"}

``AmlDataStoreName`` + ``RelativePath`` are the lineage edge and already neutral.

Export: ``Container`` and ``Account`` become null, ``Uri`` the neutral
``azureml://datastores/<ds>/paths/<rel>``, ``SasToken`` null (a value is counted as redaction
``sas_token`` and never recorded). Import: ``AmlDataStoreName`` is mapped, and ``Container``,
``Account`` and ``Uri`` (``wasbs://…``, the form the designer writes) are filled in from the
target. Key order and the compact one-line shape are kept, so export then import into the
source itself gives back the original bytes.

A pointer that is not valid JSON (truncated) still has its identity fields cleared on export
(by pattern) and its URIs and secrets handled as text, with a warning.
"""

from __future__ import annotations

import json
import re
from typing import Any

from amlport.errors import ParseError
from amlport.model.pointer import POINTER_KEYS
from amlport.model.uris import DatastorePath, short_datastore_uri
from amlport.rewriters.recorder import Decoded, Recorder
from amlport.rewriters.rules import RewriteResult, RewriteRules, Unmappable
from amlport.rewriters.storage_url import blob_uri
from amlport.rewriters.text_log import rewrite_text
from amlport.safeload import load_json
from amlport.secrets import find_secrets

__all__ = ["rewrite_pointer"]

_IDENTITY_KEYS = ("Container", "Account", "Uri", "SasToken")
_HANDLED = frozenset({*_IDENTITY_KEYS, "AmlDataStoreName", "RelativePath"})
_IDENTITY_VALUE = re.compile(
    r'("(?P<key>Container|Account|Uri|SasToken)"\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)(?:"|$)'
)


def rewrite_pointer(name: str, data: bytes, rules: RewriteRules) -> RewriteResult:
    decoded = Decoded.of(data)
    rec = Recorder(name, rules)
    try:
        doc = load_json(decoded.text, name)
    except ParseError as exc:
        return _salvage(decoded, data, rec, exc.reason)
    if not isinstance(doc, dict) or not POINTER_KEYS & doc.keys():
        return _salvage(decoded, data, rec, "not a designer pointer object")
    if rules.exporting:
        _export(doc, rec)
    else:
        _import(doc, rec)
    _other_values(doc, rec)
    text = _dump(doc, decoded.text)
    if find_secrets(text):
        text = rec.scrub(text)
    if text == decoded.text:
        return rec.result(data)
    return rec.result(decoded.encode(text, rec))


def _export(doc: dict[str, Any], rec: Recorder) -> None:
    source = rec.rules.source
    container, account = _str(doc.get("Container")), _str(doc.get("Account"))
    datastore = _str(doc.get("AmlDataStoreName")) or (
        source.datastore_of(container) if container else None
    )
    relative = _str(doc.get("RelativePath"))
    if not datastore or relative is None:
        where = "/AmlDataStoreName" if not datastore else "/RelativePath"
        uri = _str(doc.get("Uri")) or rec.file
        raise Unmappable(uri, f"{rec.file} {where}", "the pointer names no datastore and path")
    if account and source.account and account.lower() != source.account.lower():
        rec.warn("/Account", f"account {account!r} is not the source workspace's account")
    expected = source.container_of(datastore)
    if container and expected and container != expected:
        rec.warn("/Container", f"container {container!r} is not datastore {datastore!r}'s")
    _count_sas(doc, rec)
    neutral = short_datastore_uri(DatastorePath(datastore, relative))
    _set(doc, rec, "AmlDataStoreName", datastore, "pointer:export")
    for key, value in (("Container", None), ("Account", None), ("Uri", neutral)):
        _set(doc, rec, key, value, "pointer:export")
    if "SasToken" in doc:
        doc["SasToken"] = None


def _import(doc: dict[str, Any], rec: Recorder) -> None:
    rules = rec.rules
    datastore, relative = _str(doc.get("AmlDataStoreName")), _str(doc.get("RelativePath"))
    where = f"{rec.file} /AmlDataStoreName"
    if not datastore or relative is None:
        raise Unmappable(rec.file, where, "the pointer names no datastore and path")
    neutral = short_datastore_uri(DatastorePath(datastore, relative))
    target = rules.target
    if target is None or target.account is None:
        raise Unmappable(neutral, where, "the target identity names no storage account")
    try:
        mapped = rules.target_datastore(datastore, neutral)
        container = rules.target_container(mapped, neutral)
    except Unmappable as exc:
        raise exc.at(where) from None
    _count_sas(doc, rec)
    _set(doc, rec, "AmlDataStoreName", mapped, "pointer:import")
    _set(doc, rec, "Container", container, "pointer:import")
    _set(doc, rec, "Account", target.account, "pointer:import")
    uri = blob_uri(target.account, target.endpoint, container, relative)
    _set(doc, rec, "Uri", uri, "pointer:import")
    if "SasToken" in doc:
        doc["SasToken"] = None


def _count_sas(doc: dict[str, Any], rec: Recorder) -> None:
    if doc.get("SasToken") not in (None, ""):
        rec.redactions["sas_token"] += 1


def _set(doc: dict[str, Any], rec: Recorder, key: str, value: str | None, rule: str) -> None:
    if key not in doc and value is None:
        return  # export clears what is there; it adds nothing
    old = doc.get(key)
    if old != value or key not in doc:
        before = "null" if old is None else str(old).partition("?")[0]
        rec.record(f"/{key}", before, "null" if value is None else value, rule)
    doc[key] = value


def _other_values(doc: dict[str, Any], rec: Recorder) -> None:
    """Fields this module does not know: rewrite URIs and redact secrets in string values."""
    for key, value in doc.items():
        if key not in _HANDLED and isinstance(value, str):
            new, _ = rec.value(value, f"/{key}")
            doc[key] = rec.scrub(new)


def _dump(doc: dict[str, Any], original: str) -> str:
    """Same shape as ``original``: compact on one line, or indented if it was multi-line."""
    body = original.strip()
    indent = 2 if "\n" in body else None
    separators = (",", ": ") if indent else (",", ":")
    text = json.dumps(doc, ensure_ascii=False, indent=indent, separators=separators)
    lead = original[: len(original) - len(original.lstrip())]
    trail = original[len(original.rstrip()) :]
    return lead + text + trail


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _salvage(decoded: Decoded, data: bytes, rec: Recorder, reason: str) -> RewriteResult:
    rec.lenient = True
    rec.warn("", f"{reason}; rewritten as plain text")
    text = decoded.text
    if rec.rules.exporting:
        text = _IDENTITY_VALUE.sub(lambda m: _clear(m, rec), text)
    text = rewrite_text(text, rec)
    if text == decoded.text:
        return rec.result(data)
    return rec.result(decoded.encode(text, rec))


def _clear(m: re.Match[str], rec: Recorder) -> str:
    key, value = m["key"], m["value"]
    if key == "SasToken":
        rec.redactions["sas_token"] += 1
    else:
        rec.record(f"/{key}", value.partition("?")[0], "null", "pointer:export")
    return m.group(1) + "null"
