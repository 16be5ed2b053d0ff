"""``--emit-assets DIR``: Azure ML v2 YAML bound to the target workspace, and ``register.sh``.

Models and data point at ``azureml://datastores/<target ds>/paths/<path>`` (where the storage
restore writes them); environments carry their conda file or build context; a component is
its YAML with its ``code:`` folder, and a job that names an emitted component (in a pipeline
or a pipeline component) names it as ``azureml:<name>:<version>`` (``@latest`` without a
version), so ``register.sh`` registers components innermost first, then the pipelines; a v2
pipeline is its project folder re-bound by ``rewrite_file``. ``plan`` only reads; ``apply``
writes each file atomically after re-checking, so a re-run is all skip. See
docs/importing-assets.md.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import posixpath
import re
import shlex
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from amlport.errors import AmlportError, ParseError, UsageError
from amlport.exporters.v2yaml import DEFAULT_BASE_IMAGE, SCHEMAS
from amlport.importers.base import ImportAction, ImportContext
from amlport.importers.mlflow_registry import (
    first_line,
    folder_digest,
    folder_files,
    provenance_tags,
)
from amlport.model.manifest import AssetEntry
from amlport.model.uris import quote_path
from amlport.rewriters.asset_ref import renamed
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.safeload import compose_yaml, decode_text, load_yaml
from amlport.storage.guard import WriteGuard

ORDER = ("environment", "data", "model", "component", "pipeline")
AZ_GROUP = dict(zip(ORDER, ("environment", "data", "model", "component", "job"), strict=True))
LIVE_OPERATIONS = dict(
    zip(ORDER, ("environments", "data", "models", "components", "jobs"), strict=True)
)
SCRIPT, INDEX = "register.sh", "register.json"
INDEX_FORMAT = "amlport.emit-assets/1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}\Z")
CURRENT_CLOUD_ENV = "AZUREML_CURRENT_CLOUD"  # azure-ai-ml's process-wide cloud
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\Z")


class _Blocked(AmlportError):
    """This asset cannot be emitted (the reason is the message)."""


@dataclass
class _Unit:
    """What one asset emits: files (out-dir relative path -> bytes) and what to register."""

    main: str
    files: dict[str, bytes]
    registers: list[tuple[str, str, str]] = field(default_factory=list)  # kind, file, key


class AzureMLAssetsImporter:
    name = "azureml_assets"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self._refs: dict[str, str] = {}  # component asset id -> azureml:name:version

    def plan(self, ctx: ImportContext) -> list[ImportAction]:
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise UsageError(f"--emit-assets {self.out_dir} exists and is not a directory")
        assets = [a for a in ctx.manifest.assets if _emits(a)]
        assets.sort(key=lambda a: (ORDER.index(a.kind), _depth(a), a.id))  # dependency order
        names = _target_names(assets, ctx)
        self._refs = {
            a.id: _component_ref(*names[a.id], a) for a in assets if a.kind == "component"
        }
        actions: list[ImportAction] = []
        units: list[_Unit] = []
        for asset in assets:
            try:  # Unmappable is an AmlportError too
                unit = self._render(asset, *names[asset.id], ctx)
            except AmlportError as exc:
                actions.append(ImportAction(self.name, "blocked", asset.id, "-", exc.message))
                continue
            if asset.kind != "pipeline":
                unit.registers.insert(0, (asset.kind, unit.main, asset.id))
            units.append(unit)
            actions.append(self._decide(asset.id, unit.main, unit.files, ctx))
        actions += self._designer_documents(ctx)
        actions.append(self._decide(SCRIPT, SCRIPT, _script_files(units, ctx), ctx))
        return actions

    def _designer_documents(self, ctx: ImportContext) -> list[ImportAction]:
        """A designer pipeline is no v2 asset: its Markdown document goes to ``designer/``
        beside the v2 assets (docs/designer.md). It describes the source run by Studio names
        and step numbers; the YAML it is rendered from (with the source's datastore paths)
        stays in the bundle."""
        actions = []
        for asset in ctx.manifest.assets:
            doc = asset.attrs.get("designer_document")
            if asset.kind != "pipeline" or not doc:
                continue
            main = f"designer/{posixpath.basename(str(doc))}"
            files = {main: ctx.read(str(doc))}
            actions.append(self._decide(f"{asset.id} (designer document)", main, files, ctx))
        return actions

    def _render(
        self, asset: AssetEntry, name: str, version: str | None, ctx: ImportContext
    ) -> _Unit:
        if not NAME_RE.match(name):
            raise _Blocked(f"{name!r} is not a valid Azure ML asset name; rename it in the map")
        if asset.kind == "environment":
            return self._environment(asset, name, version, ctx)
        if asset.kind == "pipeline":
            return self._pipeline(asset, name, ctx)
        if asset.kind == "component":
            return self._component(asset, name, version, ctx)
        body: dict[str, Any] = {"name": name, "version": version or "1"}
        if asset.kind == "model":
            folder = str(asset.attrs.get("folder") or "")
            files = folder_files(ctx.manifest, folder) if folder else []
            if not files:
                raise _Blocked("the model folder has no files in the snapshot")
            body["type"] = "mlflow_model" if asset.attrs["format"] == "mlflow" else "custom_model"
            body["path"] = _target_uri(folder, ctx)
            tags = provenance_tags(ctx.manifest, asset, folder_digest(files, folder))
            tags["amlport.format"] = str(asset.attrs.get("format") or "unknown")
            if not asset.portable:
                tags["amlport.portable"] = "false"
        else:  # data
            location = f"files/{asset.attrs.get('location') or ''}"
            body["type"] = "uri_file" if asset.files == [location] else "uri_folder"
            body["path"] = _target_uri(location, ctx)
            tags = provenance_tags(ctx.manifest, asset, None)
        note = "" if asset.portable else "; needs the Azure ML designer runtime (not portable)"
        main = f"{'models' if asset.kind == 'model' else 'data'}/{name}.yml"
        return _Unit(main, {main: _dump(asset.kind, body, tags, note)})

    def _environment(
        self, asset: AssetEntry, name: str, version: str | None, ctx: ImportContext
    ) -> _Unit:
        base = f"environments/{name}"
        kind = asset.attrs.get("env_kind")
        if kind == "v2_yaml" and asset.v2_yaml:  # found in storage: with the files it names
            # (its conda file, its build context: exporters/environment.py), laid out as they
            # are relative to each other, so ``conda_file: ../x.yml`` still resolves.
            paths = sorted({*asset.files, asset.v2_yaml})
            root = posixpath.commonpath([posixpath.dirname(p) for p in paths])
            files = _copy(ctx, paths, root, base)
            main = f"{base}/{asset.v2_yaml[len(root) + 1 :]}"
            files[main] = _set_name(files[main], name, version)
            return _Unit(main, files)
        own = "files/" + asset.id.partition(":")[2]  # the id names the file it came from
        if own not in asset.files:
            raise _Blocked(f"{own} (the environment's definition) is not in the snapshot")
        body: dict[str, Any] = {"name": name, "version": version or "1"}
        if kind == "dockerfile":
            context = posixpath.dirname(own)
            files = _copy(ctx, asset.files, context, f"{base}/context")
            body["build"] = {"path": "context", "dockerfile_path": own[len(context) + 1 :]}
        else:
            files = _copy(ctx, [own], posixpath.dirname(own), base)
            image = asset.attrs.get("base_image") or asset.attrs.get("image")
            body["image"] = str(image or DEFAULT_BASE_IMAGE)
            body["conda_file"] = posixpath.basename(own)
        main = f"{base}/environment.yml"
        files[main] = _dump("environment", body, provenance_tags(ctx.manifest, asset, None))
        return _Unit(main, files)

    def _component(
        self, asset: AssetEntry, name: str, version: str | None, ctx: ImportContext
    ) -> _Unit:
        """The component YAML and its ``code:`` folder, at ``components/<name>/``."""
        spec = str(asset.v2_yaml)
        paths = sorted({*asset.files, spec})
        root = posixpath.commonpath([posixpath.dirname(p) for p in paths])
        base = f"components/{name}"
        files = _copy(ctx, paths, root, base)
        main = f"{base}/{spec[len(root) + 1 :]}"
        if main not in files:
            raise _Blocked(f"{spec} (the component's YAML) is not in the snapshot")
        data = _set_name(files[main], name, version)
        files[main] = _set_job_components(data, self._job_refs(asset))
        return _Unit(main, files)

    def _job_refs(self, asset: AssetEntry) -> dict[str, str]:
        """job -> the ``azureml:`` reference of the emitted component its file names."""
        jobs = asset.attrs.get("jobs") or {}
        out: dict[str, str] = {}
        for job, facts in jobs.items() if isinstance(jobs, dict) else ():
            definition = facts.get("definition") if isinstance(facts, dict) else None
            ref = self._refs.get(f"component:{definition}") if definition else None
            if ref is not None:
                out[str(job)] = ref
        return out

    def _pipeline(self, asset: AssetEntry, name: str, ctx: ImportContext) -> _Unit:
        spec = str(asset.v2_yaml)
        paths = sorted({*asset.files, spec})
        root = posixpath.commonpath([posixpath.dirname(p) for p in paths])
        base = f"pipelines/{name}"
        unit = _Unit(f"{base}/{spec[len(root) + 1 :]}", _copy(ctx, paths, root, base))
        unit.files[unit.main] = _set_job_components(unit.files[unit.main], self._job_refs(asset))
        # Environments and components of the snapshot are registered on their own.
        covered = {a.v2_yaml for a in ctx.assets("environment")}
        covered |= {a.v2_yaml for a in ctx.assets("component") if a.id in self._refs}
        for bundle_path in paths:
            out = f"{base}/{bundle_path[len(root) + 1 :]}"
            if bundle_path == spec or not out.endswith((".yml", ".yaml")):
                continue
            kind, doc = _spec_kind(unit.files[out])
            if kind is None or bundle_path in covered:
                continue
            if doc.get("name"):
                version = None if doc.get("version") is None else str(doc["version"])
                new = renamed(str(doc["name"]), version, None, ctx.mapping.assets)
                unit.files[out] = _set_name(unit.files[out], new[0], new[1])
            unit.registers.append((kind, out, bundle_path))
        unit.registers.append(("pipeline", unit.main, spec))
        return unit

    def _status(self, rel: str, data: bytes) -> str:
        path = self.out_dir / rel
        if not path.is_file():
            return "missing"
        return "same" if path.read_bytes() == data else "differs"

    def _state(self, files: dict[str, bytes]) -> str:
        """``same`` (every file there, identical), ``differs`` (one differs), else ``new``."""
        found = {self._status(rel, data) for rel, data in files.items()}
        return "differs" if "differs" in found else "new" if "missing" in found else "same"

    def _decide(
        self, subject: str, main: str, files: dict[str, bytes], ctx: ImportContext
    ) -> ImportAction:
        state = self._state(files)  # what a differing file becomes: the write guard's policy
        action, reason = ctx.gate.decide(state != "new", state == "same")
        target = str(self.out_dir / main)
        return ImportAction(self.name, action, subject, target, reason, {"files": files})

    def apply(self, action: ImportAction, ctx: ImportContext) -> ImportAction:
        if action.action not in ("create", "update"):
            return action
        files: dict[str, bytes] = action.details["files"]
        state = self._state(files)
        if state == "same":  # written meanwhile (a resumed or concurrent import)
            return replace(action, action="skip", reason="already there")
        if state == "differs" and action.action == "create":
            return replace(action, action="conflict", reason="other content appeared meanwhile")
        folder = ctx.gate.folder(self.out_dir, "--emit-assets folder")  # every write: guarded
        for rel, data in files.items():
            if self._status(rel, data) == "same":
                continue
            folder.write(rel, data, mode=0o755 if rel == SCRIPT else None)
        return action


def _emits(asset: AssetEntry) -> bool:
    if asset.attrs.get("unclassified"):  # a backup's catch-all: restored, not an asset
        return False
    if asset.kind == "pipeline":
        return asset.attrs.get("spec_type") == "v2_pipeline_job" and bool(asset.v2_yaml)
    if asset.kind == "component":
        return bool(asset.v2_yaml)
    return asset.kind in ("model", "data") or (asset.kind == "environment" and bool(asset.files))


def _target_names(
    assets: list[AssetEntry], ctx: ImportContext
) -> dict[str, tuple[str, str | None]]:
    """(name, version or None) after the map file's renames (``name`` or ``name:version``);
    names that collide within a kind get a stable suffix from the asset id."""
    names = {a.id: renamed(a.name, None, None, ctx.mapping.assets)[:2] for a in assets}
    counts = Counter((a.kind, names[a.id][0]) for a in assets)
    for a in assets:
        name, version = names[a.id]
        if counts[(a.kind, name)] > 1:
            names[a.id] = (f"{name}-{hashlib.sha256(a.id.encode()).hexdigest()[:8]}", version)
    return names


def _depth(asset: AssetEntry) -> int:
    """How deep a pipeline component nests others (0: none); registered innermost first."""
    value = asset.attrs.get("depth")
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _component_ref(name: str, version: str | None, asset: AssetEntry) -> str:
    """How a job names the emitted component: ``azureml:name:version``, or ``@latest``."""
    version = version or (str(asset.attrs["version"]) if asset.attrs.get("version") else None)
    return f"azureml:{name}:{version}" if version else f"azureml:{name}@latest"


def _set_job_components(data: bytes, refs: dict[str, str]) -> bytes:
    """Set ``jobs.<job>.component`` of a pipeline (component) YAML to ``refs[job]``, keeping
    the rest of the text as it is."""
    if not refs:
        return data
    try:
        text = data.decode("utf-8")
        root = compose_yaml(text, "spec")
    except (UnicodeDecodeError, ParseError) as exc:
        raise _Blocked(f"cannot re-point jobs in a YAML file that does not parse ({exc})") from None
    jobs = _child(root, "jobs")
    edits = []
    if isinstance(jobs, yaml.MappingNode):
        for key, job in jobs.value:
            ref = refs.get(key.value) if isinstance(key, yaml.ScalarNode) else None
            node = _child(job, "component") if ref is not None else None
            if isinstance(node, yaml.ScalarNode) and node.value != ref:
                edits.append((node.start_mark.index, node.end_mark.index, json.dumps(ref)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text.encode("utf-8")


def _child(node: Any, key: str) -> Any:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _target_uri(bundle_path: str, ctx: ImportContext) -> str:
    """Where the storage restore puts ``files/<ds>/<path>``, as a target datastore URI."""
    parts = bundle_path.split("/", 2)
    if len(parts) != 3 or parts[0] != "files" or not parts[2]:
        raise _Blocked(f"{bundle_path} is not a restored file (files/<datastore>/<path>)")
    _, datastore, path = parts
    uri = f"azureml://datastores/{datastore}/paths/{quote_path(path)}"
    mapped = ctx.rules.target_datastore(datastore, uri)  # Unmappable when not mapped
    ctx.rules.target_container(mapped, uri)  # Unmappable when the target has no such datastore
    return f"azureml://datastores/{mapped}/paths/{quote_path(path)}"


def _copy(ctx: ImportContext, paths: list[str], root: str, base: str) -> dict[str, bytes]:
    """The bundle files under ``root``, re-bound to the target, at ``base/<relative path>``."""
    out: dict[str, bytes] = {}
    for path in sorted(paths):
        if not path.startswith(root + "/"):
            continue
        entry = ctx.manifest.file(path)
        data = ctx.read(path)  # hash-checked
        if entry is not None and needs_rewrite(path, entry.size):
            data = rewrite_file(path, data, ctx.rules, bundle_path=path).data
        out[f"{base}/{path[len(root) + 1 :]}"] = data
    return out


def _spec_kind(data: bytes) -> tuple[str | None, dict[str, Any]]:
    """``component`` / ``environment`` for v2 YAML of those kinds (by ``$schema``), else None."""
    try:
        doc = load_yaml(decode_text(data)[0], "spec")  # bounded, as every YAML load
    except ParseError:
        return None, {}
    if not isinstance(doc, dict):
        return None, {}
    schema = str(doc.get("$schema") or "").lower()
    if schema.rsplit("/", 1)[-1].endswith("component.schema.json") or (
        not schema and doc.get("type") in ("command", "parallel", "spark") and "version" in doc
    ):
        return "component", doc
    if "environment.schema" in schema:
        return "environment", doc
    return None, doc


def _set_name(data: bytes, name: str, version: str | None) -> bytes:
    """Set the top-level ``name`` (and ``version``) of a YAML file, keeping the rest as is."""
    try:
        text = data.decode("utf-8")
        root = compose_yaml(text, "spec")
    except (UnicodeDecodeError, ParseError) as exc:
        raise _Blocked(f"cannot rename in a YAML file that does not parse ({exc})") from None
    if not isinstance(root, yaml.MappingNode):
        return data
    edits = []
    for key, value in root.value:
        if isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode):
            new = {"name": name, "version": version}.get(key.value)
            if new is not None and new != value.value:
                edits.append((value.start_mark.index, value.end_mark.index, json.dumps(new)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text.encode("utf-8")


def _dump(kind: str, body: dict[str, Any], tags: dict[str, str], note: str = "") -> bytes:
    doc = {"$schema": SCHEMAS[kind], **body, "description": f"Imported by amlport{note}"}
    doc["tags"] = tags
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000).encode("utf-8")


def _script_files(units: list[_Unit], ctx: ImportContext) -> dict[str, bytes]:
    """``register.sh`` and ``register.json``: every registration once, in dependency order."""
    entries: dict[tuple[str, str], str] = {}
    registers = sorted((r for u in units for r in u.registers), key=lambda r: ORDER.index(r[0]))
    for kind, file, key in registers:
        entries.setdefault((kind, key), file)
    t = ctx.mapping.target
    lines = [
        "#!/usr/bin/env bash",
        f"# Written by amlport import (snapshot {ctx.snapshot_id}).",
        "# Registers these v2 assets in dependency order. Needs 'az extension add -n ml' and",
        "# 'az login'; AMLPORT_SUBSCRIPTION/_RESOURCE_GROUP/_WORKSPACE override the target.",
        "set -euo pipefail",
        'cd "$(dirname "${BASH_SOURCE[0]}")"',
        _var("RG", "AMLPORT_RESOURCE_GROUP", t.resource_group),
        _var("WS", "AMLPORT_WORKSPACE", t.workspace),
    ]
    scope = '--resource-group "$RG" --workspace-name "$WS"'
    if t.subscription_id:
        lines.append(_var("SUB", "AMLPORT_SUBSCRIPTION", t.subscription_id))
        scope += ' --subscription "$SUB"'
    listed = [(kind, file) for (kind, _), file in entries.items()]
    lines += [f"az ml {AZ_GROUP[k]} create -f {shlex.quote(f)} {scope}" for k, f in listed]
    assets = [{"kind": k, "file": f} for k, f in listed]
    index = {"format": INDEX_FORMAT, "snapshot": ctx.snapshot_id, "assets": assets}
    script = "\n".join(lines) + "\n"
    return {INDEX: (json.dumps(index, indent=2) + "\n").encode(), SCRIPT: script.encode()}


def _var(name: str, env: str, value: str | None) -> str:
    if value:
        return f"{name}=${{{env}:-{shlex.quote(value)}}}"
    return f"{name}=${{{env}:?set {env} (the map file names none)}}"


# --- live registration (MLClient; tested against the ARM replay, tests/armlive) ----------


def parse_workspace(text: str) -> tuple[str, str, str]:
    """``SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE`` -> its three parts (UsageError otherwise)."""
    parts = [p.strip() for p in text.split("/")]
    if len(parts) != 3 or not all(parts):
        raise UsageError(
            f"--workspace {text!r}: expected SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE",
            hint="e.g. --workspace 00000000-0000-0000-0000-000000000000/rg-ml/mlw-qa",
        )
    if not GUID_RE.match(parts[0]):
        raise UsageError(f"--workspace: subscription {parts[0]!r} is not a subscription id (GUID)")
    return parts[0], parts[1], parts[2]


def load_index(out_dir: Path) -> list[tuple[str, Path]]:
    """The registrations ``register.json`` lists, in order, as (kind, file)."""
    path = Path(out_dir) / INDEX
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise UsageError(
            f"{path} is missing or unreadable", hint="run 'amlport import … --emit-assets DIR'"
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise UsageError(f"{path} is not an amlport register index ({INDEX_FORMAT})")
    out = [(str(i.get("kind")), str(i.get("file"))) for i in doc.get("assets") or []]
    if any(k not in AZ_GROUP or f.startswith("/") or ".." in f.split("/") for k, f in out):
        raise UsageError(f"{path}: an entry names an unknown kind or a path outside the folder")
    return [(kind, Path(out_dir) / file) for kind, file in out]


@dataclass(frozen=True)
class LiveRegistration:
    """One entry of ``register.json`` as registered live: ``create``, ``skip`` (that
    version is there with the same content) or ``conflict`` (it is there with other content)."""

    action: str
    kind: str
    name: str
    version: str
    reason: str = ""

    def line(self) -> str:
        why = f" ({self.reason})" if self.reason else ""
        return f"{self.action} {self.kind} {self.name}:{self.version}{why}"


def register_live(
    out_dir: Path,
    *,
    workspace: str,
    guard: WriteGuard | None = None,
    credential: Any = None,
    storage_suffix: str | None = None,
) -> list[LiveRegistration]:
    """What ``register.sh`` does, through azure-ai-ml ``MLClient``, idempotently: entries in
    dependency order; a version already registered with the same content is skipped; one with
    other content is a conflict (registered versions are immutable, so ``--on-conflict
    overwrite`` cannot replace it either); each registration passes ``guard.admit`` first
    (a dry run's guard refuses). ``credential``: ``DefaultAzureCredential`` unless given.
    The ARM endpoint is the audit's (``AMLPORT_ARM_ENDPOINT`` or public Azure, ``ml_cloud``);
    ``storage_suffix`` (the target's, e.g. ``core.chinacloudapi.cn``) matters only for an
    endpoint azure-ai-ml does not know."""
    from amlport.audit.armlive import arm_endpoint

    subscription, resource_group, name = parse_workspace(workspace)
    entries = sorted(load_index(out_dir), key=lambda e: ORDER.index(e[0]))
    try:
        import azure.ai.ml as aml
    except ImportError:
        raise AmlportError(
            "live registration needs azure-ai-ml and azure-identity",
            hint="pip install 'amlport[azureml,identity]'",
        ) from None
    if guard is None:  # a caller of its own (Python API): this call is the whole run
        guard = WriteGuard()
        guard.open()
    cloud = ml_cloud(arm_endpoint(), storage_suffix)
    with _current_cloud_restored():
        # No progress bars: azure-ai-ml would print them on amlport's console, around its lines.
        client = aml.MLClient(
            credential or _default_credential(),
            subscription,
            resource_group,
            name,
            show_progress=False,
            **cloud,
        )
        return [_register_one(aml, client, guard, kind, file, name) for kind, file in entries]


# azure-ai-ml's names for the clouds it knows, by ARM endpoint.
KNOWN_CLOUDS = {
    "https://management.azure.com": "AzureCloud",
    "https://management.chinacloudapi.cn": "AzureChinaCloud",
    "https://management.usgovcloudapi.net": "AzureUSGovernment",
}
_PUBLIC_CLOUD = {
    "azure_portal": "https://portal.azure.com/",
    "active_directory": "https://login.microsoftonline.com/",
    "aml_resource_id": "https://ml.azure.com/",
    "registry_discovery_endpoint": "https://eastus.api.azureml.ms/",
}


def ml_cloud(endpoint: str, storage_suffix: str | None = None) -> dict[str, Any]:
    """``MLClient``'s cloud keywords for the ARM ``endpoint`` the audit uses too
    (``AMLPORT_ARM_ENDPOINT``, else public Azure): a cloud azure-ai-ml knows by its name;
    any other endpoint as a cloud of its own (named after the endpoint and the storage
    suffix, since azure-ai-ml never replaces a cloud it has registered), whose ARM endpoint
    is ``endpoint`` and whose storage suffix is ``storage_suffix`` (the map file's
    ``target.endpoint``: where a build context or local path is uploaded), the rest as in
    public Azure."""
    known = KNOWN_CLOUDS.get(endpoint.rstrip("/").lower())
    if known is not None:
        return {"cloud": known}
    suffix = storage_suffix or "core.windows.net"
    digest = hashlib.sha256(f"{endpoint}\n{suffix}".encode()).hexdigest()[:12]
    metadata = {
        **_PUBLIC_CLOUD,
        "resource_manager": endpoint.rstrip("/") + "/",
        "storage_endpoint": suffix,
    }
    return {"cloud": f"amlport-{digest}", "cloud_metadata": metadata}


@contextlib.contextmanager
def _current_cloud_restored() -> Iterator[None]:
    """``MLClient`` sets ``AZUREML_CURRENT_CLOUD`` for the whole process (its uploads read the
    storage suffix from it); put back what was there once the registration is over."""
    before = os.environ.get(CURRENT_CLOUD_ENV)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(CURRENT_CLOUD_ENV, None)
        else:
            os.environ[CURRENT_CLOUD_ENV] = before


def _default_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise AmlportError(
            "live registration needs azure-identity", hint="pip install 'amlport[identity]'"
        ) from None
    return DefaultAzureCredential()


def _register_one(
    aml: Any, client: Any, guard: WriteGuard, kind: str, file: Path, workspace: str
) -> LiveRegistration:
    load = getattr(aml, "load_job" if kind == "pipeline" else f"load_{kind}")
    ops = getattr(client, LIVE_OPERATIONS[kind])
    try:
        wanted = load(file)
        if kind == "pipeline" and not wanted.name:
            wanted.name = pipeline_job_name(file)  # else every run would submit a new job
        asset_name, version = str(wanted.name), str(getattr(wanted, "version", None) or "-")
        existing = _existing(ops, kind, asset_name, version)
        action, reason = guard.decide(existing is not None, _same(kind, existing, wanted))
        if action == "update":  # a registered version cannot change: never "overwrite"
            action, reason = "conflict", "registered versions are immutable; bump the version"
        if action != "create":
            return LiveRegistration(action, kind, asset_name, version, reason)
        guard.admit(f"{kind} {asset_name}:{version} in workspace {workspace}")
        # azure-ai-ml prints colour codes to stderr after an upload even without progress
        # bars; they would reach the terminal past amlport's safe console. Its errors are
        # raised, not printed, so nothing the user needs is dropped.
        with contextlib.redirect_stderr(io.StringIO()):
            ops.create_or_update(wanted)
    except AmlportError:
        raise
    except Exception as exc:  # azure-core / validation errors: one line, no traceback
        raise AmlportError(f"registering {file} in {workspace} failed: {first_line(exc)}") from None
    return LiveRegistration("create", kind, asset_name, version)


def pipeline_job_name(file: Path) -> str:
    """A job name that is the same for the same emitted pipeline file (so a re-run finds the
    job it submitted) and differs when the file does: ``amlport-`` + 20 hex of its SHA-256."""
    return "amlport-" + hashlib.sha256(file.read_bytes()).hexdigest()[:20]


def _existing(ops: Any, kind: str, name: str, version: str) -> Any:
    """The registered version (the job, for a pipeline), or None when there is none."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        return ops.get(name) if kind == "pipeline" else ops.get(name=name, version=version)
    except ResourceNotFoundError:
        return None


def _same(kind: str, existing: Any, wanted: Any) -> bool:
    """Whether a registered version holds what the YAML says: the storage path of a model or
    data asset, the image and conda file of an environment, a component's ``_signature``.
    A pipeline job is the same by its name (derived from the emitted file's bytes)."""
    if existing is None:
        return False
    if kind in ("model", "data"):
        return _datastore_path(existing.path) == _datastore_path(wanted.path)
    if kind == "environment":
        return (existing.image, existing.conda_file) == (wanted.image, wanted.conda_file)
    if kind == "component":
        return _signature(existing) == _signature(wanted)
    return True


def _signature(component: Any) -> tuple[Any, ...]:
    """What a registered component must keep for a job to run the same: its type, its command
    (whitespace aside), its input and output names, a pipeline component's job names. The
    service expands the rest (``code`` and ``environment`` come back as ARM ids, inputs gain
    defaults), so a byte comparison would always differ."""
    command = getattr(component, "command", None)
    jobs = getattr(component, "jobs", None)
    return (
        str(getattr(component, "type", "") or ""),
        " ".join(str(command).split()) if command else None,
        tuple(sorted(getattr(component, "inputs", None) or {})),
        tuple(sorted(getattr(component, "outputs", None) or {})),
        tuple(sorted(jobs)) if isinstance(jobs, dict) else None,
    )


def _datastore_path(uri: Any) -> str:
    """``…/datastores/<ds>/paths/<p>`` of either spelling the service or the YAML uses."""
    text = str(uri or "")
    cut = text.find("datastores/")
    return text[cut:].rstrip("/") if cut >= 0 else text.rstrip("/")
