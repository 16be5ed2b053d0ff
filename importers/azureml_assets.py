"""``--emit-assets DIR``: Azure ML v2 YAML bound to the target workspace, and ``register.sh``.

Per asset of the snapshot (layout in docs/importing-assets.md):

- model -> ``models/<name>.yml``: ``mlflow_model`` or ``custom_model`` (designer, tagged not
  portable) whose ``path`` is ``azureml://datastores/<target ds>/paths/<path>``, where the
  storage restore writes the folder (same path, mapped datastore); provenance tags;
- environment -> ``environments/<name>/``: the conda file or Docker build context copied next
  to the YAML and named relatively (image as exported); a v2 environment YAML found in storage
  is copied with its folder;
- data -> ``data/<name>.yml`` (``uri_file``/``uri_folder`` at the target datastore);
- v2 pipeline -> ``pipelines/<name>/``: the project folder, every file through ``rewrite_file``
  with the import rules; its component YAMLs are registered, the pipeline is submitted as a job.

Names go through the map file's ``assets`` renames; two assets of one kind that end with the
same name get ``-<8 hex of the asset id>``. ``register.sh`` (and ``register.json``, which
``register_live`` reads) registers everything in dependency order: environments, data, models,
components, pipelines. ``plan`` only reads: create | skip (identical files there) | update /
skip / conflict on different files (``ctx.on_conflict``) | blocked (unmappable location, bad
name). ``apply`` writes each file atomically and re-checks, so a re-run is all skip.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
import shlex
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from amlport.bundle.files import write_atomic
from amlport.errors import AmlportError, UsageError
from amlport.exporters.v2yaml import DEFAULT_BASE_IMAGE, SCHEMAS
from amlport.importers.base import ImportAction, ImportContext
from amlport.importers.mlflow_registry import folder_digest, folder_files, provenance_tags
from amlport.model.manifest import AssetEntry
from amlport.model.uris import quote_path
from amlport.rewriters.asset_ref import renamed
from amlport.rewriters.files import needs_rewrite, rewrite_file
from amlport.rewriters.rules import Unmappable

ORDER = ("environment", "data", "model", "component", "pipeline")
AZ_GROUP = {"environment": "environment", "data": "data", "model": "model",
            "component": "component", "pipeline": "job"}  # fmt: skip
SCRIPT, INDEX = "register.sh", "register.json"
INDEX_FORMAT = "amlport.emit-assets/1"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
GUID_RE = re.compile(r"^[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")


class _Blocked(Exception):
    """This asset cannot be emitted (the reason is the message)."""


@dataclass
class _Unit:
    """What one asset emits: files (out-dir relative path -> bytes) and what to register."""

    asset: AssetEntry
    main: str
    files: dict[str, bytes] = field(default_factory=dict)
    registers: list[tuple[str, str, str]] = field(default_factory=list)  # kind, file, key


class AzureMLAssetsImporter:
    name = "azureml_assets"

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    # --- plan ------------------------------------------------------------------------------

    def plan(self, ctx: ImportContext) -> list[ImportAction]:
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise UsageError(f"--emit-assets {self.out_dir} exists and is not a directory")
        assets = sorted(
            (a for a in ctx.manifest.assets if _emits(a)),
            key=lambda a: (ORDER.index(a.kind), a.id),
        )
        names = _target_names(assets, ctx)
        actions: list[ImportAction] = []
        units: list[_Unit] = []
        for asset in assets:
            try:
                unit = self._render(asset, *names[asset.id], ctx)
            except (Unmappable, _Blocked) as exc:
                reason = exc.message if isinstance(exc, Unmappable) else str(exc)
                actions.append(ImportAction(self.name, "blocked", asset.id, "-", reason))
                continue
            units.append(unit)
            actions.append(self._decide(asset.id, unit.main, unit.files, ctx))
        actions.append(self._decide(SCRIPT, SCRIPT, _script_files(units, ctx), ctx))
        return actions

    def _render(
        self, asset: AssetEntry, name: str, version: str | None, ctx: ImportContext
    ) -> _Unit:
        if not NAME_RE.match(name):
            raise _Blocked(
                f"{name!r} is not a valid Azure ML asset name (rename it in the map "
                "file: letters, digits, '-', '_', '.')"
            )
        if asset.kind == "model":
            return self._model(asset, name, version or "1", ctx)
        if asset.kind == "data":
            return self._data(asset, name, version or "1", ctx)
        if asset.kind == "environment":
            return self._environment(asset, name, version, ctx)
        return self._pipeline(asset, name, ctx)

    def _model(self, asset: AssetEntry, name: str, version: str, ctx: ImportContext) -> _Unit:
        folder = str(asset.attrs.get("folder") or "")
        files = folder_files(ctx.manifest, folder) if folder else []
        if not files:
            raise _Blocked("the model folder has no files in the snapshot")
        mlflow = asset.attrs.get("format") == "mlflow"
        tags = provenance_tags(ctx.manifest, asset, folder_digest(files, folder))
        tags["amlport.format"] = str(asset.attrs.get("format") or "unknown")
        if not asset.portable:
            tags["amlport.portable"] = "false"
        body = {
            "name": name, "version": version, "type": "mlflow_model" if mlflow else "custom_model",
            "path": _target_uri(folder, ctx),
            "description": "Imported by amlport" + ("" if asset.portable else
                           "; needs the Azure ML designer runtime to load (not portable)"),
            "tags": tags,
        }  # fmt: skip
        main = f"models/{name}.yml"
        unit = _Unit(asset, main, {main: _dump("model", body)})
        unit.registers.append(("model", main, asset.id))
        return unit

    def _data(self, asset: AssetEntry, name: str, version: str, ctx: ImportContext) -> _Unit:
        location = str(asset.attrs.get("location") or "")
        if not location:
            raise _Blocked("the data asset names no location")
        bundle = f"files/{location}"
        single = asset.files == [bundle]
        body = {"name": name, "version": version, "type": "uri_file" if single else "uri_folder",
                "path": _target_uri(bundle, ctx), "description": "Imported by amlport",
                "tags": provenance_tags(ctx.manifest, asset, None)}  # fmt: skip
        main = f"data/{name}.yml"
        unit = _Unit(asset, main, {main: _dump("data", body)})
        unit.registers.append(("data", main, asset.id))
        return unit

    def _environment(
        self, asset: AssetEntry, name: str, version: str | None, ctx: ImportContext
    ) -> _Unit:
        base = f"environments/{name}"
        kind = asset.attrs.get("env_kind")
        if kind == "v2_yaml" and asset.v2_yaml:
            folder = posixpath.dirname(asset.v2_yaml)
            files = _copy(ctx, asset.files, folder, base)
            main = f"{base}/{posixpath.basename(asset.v2_yaml)}"
            files[main] = _set_name(files[main], name, version)
            unit = _Unit(asset, main, files)
        else:
            own = _own_file(asset)
            body: dict[str, Any] = {"name": name, "version": version or "1"}
            if kind == "dockerfile":
                context = posixpath.dirname(own)
                files = _copy(ctx, asset.files, context, f"{base}/context")
                body["build"] = {"path": "context", "dockerfile_path": own[len(context) + 1 :]}
            else:
                conda = posixpath.basename(own)
                files = _copy(ctx, [own], posixpath.dirname(own), base)
                body["image"] = str(
                    asset.attrs.get("base_image") or asset.attrs.get("image") or DEFAULT_BASE_IMAGE
                )
                body["conda_file"] = conda
            body["description"] = "Imported by amlport"
            body["tags"] = provenance_tags(ctx.manifest, asset, None)
            main = f"{base}/environment.yml"
            files[main] = _dump("environment", body)
            unit = _Unit(asset, main, files)
        unit.registers.append(("environment", unit.main, asset.id))
        return unit

    def _pipeline(self, asset: AssetEntry, name: str, ctx: ImportContext) -> _Unit:
        spec = str(asset.v2_yaml)
        root = posixpath.commonpath([posixpath.dirname(p) for p in [*asset.files, spec]])
        base = f"pipelines/{name}"
        files = _copy(ctx, sorted(set(asset.files) | {spec}), root, base)
        main = f"{base}/{spec[len(root) + 1 :]}"
        unit = _Unit(asset, main, files)
        covered = {a.v2_yaml for a in ctx.assets("environment")}
        for bundle_path in sorted(asset.files):
            out = f"{base}/{bundle_path[len(root) + 1 :]}"
            if bundle_path == spec or not out.endswith((".yml", ".yaml")):
                continue
            kind, doc = _spec_kind(files[out])
            if kind is None or (kind == "environment" and bundle_path in covered):
                continue
            old_name = str(doc.get("name") or "")
            old_version = None if doc.get("version") is None else str(doc["version"])
            new_name, new_version, _ = renamed(old_name, old_version, None, ctx.mapping.assets)
            if old_name:
                files[out] = _set_name(files[out], new_name, new_version)
            unit.registers.append((kind, out, bundle_path))
        unit.registers.append(("pipeline", main, spec))
        return unit

    # --- decide and apply ------------------------------------------------------------------

    def _state(self, files: dict[str, bytes]) -> str:
        """``same`` (every file there, identical), ``differs`` (one differs), else ``new``."""
        seen: Counter[str] = Counter()
        for rel, data in files.items():
            path = self.out_dir / rel
            seen["missing" if not path.is_file() else
                 "same" if path.read_bytes() == data else "differs"] += 1  # fmt: skip
        if seen["differs"]:
            return "differs"
        return "new" if seen["missing"] else "same"

    def _decide(
        self, subject: str, main: str, files: dict[str, bytes], ctx: ImportContext
    ) -> ImportAction:
        state = self._state(files)
        details = {"files": files}
        if state == "same":
            action, reason = "skip", "already there with the same content"
        elif state == "new":
            action, reason = "create", ""
        elif ctx.on_conflict == "overwrite":
            action, reason = "update", "differs from what is there; --on-conflict overwrite"
        elif ctx.on_conflict == "skip":
            action, reason = "skip", "differs from what is there; left alone (--on-conflict skip)"
        else:
            action, reason = "conflict", "differs from what is there (use --on-conflict " \
                                         "overwrite|skip)"  # fmt: skip
        return ImportAction(self.name, action, subject, str(self.out_dir / main), reason, details)

    def apply(self, action: ImportAction, ctx: ImportContext) -> ImportAction:
        if action.action not in ("create", "update"):
            return action
        files: dict[str, bytes] = action.details["files"]
        state = self._state(files)
        if state == "same":
            return ImportAction(
                self.name,
                "skip",
                action.subject,
                action.target,
                "already there with the same content",
                action.details,
            )
        if state == "differs" and action.action == "create":
            return ImportAction(
                self.name,
                "conflict",
                action.subject,
                action.target,
                "other content appeared meanwhile",
                action.details,
            )
        for rel, data in files.items():
            path = self.out_dir / rel
            if path.is_file() and path.read_bytes() == data:
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, data)
            if rel == SCRIPT:
                path.chmod(0o755)
        return action


# --- rendering helpers ---------------------------------------------------------------------


def _emits(asset: AssetEntry) -> bool:
    if asset.kind in ("model", "data"):
        return True
    if asset.kind == "environment":
        return bool(asset.files)
    return asset.kind == "pipeline" and asset.attrs.get("spec_type") == "v2_pipeline_job" \
        and bool(asset.v2_yaml)  # fmt: skip


def _target_names(
    assets: list[AssetEntry], ctx: ImportContext
) -> dict[str, tuple[str, str | None]]:
    """(name, version or None) renamed per the map file (``name`` or ``name:version`` values);
    names that collide within a kind get a stable suffix from the asset id."""
    names = {a.id: renamed(a.name, None, None, ctx.mapping.assets)[:2] for a in assets}
    counts = Counter((a.kind, names[a.id][0]) for a in assets)
    for a in assets:
        name, version = names[a.id]
        if counts[(a.kind, name)] > 1:
            names[a.id] = (f"{name}-{hashlib.sha256(a.id.encode()).hexdigest()[:8]}", version)
    return names


def _target_uri(bundle_path: str, ctx: ImportContext) -> str:
    """Where the storage restore puts ``files/<ds>/<path>``, as a target datastore URI."""
    parts = bundle_path.split("/", 2)
    if len(parts) != 3 or parts[0] != "files":
        raise _Blocked(f"{bundle_path} is not a restored file (files/<datastore>/<path>)")
    _, datastore, path = parts
    uri = f"azureml://datastores/{datastore}/paths/{quote_path(path)}"
    mapped = ctx.rules.target_datastore(datastore, uri)
    ctx.rules.target_container(mapped, uri)  # Unmappable when the target has no such datastore
    return f"azureml://datastores/{mapped}/paths/{quote_path(path)}"


def _copy(ctx: ImportContext, paths: list[str], root: str, base: str) -> dict[str, bytes]:
    """The bundle files under ``root``, re-bound to the target, at ``base/<relative path>``."""
    out: dict[str, bytes] = {}
    for path in sorted(paths):
        if not path.startswith(root + "/"):
            continue
        entry = ctx.manifest.file(path)
        data = ctx.read(path)
        if entry is not None and needs_rewrite(path, entry.size):
            data = rewrite_file(path, data, ctx.rules, bundle_path=path).data
        out[f"{base}/{path[len(root) + 1 :]}"] = data
    return out


def _own_file(asset: AssetEntry) -> str:
    """The file an environment was exported from (its id names it)."""
    candidate = "files/" + asset.id.partition(":")[2]
    if candidate in asset.files:
        return candidate
    if len(asset.files) == 1:
        return asset.files[0]
    raise _Blocked("cannot tell which file of the environment is its definition")


def _spec_kind(data: bytes) -> tuple[str | None, dict[str, Any]]:
    """``component`` / ``environment`` for v2 YAML of those kinds, else None."""
    try:
        doc = yaml.safe_load(data)
    except yaml.YAMLError:
        return None, {}
    if not isinstance(doc, dict):
        return None, {}
    schema = str(doc.get("$schema") or "").lower()
    if "component.schema" in schema:
        return "component", doc
    if "environment.schema" in schema:
        return "environment", doc
    if schema or "jobs" in doc or "name" not in doc:
        return None, doc
    if doc.get("type") in ("command", "parallel", "spark") and "version" in doc:
        return "component", doc
    if ("image" in doc or "build" in doc) and "type" not in doc:
        return "environment", doc
    return None, doc


def _set_name(data: bytes, name: str, version: str | None) -> bytes:
    """Set the top-level ``name`` (and ``version``) of a YAML file, keeping the rest as is."""
    text = data.decode("utf-8")
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(root, yaml.MappingNode):
        return data
    edits = []
    for key, value in root.value:
        if not (isinstance(key, yaml.ScalarNode) and isinstance(value, yaml.ScalarNode)):
            continue
        new = name if key.value == "name" else version if key.value == "version" else None
        if new is not None and new != value.value:
            edits.append((value.start_mark.index, value.end_mark.index, json.dumps(new)))
    for start, end, new in sorted(edits, reverse=True):
        text = text[:start] + new + text[end:]
    return text.encode("utf-8")


def _dump(kind: str, body: dict[str, Any]) -> bytes:
    doc = {"$schema": SCHEMAS[kind], **body}
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000).encode("utf-8")


def _script_files(units: list[_Unit], ctx: ImportContext) -> dict[str, bytes]:
    """``register.sh`` and ``register.json``: every registration once, in dependency order."""
    seen: set[tuple[str, str]] = set()
    entries: list[tuple[str, str]] = []
    for kind, file, key in sorted(
        (r for u in units for r in u.registers), key=lambda r: (ORDER.index(r[0]), r[1])
    ):
        if (kind, key) not in seen:
            seen.add((kind, key))
            entries.append((kind, file))
    t = ctx.mapping.target
    lines = [
        "#!/usr/bin/env bash",
        f"# Generated by amlport from snapshot {ctx.snapshot_id}: registers the v2 assets of",
        "# this folder in the target workspace in dependency order (environments, data, models,",
        "# components, then pipelines submitted as jobs). Needs the Azure CLI ml extension",
        "# (az extension add -n ml) and 'az login'. AMLPORT_SUBSCRIPTION, AMLPORT_RESOURCE_GROUP",
        "# and AMLPORT_WORKSPACE override the target named in the map file.",
        "set -euo pipefail",
        'cd "$(dirname "${BASH_SOURCE[0]}")"',
        _var("RG", "AMLPORT_RESOURCE_GROUP", t.resource_group),
        _var("WS", "AMLPORT_WORKSPACE", t.workspace),
    ]
    target = '--resource-group "$RG" --workspace-name "$WS"'
    if t.subscription_id:
        lines.append(_var("SUB", "AMLPORT_SUBSCRIPTION", t.subscription_id))
        target += ' --subscription "$SUB"'
    lines += [f"az ml {AZ_GROUP[k]} create -f {shlex.quote(f)} {target}" for k, f in entries]
    index = {"format": INDEX_FORMAT, "snapshot": ctx.snapshot_id,
             "assets": [{"kind": k, "file": f} for k, f in entries]}  # fmt: skip
    return {INDEX: (json.dumps(index, indent=2) + "\n").encode(),
            SCRIPT: ("\n".join(lines) + "\n").encode()}  # fmt: skip


def _var(name: str, env: str, value: str | None) -> str:
    if value:
        return f"{name}=${{{env}:-{shlex.quote(value)}}}"
    return f"{name}=${{{env}:?set {env} (the map file names none)}}"


# --- live registration (thin, untested offline) --------------------------------------------


def parse_workspace(text: str) -> tuple[str, str, str]:
    """``SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE`` -> its three parts (UsageError otherwise)."""
    parts = [p.strip() for p in text.split("/")]
    if len(parts) != 3 or not all(parts):
        raise UsageError(
            f"--workspace {text!r}: expected SUBSCRIPTION/RESOURCE_GROUP/WORKSPACE",
            hint="e.g. --workspace 00000000-0000-0000-0000-000000000000/rg-ml/mlw",
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
            f"{path} is missing or unreadable",
            hint="run 'amlport import … --emit-assets DIR' first",
        ) from None
    if not isinstance(doc, dict) or doc.get("format") != INDEX_FORMAT:
        raise UsageError(f"{path} is not an amlport register index ({INDEX_FORMAT})")
    out = []
    for item in doc.get("assets") or []:
        kind, file = str(item.get("kind")), str(item.get("file"))
        if kind not in AZ_GROUP or file.startswith("/") or ".." in file.split("/"):
            raise UsageError(f"{path}: bad entry {item!r}")
        out.append((kind, Path(out_dir) / file))
    return out


def register_live(out_dir: Path, *, workspace: str, credential: Any = None) -> list[str]:
    """Register what ``register.sh`` would, through azure-ai-ml ``MLClient`` (same order).

    Thin and untested offline: needs ``amlport[azureml,identity]`` and a signed-in identity
    (``DefaultAzureCredential`` unless ``credential`` is given). Returns ``kind name:version``.
    """
    subscription, resource_group, name = parse_workspace(workspace)
    entries = load_index(out_dir)
    try:
        from azure.ai.ml import (
            MLClient,
            load_component,
            load_data,
            load_environment,
            load_job,
            load_model,
        )  # fmt: skip
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise AmlportError(
            "live registration needs azure-ai-ml and azure-identity",
            hint="pip install 'amlport[azureml,identity]'",
        ) from None
    client = MLClient(credential or DefaultAzureCredential(), subscription, resource_group, name)
    ops: dict[str, tuple[Any, Any]] = {
        "environment": (load_environment, client.environments), "data": (load_data, client.data),
        "model": (load_model, client.models), "component": (load_component, client.components),
        "pipeline": (load_job, client.jobs),
    }  # fmt: skip
    done = []
    for kind, file in entries:
        load, operations = ops[kind]
        try:
            obj = operations.create_or_update(load(file))
        except Exception as exc:  # azure-core / validation errors: one line, no traceback
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            raise AmlportError(f"registering {file} in workspace {name} failed: {first}") from None
        done.append(f"{kind} {getattr(obj, 'name', '?')}:{getattr(obj, 'version', None) or '-'}")
    return done
