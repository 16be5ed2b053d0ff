"""``verify --deep``: each v2 YAML of a snapshot loads with ``azure.ai.ml`` and each MLmodel
folder with ``mlflow``, from a verified extraction of the snapshot's files.

Both libraries are optional extras and slow to import, so they are imported here, lazily.

Every file is extracted hash-checked, so a document that does not load holds the bytes the
export stored: the spec is invalid as exported — in the source too when amlport rewrote
nothing in it (``rewritten`` False). That is a warning about the workspace's content (exit 1,
the failing fields named, the whole reason kept), not a damaged bundle: a damaged object
fails its hash check first (exit 4).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlport.bundle import Repository
from amlport.errors import UsageError
from amlport.model.manifest import Manifest
from amlport.secrets import redact

MAX_REASON = 4000  # characters of a loader's message kept (a schema error lists every field)
# azure-ai-ml's ValidationException lists each failing field as ``"path": "<field>"``.
_FIELD = re.compile(r'"path":\s*"([^"\n]{1,200})"')


@dataclass(frozen=True)
class DeepProblem:
    path: str
    reason: str  # the loader's whole message (redacted, bounded), not only its first line
    fields: tuple[str, ...] = ()  # the failing fields the loader names
    rewritten: bool = False  # amlport rewrote the file on export (else: as in the source)

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "reason": self.reason,
            "fields": list(self.fields),
            "origin": "rewritten on export" if self.rewritten else "source",
        }

    def summary(self) -> str:
        """One line: the file, the failing fields, where the invalid spec comes from."""
        fields = f" (field {', '.join(self.fields)})" if self.fields else ""
        where = "as exported (amlport rewrote it)" if self.rewritten else "in the source workspace"
        return f"{self.path} does not load{fields}: invalid {where}"


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
    rewritten = {r.file for r in manifest.rewrites}
    with tempfile.TemporaryDirectory(prefix="amlport-verify-") as tmp:
        root = Path(tmp)
        repo.extract_files(manifest, root)  # hash-checked: a damaged object raises here
        for asset in manifest.assets:
            loader = loaders.get(asset.kind)
            if asset.v2_yaml and loader is not None:
                checked += 1
                changed = asset.v2_yaml in rewritten
                _try(problems, asset.v2_yaml, loader, root, changed)
        # MLflow model assets only: a broken MLmodel inside a run record is evidence, not a model.
        for asset in manifest.assets:
            folder = asset.attrs.get("folder")
            if asset.kind == "model" and asset.attrs.get("format") == "mlflow" and folder:
                checked += 1
                mlmodel = f"{folder}/MLmodel"
                _try(problems, mlmodel, load_mlmodel, root, mlmodel in rewritten, folder)
    return checked, problems


def _try(
    problems: list[DeepProblem],
    path: str,
    load: Callable[[str], Any],
    root: Path,
    rewritten: bool,
    target: str | None = None,
) -> None:
    """Load ``root/<target or path>``; a failure is a problem named by bundle path (the
    temporary extraction folder is taken out of the loader's message)."""
    try:
        load(str(root / (target or path)))
    except Exception as exc:
        text = f"{type(exc).__name__}: {exc}".replace(f"{root}{os.sep}", "")
        text = redact(text).strip()
        reason = text if len(text) <= MAX_REASON else text[:MAX_REASON] + " …"
        fields = tuple(dict.fromkeys(m[1] for m in _FIELD.finditer(text)))
        problems.append(DeepProblem(path, reason, fields, rewritten))
