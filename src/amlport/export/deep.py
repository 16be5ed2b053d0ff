"""``verify --deep``: each v2 YAML of a snapshot loads with ``azure.ai.ml`` and each MLmodel
folder with ``mlflow``, from a verified extraction of the snapshot's files.

Both libraries are optional extras and slow to import, so they are imported here, lazily.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.model.manifest import Manifest
from amlport.secrets import redact


@dataclass(frozen=True)
class DeepProblem:
    path: str
    reason: str


def _loaders() -> dict[str, Callable[[str], Any]]:
    try:
        from azure.ai import ml
    except ImportError:
        raise UsageError(
            "verify --deep needs azure-ai-ml to load the v2 YAML",
            hint="pip install 'amlport[azureml,mlflow]'",
        ) from None
    return {
        "model": ml.load_model,
        "environment": ml.load_environment,
        "data": ml.load_data,
        "pipeline": ml.load_job,
        "component": ml.load_component,
    }


def _mlflow_load() -> Callable[[str], Any]:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        from mlflow.models import Model
    except ImportError:
        raise UsageError(
            "verify --deep needs mlflow to load MLmodel folders",
            hint="pip install 'amlport[azureml,mlflow]'",
        ) from None
    return Model.load


def deep_verify(repo: Repository, manifest: Manifest) -> tuple[int, list[DeepProblem]]:
    """(number of documents checked, problems). Reads only; writes to a temp folder."""
    loaders, load_mlmodel = _loaders(), _mlflow_load()
    problems: list[DeepProblem] = []
    checked = 0
    with tempfile.TemporaryDirectory(prefix="amlport-verify-") as tmp:
        root = Path(tmp)
        repo.extract_files(manifest, root)
        for asset in manifest.assets:
            loader = loaders.get(asset.kind)
            if asset.v2_yaml and loader is not None:
                checked += 1
                _try(problems, asset.v2_yaml, loader, root / asset.v2_yaml)
        # MLflow model assets only: a broken MLmodel inside a run record is evidence, not a model.
        for asset in manifest.assets:
            folder = asset.attrs.get("folder")
            if asset.kind == "model" and asset.attrs.get("format") == "mlflow" and folder:
                checked += 1
                _try(problems, f"{folder}/MLmodel", load_mlmodel, root / folder)
    return checked, problems


def _try(problems: list[DeepProblem], path: str, load: Callable[[str], Any], target: Path) -> None:
    try:
        load(str(target))
    except Exception as exc:
        reason = redact(f"{type(exc).__name__}: {exc}").splitlines()[0][:300]
        problems.append(DeepProblem(path, reason))
