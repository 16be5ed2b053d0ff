"""Parse the small files Azure ML leaves in storage (pure: bytes in, records out).

Each parser raises ``ParseError(path, reason)`` on malformed input; the walker turns that into
a finding and goes on. Every document is parsed by ``amlport.safeload`` (the one guarded
loader): YAML bounded by the nodes it expands to and by depth, JSON by nesting, and any
failure of the parser itself (a ``ValueError``, a ``RecursionError``) is a ``ParseError``
there, so no content of a file can end a scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amlport.errors import ParseError
from amlport.model.inventory import Loc
from amlport.model.pointer import POINTER_KEYS, looks_like_pointer
from amlport.safeload import decode_text, load_json, load_yaml

__all__ = ["POINTER_KEYS", "decode_text", "load_json", "load_yaml", "looks_like_pointer"]


@dataclass(frozen=True)
class PointerDoc:
    datastore: str | None
    relative_path: str | None
    container: str | None
    account: str | None
    has_sas: bool


def parse_pointer(text: str, path: str) -> PointerDoc:
    """The designer's serialised AzureBlobReference (see storage layout §3.5)."""
    doc = load_json(text, path)
    if not isinstance(doc, dict) or not POINTER_KEYS & doc.keys():
        raise ParseError(path, "not a designer pointer object (no RelativePath/AmlDataStoreName)")
    sas = doc.get("SasToken")
    return PointerDoc(
        datastore=_str_or_none(doc.get("AmlDataStoreName")),
        relative_path=_str_or_none(doc.get("RelativePath")),
        container=_str_or_none(doc.get("Container")),
        account=_str_or_none(doc.get("Account")),
        has_sas=bool(sas),
    )


def pointer_target(doc: PointerDoc, container_datastore: str | None) -> Loc | None:
    """The folder a pointer names, as a datastore location (the lineage edge)."""
    datastore = doc.datastore or container_datastore
    if not datastore or doc.relative_path is None:
        return None
    return Loc(datastore, doc.relative_path.strip("/"))


def _str_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_meta(text: str, path: str) -> dict[str, Any]:
    """A designer ``_meta.yaml``; ``type`` is required (as azureml.studio requires it)."""
    doc = load_yaml(text, path)
    if not isinstance(doc, dict) or "type" not in doc:
        raise ParseError(path, "designer _meta.yaml without the required 'type' field")
    return doc


# data_type.json "Id" → designer port type (storage layout §3.3).
LEGACY_TYPES = {
    "Dataset": "DataFrameDirectory",
    "ILearnerDotNet": "ILearner",
    "IFilterDotNet": "ModelDirectory",
    "IClusterDotNet": "ModelDirectory",
    "IRecommenderDotNet": "ModelDirectory",
    "ITransformDotNet": "TransformationDirectory",
    "GenericCSV": "CsvFile",
    "GenericTSV": "CsvFile",
    "GenericFolder": "AnyDirectory",
    "Any": "AnyDirectory",
    "GenericCSVDirectory": "AnyDirectory",
    "Zip": "ZipFile",
    "PlainText": "AnyFile",
    "GenericBinary": "AnyFile",
    "GenericHtml": "AnyFile",
}


def parse_data_type(text: str, path: str) -> str:
    doc = load_json(text, path)
    if not isinstance(doc, dict) or not isinstance(doc.get("Id"), str):
        raise ParseError(path, "data_type.json without a string 'Id'")
    return str(doc["Id"])


# An MLmodel signature is summarised, never kept whole: a model with 100,000 columns or a
# 1 MB column name must not reach the inventory, the lineage graph or the manifest as is.
SIGNATURE_PARTS = ("inputs", "outputs", "params")
MAX_SIGNATURE_ENTRIES = 50
MAX_SIGNATURE_TEXT = 120


@dataclass(frozen=True)
class SignatureDoc:
    """An MLmodel ``signature``: ``name: type`` per column, tensor or parameter, per part
    (``inputs``, ``outputs``, ``params``), at most ``MAX_SIGNATURE_ENTRIES`` each (then a
    ``… N more`` entry), and the parts that could not be read with the reason."""

    parts: dict[str, list[str]]
    problems: dict[str, str]

    def to_dict(self) -> dict[str, list[str]]:
        return dict(self.parts)


@dataclass(frozen=True)
class MLmodelDoc:
    run_id: str | None
    artifact_path: str | None
    flavors: list[str]
    model_id: str | None
    env_file: str | None
    signature: SignatureDoc | None = None


def parse_mlmodel(text: str, path: str) -> MLmodelDoc:
    doc = load_yaml(text, path)
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise ParseError(path, "MLmodel without a 'flavors' mapping")
    flavors = doc["flavors"]
    pyfunc = flavors.get("python_function") or {}
    env = pyfunc.get("env") if isinstance(pyfunc, dict) else None
    if isinstance(env, dict):
        env = env.get("conda")
    return MLmodelDoc(
        run_id=_str_or_none(doc.get("run_id")),
        artifact_path=_str_or_none(doc.get("artifact_path")),
        flavors=sorted(str(k) for k in flavors),
        model_id=_str_or_none(doc.get("model_id")),
        env_file=_str_or_none(env),
        signature=parse_signature(doc.get("signature"), path),
    )


def parse_signature(value: Any, path: str) -> SignatureDoc | None:
    """MLflow writes each part as a JSON string (``ModelSignature.to_dict``); a list is read
    too. A part that does not parse (bounded JSON: nesting over 64 is refused) or has
    another shape is reported in ``problems``; the rest of the model is still read."""
    if value is None:
        return None
    if not isinstance(value, dict):
        return SignatureDoc({}, {"signature": f"is a {type(value).__name__}, not a mapping"})
    parts: dict[str, list[str]] = {}
    problems: dict[str, str] = {}
    for part in SIGNATURE_PARTS:
        raw = value.get(part)
        if raw is None:
            continue
        try:
            entries = load_json(raw, f"{path}: signature {part}") if isinstance(raw, str) else raw
            if not isinstance(entries, list):
                raise ParseError(path, f"is a {type(entries).__name__}, not a list of specs")
            parts[part] = _signature_entries(entries)
        except ParseError as exc:
            problems[part] = _clip_text(exc.reason)
    return SignatureDoc(parts, problems)


def _signature_entries(entries: list[Any]) -> list[str]:
    out = [_spec_text(e) for e in entries[:MAX_SIGNATURE_ENTRIES]]
    if len(entries) > MAX_SIGNATURE_ENTRIES:
        out.append(f"… {len(entries) - MAX_SIGNATURE_ENTRIES} more")
    return out


def _spec_text(spec: Any) -> str:
    """``name: type`` of one ColSpec / TensorSpec / ParamSpec (``type`` alone when unnamed)."""
    if not isinstance(spec, dict):
        return _clip_text(str(spec))
    kind = _type_text(spec)
    name = spec.get("name")
    text = kind if name is None else f"{name}: {kind}"
    if spec.get("required") is False or spec.get("optional") is True:
        text += " (optional)"
    return _clip_text(text)


def _type_text(spec: dict[str, Any]) -> str:
    kind = spec.get("type")
    if kind == "tensor":
        tensor = spec.get("tensor-spec")
        if isinstance(tensor, dict):
            shape = tensor.get("shape")
            dims = ",".join(str(d) for d in shape) if isinstance(shape, list) else "?"
            return f"tensor<{tensor.get('dtype')}>[{dims}]"
        return "tensor"
    if kind == "array" and isinstance(spec.get("items"), dict):
        return f"array<{_type_text(spec['items'])}>"
    if kind == "map" and isinstance(spec.get("values"), dict):
        return f"map<string,{_type_text(spec['values'])}>"
    if kind == "object" and isinstance(spec.get("properties"), dict):
        return f"object<{len(spec['properties'])} properties>"
    return str(kind)


def _clip_text(text: str) -> str:
    return text if len(text) <= MAX_SIGNATURE_TEXT else text[: MAX_SIGNATURE_TEXT - 1] + "…"
