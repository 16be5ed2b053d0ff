"""``rewrite_file``: pick the format rewriter for one file by its name and content.

- a designer pointer (a JSON object with ``RelativePath``/``AmlDataStoreName``, any name; or
  a truncated one: not valid JSON, starting like a pointer) -> ``pointer_json``
- ``MLmodel`` -> ``mlmodel``
- ``*.yml`` / ``*.yaml`` -> ``v2_yaml``
- ``*.txt``, ``*.log``, ``*.json``, ``rslex.log.*`` -> ``text_log``
- anything else: left untouched, except that text (no NUL byte) has its secrets redacted; a
  binary file is never altered, and a secret-looking pattern in it is reported as a warning
  (the export writer also searches every byte it stores: ``amlport.export.writer``).

The file is bounded in size by the caller (it holds the bytes already). A file that is not
valid in its format falls back to the text rewriter with a warning; ``rewrite_file`` raises
only ``Unmappable`` (pointers and YAML: a workspace-bound location with no rule).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from amlport.errors import ParseError
from amlport.model.pointer import looks_like_pointer
from amlport.rewriters.mlmodel import rewrite_mlmodel
from amlport.rewriters.pointer_json import rewrite_pointer
from amlport.rewriters.recorder import Decoded, Recorder
from amlport.rewriters.rules import RewriteResult, RewriteRules
from amlport.rewriters.text_log import rewrite_log
from amlport.rewriters.v2_yaml import rewrite_yaml
from amlport.safeload import load_json
from amlport.secrets import find_secrets_in_bytes, unredacted

__all__ = ["format_of", "needs_rewrite", "rewrite_file"]

_BINARY_NAME = re.compile(
    r"\.(?:parquet|pkl|pickle|joblib|dataset|ilearner|itransform|icluster|png|jpe?g|gif|bmp|"
    r"tiff?|ico|pb|lgb|onnx|pt|pth|ckpt|h5|hdf5|keras|npy|npz|index|bin|zip|gz|tgz|bz2|xz|"
    r"7z|tar|whl|so|dll|exe|pdf|avro|orc|feather|arrow)$"
    r"|\.data-\d+-of-\d+$"
)
_Rewriter = Callable[[str, bytes, RewriteRules], RewriteResult]
_LOG_SUFFIXES = (".txt", ".log", ".json")


def format_of(name: str, data: bytes) -> str:
    """``pointer`` | ``mlmodel`` | ``yaml`` | ``log`` | ``other``."""
    base = posixpath.basename(name.replace("\\", "/"))
    lower = base.lower()
    if looks_like_pointer(data) or _broken_pointer(data):
        return "pointer"
    if base == "MLmodel":
        return "mlmodel"
    if lower.endswith((".yml", ".yaml")):
        return "yaml"
    if lower.endswith(_LOG_SUFFIXES) or lower.startswith("rslex.log."):
        return "log"
    return "other"


def _broken_pointer(data: bytes) -> bool:
    """A truncated pointer (no RelativePath left): its identity fields must still go."""
    head = data[:4096]
    if not head.lstrip().startswith(b"{") or not (b'"Container"' in head or b'"SasToken"' in head):
        return False
    try:  # the bounded loader: a deeply nested "pointer" is broken, not a RecursionError
        load_json(data.decode("utf-8", "replace"), "pointer")
    except ParseError:
        return True
    return False


_REWRITERS: dict[str, _Rewriter] = {
    "pointer": rewrite_pointer,
    "mlmodel": rewrite_mlmodel,
    "yaml": rewrite_yaml,
    "log": rewrite_log,
}


def rewrite_file(
    name: str, data: bytes, rules: RewriteRules, *, bundle_path: str | None = None
) -> RewriteResult:
    """Rewrite one file. ``name`` (its path in the source) picks the format;
    ``bundle_path``, if given, is the file named in changes and warnings instead.
    """
    rewriter = _REWRITERS.get(format_of(name, data), _other)
    return rewriter(bundle_path or name, data, rules)


def needs_rewrite(name: str, size: int) -> bool:
    """Could ``rewrite_file`` change this file? Decided from the name alone, so a caller can
    copy the rest without reading them: False only for formats that are binary by name
    (parquet, pickles, images, archives, model weights). Everything else may hold a URI or a
    secret. ``size`` is accepted for callers that bound what they read; it does not matter here.
    """
    base = posixpath.basename(name.replace("\\", "/")).lower()
    return format_of(name, b"") != "other" or not _BINARY_NAME.search(base)


def _other(name: str, data: bytes, rules: RewriteRules) -> RewriteResult:
    rec = Recorder(name, rules)
    if b"\x00" in data:
        found = find_secrets_in_bytes(data)
        if found:  # worded as the export writer's check of stored bytes: one warning
            rec.warn("", unredacted(found))
        return rec.result(data)
    decoded = Decoded.of(data)
    text = rec.scrub(decoded.text)
    if text == decoded.text:
        return rec.result(data)
    return rec.result(decoded.encode(text, rec))
