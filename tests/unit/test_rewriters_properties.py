"""Properties of every format rewriter: no generated secret (SAS token, account key,
connection string, bearer token) survives a pointer, YAML, MLmodel or log, in either
direction; outputs stay valid JSON/YAML and only URIs change."""

from __future__ import annotations

import json
import string
from typing import Any

import yaml
from helpers.rewriter_designer import (
    ACCOUNT,
    EXPORT,
    LONG,
    RUN,
    SRC,
    VERIFIED_POINTER,
    WASBS,
)
from helpers.rewriter_identities import same_names
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlport.rewriters import Identity, RewriteRules, rewrite_file, rewrite_uri
from amlport.secrets import find_secrets

_B64 = string.ascii_letters + string.digits + "+/"
_SIG = st.text(alphabet=_B64, min_size=24, max_size=44).map(lambda s: s + "%3D")
_KEY = st.text(alphabet=_B64, min_size=40, max_size=86).map(lambda s: s + "==")
_TOKEN = st.text(alphabet=string.ascii_letters + string.digits + "-._", min_size=20, max_size=60)


@st.composite
def _secrets(draw: st.DrawFn) -> dict[str, str]:
    sig, key, token = draw(_SIG), draw(_KEY), draw(_TOKEN)
    sas = f"sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig={sig}"
    return {
        "sig": sig,
        "key": key,
        "token": token,
        "sas": sas,
        "conn": f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={key};"
        "EndpointSuffix=core.windows.net",
        "conn_sas": f"BlobEndpoint=https://{ACCOUNT}.blob.core.windows.net/;"
        f"SharedAccessSignature={sas}",
        "bearer": f"Authorization: Bearer {token}",
    }


def _values(s: dict[str, str]) -> tuple[str, ...]:
    return (s["sig"], s["key"], s["token"])


_RULES = st.sampled_from([EXPORT, RewriteRules("import", SRC, SRC, datastore_map=same_names(SRC))])
_QUICK = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_clean(data: bytes, s: dict[str, str]) -> None:
    text = data.decode("utf-8", "replace")
    assert not find_secrets(text)
    for value in _values(s):
        assert value not in text


@_QUICK
@given(_secrets(), _RULES)
def test_no_secret_survives_a_pointer(s: dict[str, str], rules: RewriteRules) -> None:
    doc = json.loads(VERIFIED_POINTER)
    doc["SasToken"] = s["sas"]
    doc["Uri"] = f"{doc['Uri']}?{s['sas']}"
    doc["Note"] = s["bearer"]
    result = rewrite_file("Trained_model", json.dumps(doc, separators=(",", ":")).encode(), rules)
    json.loads(result.data)
    _assert_clean(result.data, s)


@_QUICK
@given(_secrets(), _RULES)
def test_no_secret_survives_yaml_or_mlmodel(s: dict[str, str], rules: RewriteRules) -> None:
    body = {
        "name": "x",
        "settings": {"conn": s["conn"], "conn_sas": s["conn_sas"]},
        "inputs": {
            "data": {"path": f"https://{ACCOUNT}.blob.core.windows.net/azureml/a.csv?{s['sas']}"}
        },
        "command": f"curl -H '{s['bearer']}' {WASBS}x",
        "metadata": {"note": f"key AccountKey={s['key']}"},
    }
    text = f"# {s['bearer']}\n" + yaml.safe_dump(body, sort_keys=False)
    for name in ("job.yml", "MLmodel"):
        result = rewrite_file(name, text.encode(), rules)
        loaded = yaml.safe_load(result.data)
        assert loaded["name"] == "x"
        _assert_clean(result.data, s)


@_QUICK
@given(_secrets(), _RULES)
def test_no_secret_survives_a_log(s: dict[str, str], rules: RewriteRules) -> None:
    lines = [
        f"DEBUG using connection string {s['conn']}",
        f"INFO GET https://{ACCOUNT}.blob.core.windows.net/azureml/x.txt?{s['sas']}",
        f"INFO GET https://other01.blob.core.windows.net/pub/x.txt?{s['sas']}",
        f"headers: {s['bearer']}",
        f"env AZURE_STORAGE_CONNECTION_STRING='{s['conn_sas']}'",
        f"retry sig={s['sig']} SharedAccessSignature={s['sas']}",
    ]
    result = rewrite_file("std_log.txt", "\n".join(lines).encode(), rules)
    _assert_clean(result.data, s)
    assert sum(result.redactions.values()) >= len(lines)


_URIS = [
    f"{WASBS}data/a.csv",
    f"{LONG}UI/x/",
    f"runs:/{RUN}/model",
    "azureml:env:3",
    "https://other01.blob.core.windows.net/pub/p.csv",
    "azureml://registries/azureml/models/m/versions/1",
]
_TEXT = st.text(alphabet=st.sampled_from(list("ab :#'\"-{}[],&*!|>%@é\n")), max_size=12)
_LEAF = st.one_of(st.sampled_from(_URIS), _TEXT, st.integers(), st.none())
_TREE = st.recursive(
    _LEAF,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(alphabet="abc_/~", min_size=1, max_size=5), children, max_size=4),
    ),
    max_leaves=12,
)


def _expected(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _expected(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expected(v) for v in node]
    if isinstance(node, str) and node in _URIS:
        change = rewrite_uri(node, EXPORT)
        return node if change is None else change.replacement
    return node


@settings(max_examples=150, deadline=None)
@given(_TREE, st.sampled_from([None, False, True]), st.sampled_from([None, "'", '"']))
def test_yaml_output_is_valid_and_only_uris_change(
    tree: Any, flow: bool | None, style: str | None
) -> None:
    doc = {"root": tree}
    text = yaml.safe_dump(doc, default_flow_style=flow, default_style=style, allow_unicode=True)
    result = rewrite_file("x.yml", text.encode(), EXPORT)
    assert yaml.safe_load(result.data) == _expected(doc)


@settings(max_examples=150, deadline=None)
@given(
    st.text(min_size=1, max_size=30).filter(lambda s: s.strip("/")),
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,15}", fullmatch=True),
)
def test_pointer_output_is_valid_json(relative: str, datastore: str) -> None:
    doc = json.loads(VERIFIED_POINTER)
    doc["RelativePath"], doc["AmlDataStoreName"] = relative, datastore
    data = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    exported = rewrite_file("Trained_model", data, EXPORT)
    out = json.loads(exported.data)
    assert (out["RelativePath"], out["AmlDataStoreName"]) == (relative, datastore)
    target = Identity(account="sttarget02", containers={"c-dst": datastore})
    back = json.loads(
        rewrite_file(
            "p",
            exported.data,
            RewriteRules("import", SRC, target, datastore_map=same_names(target)),
        ).data
    )
    assert back["Uri"].startswith("wasbs://c-dst@sttarget02.blob.core.windows.net/")
    assert back["RelativePath"] == relative


_LOG_PARTS = st.lists(
    st.one_of(
        st.sampled_from(
            ["\n", "\r\n", " ", "INFO ", "done", "key", "KEY=", "@", "==", "sig=", "Bearer ",
             "https:/", "/", "azureml", ":", "AZUREML:env:3", "/mnt/", "/scratch/", "runs:/",
             "mlflow-artifacts:", "\u017fig=", "password: hunter22", *_URIS]
        ),
        st.text(max_size=12),
    ),
    max_size=20,
)  # fmt: skip


@_QUICK
@given(_LOG_PARTS.map("".join), _RULES)
def test_a_log_skipped_as_untouched_rewrites_as_every_line_would(
    text: str, rules: RewriteRules
) -> None:
    """``rewrite_log`` returns a log with no URI hint and no secret trigger as it is: the
    line-by-line rewrite gives the same bytes, changes, redactions and warnings."""
    from amlport.rewriters.recorder import Decoded, Recorder
    from amlport.rewriters.text_log import rewrite_text, untouched

    data = text.encode("utf-8", "surrogatepass")
    result = rewrite_file("std_log.txt", data, rules)
    rec = Recorder("std_log.txt", rules, lenient=True)
    decoded = Decoded.of(data).text
    every = rewrite_text(decoded, rec)
    if untouched(decoded):
        assert every == decoded and result.data == data
        assert (rec.changes, rec.redactions, rec.warnings) == ([], {}, [])
    assert (result.changes, result.redactions, result.warnings) == (
        rec.changes,
        dict(rec.redactions),
        rec.warnings,
    )


@_QUICK
@given(_LOG_PARTS.map("".join), _RULES)
def test_lines_skipped_by_the_text_checks_rewrite_as_every_line_would(
    text: str, rules: RewriteRules
) -> None:
    """``rewrite_text`` searches a line for URIs only when the text holds a URI hint and
    scrubs it only when the text holds a secret trigger or the line changed: the same text,
    changes, redactions and warnings as searching and scrubbing every line."""
    from amlport.rewriters.recorder import Recorder
    from amlport.rewriters.text_log import rewrite_text
    from amlport.secrets import crosses_line

    def every_line(text: str, rec: Recorder) -> str:  # the rewrite before the checks
        if crosses_line(text):
            text = rec.scrub(text)
        lines = text.split("\n")
        for number, line in enumerate(lines, start=1):
            new, _ = rec.spans(line, f"line {number}")
            lines[number - 1] = rec.scrub(new)
        return "\n".join(lines)

    fast, slow = Recorder("log", rules, lenient=True), Recorder("log", rules, lenient=True)
    assert rewrite_text(text, fast) == every_line(text, slow)
    assert (fast.changes, fast.redactions, fast.warnings) == (
        slow.changes,
        slow.redactions,
        slow.warnings,
    )
