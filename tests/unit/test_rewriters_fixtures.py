"""Every fixture workspace's files and every corpus YAML/MLmodel through ``rewrite_file``.

Export with the fixture's own descriptor leaves no source account or blob-store container name
in a pointer, YAML or MLmodel; in logs such a name survives only on provenance lines (lines with
a compute mount path, see docs/rewriting.md). Import of the export into a target with other
names leaves none either. Every structured file stays loadable, equal to the original except
where a change was recorded.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from amlport.model.uri_scan import find_uris
from amlport.model.uris import parse_uri
from amlport.model.workspace import WorkspaceDescriptor
from amlport.rewriters import Identity, RewriteResult, RewriteRules, rewrite_file
from amlport.rewriters.files import format_of, needs_rewrite
from amlport.secrets import find_secrets
from amlport.walk import parsers

REPO = Path(__file__).resolve().parents[2]
WORKSPACES = REPO / "fixtures" / "workspaces"
CORPUS = REPO / "fixtures" / "corpus" / "azureml-examples"
NAMES = sorted(p.name for p in WORKSPACES.iterdir() if (p / "workspace.yaml").is_file())
STRUCTURED = ("pointer", "yaml", "mlmodel")


@cache
def _descriptor(name: str) -> WorkspaceDescriptor:
    data = yaml.safe_load((WORKSPACES / name / "workspace.yaml").read_text(encoding="utf-8"))
    return WorkspaceDescriptor.from_dict(data)


def _files(name: str) -> Iterator[tuple[str, bytes]]:
    root = WORKSPACES / name
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name != "workspace.yaml":
            rel = path.relative_to(root).as_posix()
            if needs_rewrite(rel, path.stat().st_size):
                yield rel, path.read_bytes()


def _target(
    desc: WorkspaceDescriptor, extra: tuple[str, ...] = ()
) -> tuple[Identity, dict[str, str]]:
    """A target where every account, container and datastore name differs from the source;
    ``extra``: datastores the map names beside the descriptor's (one on another account)."""
    datastores = {ds: f"{ds}_qa" for ds in (*desc.datastores, *extra)}
    containers = {f"qa-container-{i}": datastores[ds] for i, ds in enumerate(datastores)}
    target = Identity(
        account="sttargetqa01",
        containers=containers,
        subscription_id="sub-qa",
        resource_group="rg-qa",
        workspace="ws-qa",
        region="eastus",
    )
    return target, datastores


@cache
def _exported(name: str) -> dict[str, tuple[bytes, RewriteResult]]:
    rules = RewriteRules("export", Identity.from_descriptor(_descriptor(name)))
    return {rel: (data, rewrite_file(rel, data, rules)) for rel, data in _files(name)}


def _identity_names(desc: WorkspaceDescriptor) -> tuple[str, ...]:
    return (desc.account, desc.blobstore_container)


def _is_provenance(line: str) -> bool:
    return any(parse_uri(uri).family.startswith("mount") for _, _, uri in find_uris(line))


def _differences(a: Any, b: Any, path: str = "") -> Iterator[str]:
    """YAML/JSON paths (as the rewriters write them) where two loaded documents differ."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        for key in a:
            escaped = str(key).replace("~", "~0").replace("/", "~1")
            yield from _differences(a[key], b[key], f"{path}/{escaped}")
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            yield from _differences(x, y, f"{path}/{i}")
    elif a != b:
        yield path or "/"


def _load(fmt: str, data: bytes) -> Any:
    text = data.decode("utf-8")
    return json.loads(text) if fmt == "pointer" else yaml.safe_load(text)


@pytest.mark.parametrize("name", NAMES)
def test_export_leaves_no_source_identity(name: str) -> None:
    desc = _descriptor(name)
    checked = 0
    for rel, (data, result) in _exported(name).items():
        fmt = format_of(rel, data)
        text = result.data.decode("latin-1")
        for needle in _identity_names(desc):
            if fmt in STRUCTURED:
                assert needle not in text, f"{needle} in {rel}"
            elif fmt == "log":
                for n, line in enumerate(text.split("\n"), 1):
                    assert needle not in line or _is_provenance(line), f"{rel} line {n}"
        checked += fmt in STRUCTURED
    assert checked > 0


@pytest.mark.parametrize("name", NAMES)
def test_export_output_has_no_secret_and_stays_loadable(name: str) -> None:
    for rel, (data, result) in _exported(name).items():
        assert not find_secrets(result.data.decode("latin-1")), rel
        if not result.changed:
            assert result.data == data, rel  # untouched files keep their bytes
        fmt = format_of(rel, data)
        try:
            before = _load(fmt, data) if fmt in STRUCTURED else None
        except (ValueError, yaml.YAMLError):
            assert result.warnings, f"{rel}: invalid input must be reported"
            continue
        if before is None:
            continue
        after = _load(fmt, result.data)
        changed = {c.location for c in result.changes}
        if "sas_token" in result.redactions:  # counted, never recorded as a change
            changed.add("/SasToken")
        assert set(_differences(before, after)) <= changed, rel


@pytest.mark.parametrize("name", NAMES)
def test_import_of_the_export_binds_to_the_target(name: str) -> None:
    desc = _descriptor(name)
    named = {
        str(parsers.parse_pointer(d.decode("utf-8"), r).datastore)
        for r, (d, _) in _exported(name).items()
        if _is_pointer(r, d)
    }  # designer-history: a port on a second datastore, which the map must name to re-bind
    target, datastores = _target(desc, tuple(sorted(named - set(desc.datastores))))
    rules = RewriteRules("import", Identity.from_descriptor(desc), target, datastore_map=datastores)
    pointers = 0
    for rel, (data, exported) in _exported(name).items():
        fmt = format_of(rel, data)
        result = rewrite_file(rel, exported.data, rules)
        text = result.data.decode("latin-1")
        if fmt in STRUCTURED:
            for needle in _identity_names(desc):
                assert needle not in text, f"{needle} in {rel}"
        if fmt == "pointer" and not any("plain text" in w for w in exported.warnings):
            doc = parsers.parse_pointer(text, rel)
            assert doc.account == "sttargetqa01" and doc.container in target.containers
            assert doc.datastore is not None and doc.datastore.endswith("_qa")
            pointers += 1
        assert not find_secrets(text), rel
    assert pointers == sum(1 for r, (d, _) in _exported(name).items() if _is_pointer(r, d))


def _is_pointer(rel: str, data: bytes) -> bool:
    return parsers.looks_like_pointer(data)


def test_messy_secrets_are_counted_and_gone() -> None:
    exported = _exported("messy")
    sas = exported["azureml/ExperimentRun/dcid.messy_b_pointer_with_sas/Trained_model"]
    assert sas[1].redactions == {"sas_token": 1}
    log = exported["azureml/ExperimentRun/dcid.messy_c_secrets_in_logs/user_logs/std_log.txt"]
    assert log[1].redactions == {"connection_string": 1, "sas_signature": 1}
    assert find_secrets(log[0].decode()) and not find_secrets(log[1].data.decode())
    assert b"AccountKey=" not in log[1].data


def test_messy_latin1_log_keeps_its_bytes() -> None:
    rel = "azureml/ExperimentRun/dcid.messy_g_latin1_log/user_logs/std_log.txt"
    data, result = _exported("messy")[rel]
    assert b"\xe9" in data and result.data == data  # nothing to rewrite: byte-identical


def test_designer_pointers_all_export_to_their_datastore_folder() -> None:
    for rel, (data, result) in _exported("designer-autoprice").items():
        if format_of(rel, data) != "pointer":
            continue
        doc = json.loads(result.data)
        expected = f"azureml://datastores/workspaceblobstore/paths/{doc['RelativePath']}"
        assert doc["Uri"] == expected and doc["Container"] is None and doc["Account"] is None


def test_fixture_logs_long_uris_become_short() -> None:
    changes = [c for _, r in _exported("designer-autoprice").values() for c in r.changes]
    long = [c for c in changes if c.rule == "azureml_datastore_long:export"]
    assert long and all(c.location.startswith("line ") for c in long)
    assert all(c.after.startswith("azureml://datastores/workspaceblobstore/paths/") for c in long)


# --------------------------------------------------------------------------- corpus

CORPUS_FILES = (
    sorted(
        p
        for p in CORPUS.rglob("*")
        if p.is_file() and (p.suffix in (".yml", ".yaml") or p.name == "MLmodel")
    )
    if CORPUS.is_dir()
    else []
)
CORPUS_SOURCE = Identity(
    account="azuremlexamples",
    containers={"datasets": "example_datasets", "models": "example_models"},
)


@pytest.mark.skipif(not CORPUS_FILES, reason="fixtures/corpus is missing")
@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: str(p.relative_to(CORPUS)))
def test_corpus_yaml_stays_loadable(path: Path) -> None:
    data = path.read_bytes()
    rel = str(path.relative_to(CORPUS))
    exported = rewrite_file(rel, data, RewriteRules("export", CORPUS_SOURCE))
    before, after = yaml.safe_load(data), yaml.safe_load(exported.data)
    assert set(_differences(before, after)) <= {c.location for c in exported.changes}
    if not exported.changed:
        assert exported.data == data
    target = Identity(account="sttargetqa01", containers={"qa-data": "data_qa", "qa-b": "blob_qa"})
    rules = RewriteRules(
        "import",
        CORPUS_SOURCE,
        target,
        datastore_map={"example_datasets": "data_qa", "workspaceblobstore": "blob_qa"},
    )
    imported = rewrite_file(rel, exported.data, rules)
    again = yaml.safe_load(imported.data)
    assert set(_differences(after, again)) <= {c.location for c in imported.changes}
    assert b"azuremlexamples.blob" not in imported.data or b"azuremlexamples.blob" in data
