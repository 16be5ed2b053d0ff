"""MLflow registry: every MLflow-format model of a snapshot as a registered model version.

For each model asset with ``attrs.format == "mlflow"``, ``plan`` says

- ``create``: no version of the registered model (the asset name after the map's renames) carries
  the tag ``amlport.content_digest`` with this model folder's digest (``folder_digest``);
- ``skip``: such a version exists already (same content registered by an earlier import);
- ``blocked``: the folder is missing from the snapshot, has no ``MLmodel``, or the name is not
  one MLflow filters can address.

``apply`` extracts the folder (hash-checked) to a temporary directory, logs it as the
``model`` artifact of a new run in the experiment ``amlport-imports``, and registers that as a
new version. The run and the version carry the same provenance tags (``provenance_tags``),
among them ``amlport.provenance``: the JSON list of hops (the snapshot's earlier hops, then its
own source), so a model promoted dev → qa → prod shows every workspace it came through.
Re-applying finds the digest and skips: no version is ever registered twice.

mlflow is imported lazily (``amlport[mlflow]``); an unreachable server is one ``AmlportError``
line (exit 2), never a traceback.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from amlport.errors import AmlportError
from amlport.importers.base import ImportAction, ImportContext
from amlport.model.manifest import AssetEntry, FileEntry, Manifest
from amlport.model.provenance import hops
from amlport.rewriters.asset_ref import renamed

EXPERIMENT = "amlport-imports"
ARTIFACT_PATH = "model"
DIGEST_TAG = "amlport.content_digest"
PROBE_TIMEOUT_S = 10.0
# MLflow search filters quote names with '…'; keep to names they can address unambiguously.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\- ]{0,254}\Z")


class MlflowRegistryError(AmlportError):
    """The MLflow tracking server cannot be reached or refused a call (exit 2)."""


def folder_digest(files: list[FileEntry], folder: str) -> str:
    """SHA-256 over the sorted (path relative to ``folder``, digest) pairs of its files."""
    prefix = folder.rstrip("/") + "/"
    pairs = sorted((f.path[len(prefix) :], f.digest) for f in files if f.path.startswith(prefix))
    h = hashlib.sha256()
    for rel, digest in pairs:
        h.update(f"{rel}\0{digest}\n".encode())
    return "sha256:" + h.hexdigest()


def folder_files(manifest: Manifest, folder: str) -> list[FileEntry]:
    prefix = folder.rstrip("/") + "/"
    return sorted((f for f in manifest.files if f.path.startswith(prefix)), key=lambda f: f.path)


def provenance_tags(manifest: Manifest, asset: AssetEntry, digest: str | None) -> dict[str, str]:
    """Provenance of an imported asset: MLflow run and version tags, v2 YAML ``tags``."""
    source = manifest.source
    tags = {
        "amlport.source_account": str(source.get("account") or ""),
        "amlport.source_workspace": str(source.get("workspace") or ""),
        "amlport.snapshot": str(manifest.snapshot_id or ""),
        "amlport.provenance": json.dumps(hops(manifest), sort_keys=True, separators=(",", ":")),
    }
    if asset.attrs.get("run_id"):
        tags["amlport.source_run"] = str(asset.attrs["run_id"])
    if digest:
        tags[DIGEST_TAG] = digest
    return tags


class MlflowRegistryImporter:
    name = "mlflow"

    def __init__(self, tracking_uri: str, *, experiment: str = EXPERIMENT) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._client: Any = None

    # --- plan ------------------------------------------------------------------------------

    def plan(self, ctx: ImportContext) -> list[ImportAction]:
        models = sorted(
            (a for a in ctx.assets("model") if a.attrs.get("format") == "mlflow"),
            key=lambda a: a.id,
        )
        if not models:
            return []
        client = self.client()
        return [self._plan_one(client, asset, ctx) for asset in models]

    def _plan_one(self, client: Any, asset: AssetEntry, ctx: ImportContext) -> ImportAction:
        name = renamed(asset.name, None, None, ctx.mapping.assets)[0]  # a ":version" is dropped
        target = f"mlflow:{name}"
        folder = str(asset.attrs.get("folder") or "")
        files = folder_files(ctx.manifest, folder) if folder else []
        if not _SAFE_NAME.match(name):
            return self._blocked(
                asset,
                target,
                f"registered model name {name!r} is not usable "
                "(letters, digits, '-', '_', '.', ' '; rename it in the map file)",
            )
        if not files:
            return self._blocked(asset, target, "the model folder has no files in the snapshot")
        if not any(f.path == f"{folder.rstrip('/')}/MLmodel" for f in files):
            return self._blocked(asset, target, "the model folder has no MLmodel file")
        digest = folder_digest(files, folder)
        details = {"name": name, "folder": folder, "digest": digest}
        found = self._find(client, name, digest)
        if found is not None:
            return ImportAction(
                self.name,
                "skip",
                asset.id,
                f"{target}/{found}",
                "a version with the same content is registered",
                details,
            )
        return ImportAction(self.name, "create", asset.id, target, "", details)

    def _blocked(self, asset: AssetEntry, target: str, reason: str) -> ImportAction:
        return ImportAction(self.name, "blocked", asset.id, target, reason)

    # --- apply -----------------------------------------------------------------------------

    def apply(self, action: ImportAction, ctx: ImportContext) -> ImportAction:
        if action.action not in ("create", "update"):
            return action
        d = action.details
        client = self.client()
        found = self._find(client, d["name"], d["digest"])
        if found is not None:  # registered meanwhile (a resumed or concurrent import)
            return ImportAction(
                self.name,
                "skip",
                action.subject,
                f"mlflow:{d['name']}/{found}",
                "a version with the same content is registered",
                d,
            )
        ctx.gate.admit(f"MLflow model {d['name']} at {_display(self.tracking_uri)}")
        asset = next(a for a in ctx.manifest.assets if a.id == action.subject)
        tags = provenance_tags(ctx.manifest, asset, d["digest"])
        with tempfile.TemporaryDirectory(prefix="amlport-mlflow-") as tmp:
            local = Path(tmp) / ARTIFACT_PATH
            ctx.repo.extract_files(ctx.manifest, local, under=d["folder"])  # hash-checked
            version = self._register(client, d["name"], local, tags)
        return ImportAction(
            self.name, "create", action.subject, f"mlflow:{d['name']}/{version}", "", d
        )

    def _register(self, client: Any, name: str, local: Path, tags: dict[str, str]) -> str:
        """Log ``local`` as a run's ``model`` artifact and register it: the new version."""
        try:
            experiment = self._experiment_id(client)
            run = client.create_run(experiment, tags=tags, run_name=f"amlport import {name}")
        except Exception as exc:  # MlflowException, or a transport error it did not wrap
            raise self._error(f"cannot create a run for {name}", exc) from None
        run_id = run.info.run_id
        try:
            client.log_artifacts(run_id, str(local), ARTIFACT_PATH)
            self._ensure_registered_model(client, name)
            mv = client.create_model_version(
                name,
                source=f"{run.info.artifact_uri}/{ARTIFACT_PATH}",
                run_id=run_id,
                tags=tags,
                description="Imported by amlport",
                await_creation_for=0,  # no wait loop (and its log lines); the version exists
            )
        except Exception as exc:
            with contextlib.suppress(Exception):  # best effort: the server may be gone
                client.set_terminated(run_id, "FAILED")
            raise self._error(f"cannot register {name}", exc) from None
        client.set_terminated(run_id, "FINISHED")
        return str(mv.version)

    def _experiment_id(self, client: Any) -> str:
        from mlflow.exceptions import MlflowException

        exp = client.get_experiment_by_name(self.experiment)
        if exp is not None:
            return str(exp.experiment_id)
        try:
            return str(client.create_experiment(self.experiment))
        except MlflowException:  # created meanwhile by another import
            exp = client.get_experiment_by_name(self.experiment)
            if exp is None:
                raise
            return str(exp.experiment_id)

    @staticmethod
    def _ensure_registered_model(client: Any, name: str) -> None:
        from mlflow.exceptions import MlflowException

        try:
            client.get_registered_model(name)
        except MlflowException:
            try:
                client.create_registered_model(
                    name, description="Registered by amlport import (see the version tags)"
                )
            except MlflowException as exc:
                if "RESOURCE_ALREADY_EXISTS" not in str(getattr(exc, "error_code", "")):
                    raise

    # --- client ----------------------------------------------------------------------------

    def _find(self, client: Any, name: str, digest: str) -> str | None:
        """The version of ``name`` registered with this content digest, if any."""
        from mlflow.exceptions import MlflowException

        query = f"name = '{name}' and tags.`{DIGEST_TAG}` = '{digest}'"
        try:
            versions = client.search_model_versions(query)
        except MlflowException as exc:
            if "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", "")):
                return None
            raise self._error(f"cannot search the registry for {name}", exc) from None
        found = sorted(int(v.version) for v in versions if v.tags.get(DIGEST_TAG) == digest)
        return str(found[0]) if found else None

    def client(self) -> Any:
        """An ``MlflowClient`` for the tracking (and registry) URI; checks reachability once."""
        if self._client is not None:
            return self._client
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        # MLflow writes "View run … at" to stdout when a run ends: stdout is amlport's (--json).
        os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise MlflowRegistryError(
                "--register-mlflow needs mlflow, which is not installed",
                hint="pip install 'amlport[mlflow]'",
            ) from None
        probe(self.tracking_uri)
        self._client = MlflowClient(self.tracking_uri, registry_uri=self.tracking_uri)
        return self._client

    def _error(self, what: str, exc: Exception) -> MlflowRegistryError:
        where = _display(self.tracking_uri)
        return MlflowRegistryError(f"MLflow at {where}: {what}: {first_line(exc)}")


def first_line(exc: BaseException) -> str:
    """An exception as one short line (messages of SDK errors run over many)."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def probe(tracking_uri: str, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Fail fast (one line) when an http(s) tracking server does not answer.

    MLflow's own client retries for minutes before giving up. Any HTTP answer counts as
    reachable (``/health`` is MLflow's; other servers may 404 it); other schemes are not probed.
    """
    if not tracking_uri.lower().startswith(("http://", "https://")):
        return
    url = _display(tracking_uri).rstrip("/") + "/health"  # credentials are not needed here
    try:
        with urllib.request.urlopen(url, timeout=timeout):
            return
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise MlflowRegistryError(
            f"cannot reach the MLflow tracking server at {_display(tracking_uri)}: {reason}",
            hint="check --register-mlflow (e.g. http://127.0.0.1:5000) and that the server runs",
        ) from None


def _display(uri: str) -> str:
    """The URI without user info or query (either may hold a credential)."""
    head, sep, rest = uri.partition("?")[0].partition("://")
    if not sep:
        return head
    netloc, slash, path = rest.partition("/")
    return f"{head}://{netloc.rpartition('@')[2]}{slash}{path}"
