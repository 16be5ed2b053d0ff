"""Parse and format every URI form found in an Azure ML workspace's files and logs.

Pure: stdlib only, no I/O. The forms and their examples are catalogued in
``docs/uri-forms.md`` (from ``reference/azureml-storage-layout.md`` §4).

Design notes (the why):

- Each form is one *template* such as ``azureml://datastores/{datastore}/paths/{path}``. The
  same template gives the parsing regex and the formatter, so the two cannot drift apart.
  Within a family every template has a distinct set of placeholders, so ``format_uri`` picks
  the template from the keys of ``ParsedUri.fields``. That makes formatting lossless for
  every text ``parse_uri`` accepts, except that surrounding whitespace is dropped and a root
  written with a trailing ``/`` and nothing after it (``wasbs://c@acct…/``, ``…/mounts/ds/``,
  ``runs:/<id>/``, ``…/outputs/<o>/paths/``, ``…/runs/<id>/artifacts/``) loses that ``/``.
- ``fields`` hold the text exactly as written (percent-encoded or not, original casing such
  as ``resourceGroups``). The neutral keys (``DatastorePath``, ``BlobLocation``,
  ``run_artifact``) hold *decoded* paths (``%20`` -> space) for every ``scheme:`` form; mount
  paths are POSIX paths and are never decoded. ``quote_path``/``short_datastore_uri`` encode
  only what would break a URI in free text (``%``, ``?``, ``#``, whitespace, quotes, ``<>``,
  backslash, ``;``, ``|``, control characters); other Unicode stays readable.
- A query string (SAS!) is split off first, kept in ``ParsedUri.query``, left out of
  ``format_uri`` unless asked for, and never put in a message or ``repr``.
- ``find_uris`` is linear: it walks start markers left to right, bounds each candidate by
  the run of non-delimiter characters, and gives up on a run after a few failed candidates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import quote, unquote

from amlport.errors import AmlportError

__all__ = [
    "FAMILIES",
    "BlobLocation",
    "DatastorePath",
    "ParsedUri",
    "UriError",
    "format_uri",
    "parse_uri",
    "quote_path",
    "short_datastore_uri",
    "with_fields",
]

# Kept local (not imported from model.workspace) so the two modules can import each other.
ARTIFACT_DATASTORE = "workspaceartifactstore"
_DOUBLE = "azureml_double_prefix"
_MAX_URI_LEN = 8192  # blob names are <= 1024 chars; a SAS query adds a few hundred
_MAX_FAILURES_PER_RUN = 16


class UriError(AmlportError, ValueError):
    """A text is not a recognised URI, or fields cannot be formatted into one."""

    def __init__(self, uri: str, reason: str) -> None:
        self.uri = _safe_for_message(uri)
        self.reason = reason
        super().__init__(f"{self.uri!r}: {reason}")

    def __reduce__(self) -> tuple[type[UriError], tuple[str, str]]:
        return (UriError, (self.uri, self.reason))


def _safe_for_message(text: str) -> str:
    head = text.split("?", 1)[0]
    return head if len(head) <= 200 else head[:200] + "…"


@dataclass(frozen=True)
class DatastorePath:
    """The neutral, workspace-independent key: a path inside a named datastore."""

    datastore: str
    path: str  # no leading '/', trailing '/' preserved as given

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", self.path.lstrip("/"))


@dataclass(frozen=True)
class BlobLocation:
    """A physical storage location. ``endpoint`` is the cloud suffix (Azurite: host:port)."""

    account: str
    container: str  # container or ADLS filesystem / file share
    path: str
    service: str = "blob"  # blob | dfs | file
    endpoint: str = "core.windows.net"


@dataclass(frozen=True, repr=False)
class ParsedUri:
    """One parsed URI. Equality ignores ``raw``; ``fields`` is read-only."""

    family: str
    raw: str = field(compare=False)
    fields: Mapping[str, str]
    query: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))

    def __hash__(self) -> int:
        return hash((self.family, tuple(sorted(self.fields.items())), self.query))

    def __repr__(self) -> str:
        query = "None" if self.query is None else "<redacted>"
        return f"ParsedUri(family={self.family!r}, fields={dict(self.fields)!r}, query={query})"

    def __reduce__(self) -> tuple[type[ParsedUri], tuple[str, str, dict[str, str], str | None]]:
        return (ParsedUri, (self.family, self.raw, dict(self.fields), self.query))

    @property
    def datastore_path(self) -> DatastorePath | None:
        return _datastore_path(self)

    @property
    def blob_location(self) -> BlobLocation | None:
        return _blob_location(self)

    @property
    def run_artifact(self) -> tuple[str, str] | None:
        """``(run_id, artifact_path)`` inside the run's ``ExperimentRun/dcid.<run_id>/``."""
        return _run_artifact(self)


# --------------------------------------------------------------------------- templates

_PLACEHOLDER = re.compile(r"\{(\w+)\}")

# Pattern of each placeholder unless a form overrides it; anything else is one segment.
_PARTS: dict[str, str] = {
    "path": r".*",
    "subpath": r".*",
    "artifact_path": r".*",
    "artifacts_tail": r"(?:/.*)?",
    "rg_segment": r"resource[gG]roups",
    "providers": r"(?:[Pp]roviders/[Mm]icrosoft\.[Mm]achine[Ll]earning[Ss]ervices/)?",
    "account": r"[A-Za-z0-9-]+",
    "container": r"[^/@]+",
    "endpoint": r"core(?:\.[A-Za-z0-9-]+)+|fabric\.microsoft\.com",
    "region": r"[A-Za-z0-9-]+",
    "api_domain": r"azureml\.ms|ml\.azure\.(?:cn|us)",
    "api_version": r"v\d+(?:\.\d+)*",
    "root": r"/mnt|/scratch",
    "job_hex": r"[0-9a-f]{32}",
    "input_prefix": r"(?:INPUT_)?",
}
_SEGMENT = r"[^/]+"

_SCOPE = (
    "subscriptions/{subscription}/{rg_segment}/{resource_group}/{providers}workspaces/{workspace}"
)
_TRACKING = "{scheme}://{region}.api.{api_domain}/mlflow/{api_version}/" + _SCOPE
_EXP_RUN = "/experiments/{experiment}/runs/{run_id}"
_V1 = "/mnt/batch/tasks/shared/LS_root/jobs/{workspace}/azureml/{run_id}"
_V2 = "{root}/azureml/cr/j/{job_hex}/cap/data-capability/wd/{input_prefix}{port}"
_REGISTRY = "azureml://registries/{registry}/{asset_type}/{name}"

_HTTP = {"scheme": r"https?"}
_AZURITE = {
    "scheme": r"https?",
    "host": r"(?:127\.0\.0\.1|localhost|\[::1\]|azurite)(?::\d{1,5})?",
    "account": r"[a-z0-9]{3,24}",
    "container": r"\$root|\$logs|\$web|[a-z0-9][a-z0-9-]{1,61}[a-z0-9]",
}
_REF = {"name": r"\w[\w.-]*", "version": r"[\w.-]+", "label": r"[\w.-]+"}
_NO_OVERRIDE: dict[str, str] = {}


_Spec = tuple[str, str, Mapping[str, str]]


def _with_path(family: str, root: str, overrides: Mapping[str, str]) -> list[_Spec]:
    """A form with a path, then the same form naming only its root."""
    return [(family, root + "/{path}", overrides), (family, root, overrides)]


# Order matters: the first template that matches the whole text wins.
_SPECS: list[_Spec] = [
    ("azureml_datastore_short", "azureml://datastores/{datastore}/paths/{path}", _NO_OVERRIDE),
    (
        "azureml_datastore_output",
        "azureml://datastores/{datastore}/{path}",
        {"path": "ExperimentRun/.*"},
    ),
    (
        "azureml_datastore_long",
        f"azureml://{_SCOPE}/datastores/{{datastore}}/paths/{{path}}",
        _NO_OVERRIDE,
    ),
    (
        "azureml_asset_id",
        f"azureml://{_SCOPE}/{{asset_type}}/{{name}}/versions/{{version}}",
        _NO_OVERRIDE,
    ),
    ("azureml_workspace", f"azureml://{_SCOPE}", _NO_OVERRIDE),
    (
        "azureml_asset_id",
        "azureml://locations/{location}/workspaces/{workspace_id}/{asset_type}/{name}"
        "/versions/{version}",
        _NO_OVERRIDE,
    ),
    (
        "azureml_asset_id",
        "azureml://{asset_type}/{name}/versions/{version}",
        {"asset_type": "models|data"},
    ),
    ("azureml_job_output", "azureml://jobs/{job}/outputs/{output}/paths/{path}", _NO_OVERRIDE),
    ("azureml_job_output", "azureml://jobs/{job}/outputs/{output}/{subpath}", _NO_OVERRIDE),
    ("azureml_job_output", "azureml://jobs/{job}/outputs/{output}", _NO_OVERRIDE),
    ("azureml_registry", _REGISTRY + "/versions/{version}", _NO_OVERRIDE),
    ("azureml_registry", _REGISTRY + "/labels/{label}", _NO_OVERRIDE),
    ("azureml_registry", _REGISTRY, _NO_OVERRIDE),
    (
        "mlflow_tracking",
        _TRACKING + _EXP_RUN + "/artifacts{artifacts_tail}",
        {"scheme": "azureml|https"},
    ),
    ("mlflow_tracking", _TRACKING + _EXP_RUN, {"scheme": "azureml|https"}),
    ("mlflow_tracking", _TRACKING, {"scheme": "azureml|https"}),
    (
        "azureml_arm_id",
        f"azureml:/{_SCOPE}/{{asset_type}}/{{name}}/versions/{{version}}",
        _NO_OVERRIDE,
    ),
    ("azureml_arm_id", f"azureml:/{_SCOPE}/{{asset_type}}/{{name}}", _NO_OVERRIDE),
    ("azureml_ref", "azureml:{name}:{version}", _REF),
    ("azureml_ref", "azureml:{name}@{label}", _REF),
    ("azureml_ref", "azureml:{name}", _REF),
    *_with_path("wasb", "{scheme}://{container}@{account}.blob.{endpoint}", {"scheme": "wasbs?"}),
    *_with_path("abfs", "{scheme}://{container}@{account}.dfs.{endpoint}", {"scheme": "abfss?"}),
    *_with_path("blob_https", "{scheme}://{account}.blob.{endpoint}/{container}", _HTTP),
    *_with_path("blob_https", "{scheme}://{host}/{account}/{container}", _AZURITE),
    *_with_path("dfs_https", "{scheme}://{account}.dfs.{endpoint}/{container}", _HTTP),
    *_with_path("file_https", "{scheme}://{account}.file.{endpoint}/{container}", _HTTP),
    *_with_path("adl", "adl://{account}.azuredatalakestore.net", _NO_OVERRIDE),
    ("runs", "runs:/{run_id}/{artifact_path}", _NO_OVERRIDE),
    ("runs", "runs:/{run_id}", _NO_OVERRIDE),
    ("models", "models:/{name}@{alias}", {"name": "[^/@]+"}),
    ("models", "models:/{name}/{version}", {"version": r"\d+"}),
    ("models", "models:/{name}/{stage}", _NO_OVERRIDE),
    ("models", "models:/{model_id}", {"model_id": "[^/@]+"}),
    ("mlflow_artifacts", "mlflow-artifacts://{host}/{path}", {"host": "[^/]*"}),
    ("mlflow_artifacts", "mlflow-artifacts:/{path}", _NO_OVERRIDE),
    ("aml_artifact", "aml://{kind}/{path}", {"kind": "artifact|artifactId"}),
    ("mount_v1", _V1 + "/mounts/{datastore}/{path}", _NO_OVERRIDE),
    ("mount_v1", _V1 + "/mounts/{datastore}", _NO_OVERRIDE),
    ("mount_v1", _V1 + "/wd/{path}", _NO_OVERRIDE),
    ("mount_v1", _V1 + "/wd", _NO_OVERRIDE),
    *_with_path("mount_v2", _V2, _NO_OVERRIDE),
]


@dataclass(frozen=True)
class _Form:
    family: str
    template: str
    regex: re.Pattern[str]
    keys: frozenset[str]
    lead: str  # literal text before the first placeholder, for a cheap pre-filter
    schemes: frozenset[str]  # lower-case schemes it can start with; "/" for mount paths

    def fill(self, values: Mapping[str, str]) -> str:
        return _PLACEHOLDER.sub(lambda m: values[m.group(1)], self.template)


def _compile(family: str, template: str, overrides: Mapping[str, str]) -> _Form:
    pieces = _PLACEHOLDER.split(template)  # literal, name, literal, name, ..., literal
    regex = "".join(
        re.escape(piece)
        if i % 2 == 0
        else f"(?P<{piece}>(?:{overrides.get(piece, _PARTS.get(piece, _SEGMENT))}))"
        for i, piece in enumerate(pieces)
    )
    keys = frozenset(pieces[1::2])
    schemes = _schemes_of(template, overrides)
    flags = re.DOTALL | (re.IGNORECASE if family in _CASELESS_HOSTS else 0)
    return _Form(family, template, re.compile(regex, flags), keys, pieces[0], schemes)


# Storage URLs: scheme and host are case-insensitive; paths are matched by `.*` anyway.
_CASELESS_HOSTS = frozenset({"wasb", "abfs", "blob_https", "dfs_https", "file_https", "adl"})
_VARIABLE_SCHEMES = ("wasb", "wasbs", "abfs", "abfss", "http", "https", "azureml")


def _schemes_of(template: str, overrides: Mapping[str, str]) -> frozenset[str]:
    if template.startswith("{scheme}"):
        pattern = overrides["scheme"]
        return frozenset(s for s in _VARIABLE_SCHEMES if re.fullmatch(pattern, s, re.IGNORECASE))
    return frozenset({_scheme_key(template)})


def _scheme_key(text: str) -> str:
    """What selects the candidate forms of a text: its lower-case scheme, or "/" for paths."""
    return "/" if text.startswith(("/", "{root}")) else text.partition(":")[0].lower()


_FORMS: tuple[_Form, ...] = tuple(_compile(*spec) for spec in _SPECS)
_BY_KEYS: dict[tuple[str, frozenset[str]], _Form] = {}
_BY_SCHEME: dict[str, list[_Form]] = {}
for _form in _FORMS:
    _BY_KEYS.setdefault((_form.family, _form.keys), _form)
    for _scheme in _form.schemes:
        _BY_SCHEME.setdefault(_scheme, []).append(_form)

# A form that names only a root (``…/mounts/<ds>``, ``wasbs://c@acct…``, ``runs:/<id>``) has
# a sibling with a path; it parses with that path key set to "", and "" formats back to it.
_PATH_KEYS = ("path", "artifact_path")
_IMPLICIT_EMPTY: dict[tuple[str, frozenset[str]], str] = {
    (form.family, form.keys): key
    for form in _FORMS
    for key in _PATH_KEYS
    if key not in form.keys and (form.family, form.keys | {key}) in _BY_KEYS
}

FAMILIES: tuple[str, ...] = (*dict.fromkeys(f.family for f in _FORMS), _DOUBLE)

# --------------------------------------------------------------------------- field hooks
# Some fields are nicer to use than the literal text they come from; these hooks translate.

_Hook = Callable[[dict[str, str]], None]


def _decode_mount_v2(f: dict[str, str]) -> None:
    f["is_input"] = "true" if f.pop("input_prefix") else "false"


def _encode_mount_v2(f: dict[str, str]) -> None:
    f["input_prefix"] = "INPUT_" if f.pop("is_input", "false") == "true" else ""


def _decode_tracking(f: dict[str, str]) -> None:
    if "artifacts_tail" in f:
        f["artifact_path"] = f.pop("artifacts_tail")[1:]


def _encode_tracking(f: dict[str, str]) -> None:
    if "artifact_path" in f:
        path = f.pop("artifact_path")
        f["artifacts_tail"] = f"/{path}" if path else ""


_DECODERS: dict[str, _Hook] = {"mount_v2": _decode_mount_v2, "mlflow_tracking": _decode_tracking}
_ENCODERS: dict[str, _Hook] = {"mount_v2": _encode_mount_v2, "mlflow_tracking": _encode_tracking}

# --------------------------------------------------------------------------- parse / format


def parse_uri(text: str) -> ParsedUri:
    """Parse any supported URI or compute mount path. Raises ``UriError`` if unrecognised."""
    body, query = _split_query(text)
    if not body:
        raise UriError(text, "empty URI")
    found = _match(body)
    if found is None:
        raise UriError(text, "not a recognised URI form (see docs/uri-forms.md)")
    return ParsedUri(found[0], text, found[1], query)


def _split_query(text: str) -> tuple[str, str | None]:
    """Surrounding whitespace is ignored; everything after the first '?' is the query."""
    body, sep, query = text.strip().partition("?")
    return body.rstrip(), (query if sep else None)


def _match(body: str) -> tuple[str, dict[str, str]] | None:
    if body.startswith("azureml:azureml://"):
        return _match_double(body)
    for form in _BY_SCHEME.get(_scheme_key(body), ()):
        if not body.startswith(form.lead):
            continue
        m = form.regex.fullmatch(body)
        if m is not None:
            fields = m.groupdict()
            if (implicit := _IMPLICIT_EMPTY.get((form.family, form.keys))) is not None:
                fields[implicit] = ""
            _DECODERS.get(form.family, _no_hook)(fields)
            return form.family, fields
    return None


def _match_double(body: str) -> tuple[str, dict[str, str]] | None:
    inner = _match(body[len("azureml:") :])
    if inner is None or inner[0] == _DOUBLE:
        return None
    return _DOUBLE, {**inner[1], "inner_family": inner[0]}


def _no_hook(fields: dict[str, str]) -> None:
    return None


def format_uri(parsed: ParsedUri, *, keep_query: bool = False) -> str:
    """Canonical text of ``parsed``; the query (SAS) is added only with ``keep_query``."""
    body = _format_body(parsed.family, dict(parsed.fields))
    if keep_query and parsed.query is not None:
        return f"{body}?{parsed.query}"
    return body


def _format_body(family: str, fields: dict[str, str]) -> str:
    if family == _DOUBLE:
        inner_family = fields.pop("inner_family", "")
        return "azureml:" + _format_body(inner_family, fields)
    _ENCODERS.get(family, _no_hook)(fields)
    _drop_implicit_empty(family, fields)
    form = _BY_KEYS.get((family, frozenset(fields)))
    if form is None:
        raise UriError(
            f"<{family}>", f"no form of this family has exactly the fields {sorted(fields)}"
        )
    return form.fill(fields)


def _drop_implicit_empty(family: str, fields: dict[str, str]) -> None:
    for key in _PATH_KEYS:
        if fields.get(key) == "":
            shorter = frozenset(fields) - {key}
            if _IMPLICIT_EMPTY.get((family, shorter)) == key:
                del fields[key]
                return


def with_fields(parsed: ParsedUri, **changes: str) -> ParsedUri:
    """Return ``parsed`` with some fields replaced; the result must still parse as its family.

    Values are URI text (encode a plain path with ``quote_path``). Raises ``UriError`` when
    the change cannot be expressed in this family.
    """
    wanted = {**parsed.fields, **changes}
    text = format_uri(ParsedUri(parsed.family, parsed.raw, wanted, parsed.query))
    body, _ = _split_query(text)  # as parse_uri will see it
    found = _match(body)
    if found is None or found[0] != parsed.family:
        raise UriError(text, f"changing {sorted(changes)} does not give a {parsed.family} URI")
    lost = sorted(k for k in wanted.keys() | found[1].keys() if wanted.get(k) != found[1].get(k))
    if body != text or lost:
        raise UriError(text, f"fields {lost} do not survive formatting as {parsed.family}")
    raw = text if parsed.query is None else f"{text}?{parsed.query}"
    return ParsedUri(parsed.family, raw, found[1], parsed.query)


def quote_path(path: str) -> str:
    """Percent-encode what would break a URI path in free text; keep other Unicode readable."""
    return _UNSAFE_IN_PATH.sub(lambda m: quote(m.group(), safe=""), path)


_UNSAFE_IN_PATH = re.compile(r"[%?#\s\"'<>`\\;|\x00-\x1f\x7f-\x9f]")


def short_datastore_uri(dp: DatastorePath) -> str:
    """``azureml://datastores/<ds>/paths/<path>``; its ``datastore_path`` equals ``dp``."""
    return f"azureml://datastores/{dp.datastore}/paths/{quote_path(dp.path)}"


# --------------------------------------------------------------------------- neutral keys

_DATASTORE_FAMILIES = frozenset(
    {"azureml_datastore_short", "azureml_datastore_long", "azureml_datastore_output"}
)
_SERVICES = {
    "wasb": "blob",
    "blob_https": "blob",
    "abfs": "dfs",
    "dfs_https": "dfs",
    "file_https": "file",
}
_EXPERIMENT_RUN = re.compile(r"ExperimentRun/dcid\.(?P<run>[^/]+)(?:/(?P<path>.*))?", re.DOTALL)
_MLFLOW_ARTIFACT = re.compile(r"/?[^/]+/(?P<run>[^/]+)/artifacts(?:/(?P<path>.*))?", re.DOTALL)


def _inner(parsed: ParsedUri) -> ParsedUri:
    fields = dict(parsed.fields)
    family = fields.pop("inner_family")
    return ParsedUri(family, parsed.raw.strip()[len("azureml:") :], fields, parsed.query)


def _datastore_path(parsed: ParsedUri) -> DatastorePath | None:
    f = parsed.fields
    if parsed.family == _DOUBLE:
        return _inner(parsed).datastore_path
    if parsed.family in _DATASTORE_FAMILIES:
        return DatastorePath(f["datastore"], unquote(f["path"]))
    if parsed.family == "mount_v1" and "datastore" in f:
        return DatastorePath(f["datastore"], f.get("path", ""))  # a file system path: no decoding
    return None


def _blob_location(parsed: ParsedUri) -> BlobLocation | None:
    service = _SERVICES.get(parsed.family)
    if service is None:
        return None
    f = parsed.fields
    endpoint = f.get("endpoint") or f["host"]
    path = unquote(f.get("path", ""))
    return BlobLocation(f["account"].lower(), f["container"], path, service, endpoint.lower())


def _experiment_run(path: str) -> tuple[str, str] | None:
    m = _EXPERIMENT_RUN.fullmatch(path)
    return None if m is None else (m["run"], m["path"] or "")


def _run_artifact(parsed: ParsedUri) -> tuple[str, str] | None:
    f = parsed.fields
    family = parsed.family
    if family == "runs":
        return f["run_id"], unquote(f.get("artifact_path", ""))
    if family == "azureml_job_output":
        if f["output"] != "artifacts":
            return None
        return f["job"], unquote(f.get("path", f.get("subpath", "")))
    if family in ("aml_artifact", "azureml_datastore_output"):
        return _experiment_run(unquote(f["path"]))
    if family == "mlflow_tracking":
        return (f["run_id"], unquote(f["artifact_path"])) if "artifact_path" in f else None
    if family == "mlflow_artifacts":
        m = _MLFLOW_ARTIFACT.fullmatch(unquote(f["path"]))
        return None if m is None else (m["run"], m["path"] or "")
    dp = parsed.datastore_path
    if dp is not None and dp.datastore.lower() == ARTIFACT_DATASTORE:
        return _experiment_run(dp.path)
    return None
