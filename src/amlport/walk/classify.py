"""Classify a blob path by what Azure ML put there (pure; see docs/concepts.md).

The rules follow ``shared/reference/azureml-storage-layout.md``: the artifact container holds
``ExperimentRun/dcid.<run_id>/…``; the blobstore holds step outputs ``azureml/<run>/<port>/``
(or ``<run>/<port>/`` and ``dataset/<run>/<port>/``), uploads under ``LocalUpload/<hash>/``,
``az-ml-artifacts/<hash>/`` and ``UI/<timestamp>/``, and legacy v1 run working directories.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass

RUN_PREFIX = re.compile(r"^ExperimentRun/dcid\.(?P<run>[^/]+)/(?P<rest>.+)$")
LOG_DIRS = ("azureml-logs/", "logs/", "user_logs/", "system_logs/")
UPLOAD_ROOTS = ("LocalUpload", "az-ml-artifacts", "UI")
RUN_SCOPED_ROOTS = ("azureml", "dataset")
SPEC_SUFFIXES = (".yml", ".yaml")
# Files whose content the walker needs; everything else is listed, sized and counted only.
DESIGNER_FILES = frozenset({"_meta.yaml", "data_type.json", "model_spec.yaml"})


@dataclass(frozen=True)
class ArtifactPath:
    run_id: str
    rest: str  # path below dcid.<run_id>/
    role: str  # log | execution_log | deployment | mlmodel | pointer_candidate | artifact


def classify_artifact(name: str) -> ArtifactPath | None:
    """Classify a blob of the artifact container; None when it is not under a run."""
    m = RUN_PREFIX.match(name)
    if not m:
        return None
    # One string per run id: a run's files (logs, outputs, records) all name it, and the
    # inventory keeps each (~6 MB of copies at 100k blobs).
    run_id, rest = sys.intern(m["run"]), m["rest"]
    return ArtifactPath(run_id, rest, _artifact_role(rest))


def _artifact_role(rest: str) -> str:
    base = rest.rsplit("/", 1)[-1]
    if rest == "logs/azureml/executionlogs.txt":
        return "execution_log"
    if rest.startswith(LOG_DIRS):
        return "log"
    if rest.startswith("trained_model_outputs/"):
        return "deployment"
    if base == "MLmodel":
        return "mlmodel"
    if "/" not in rest and "." not in rest:
        return "pointer_candidate"  # a designer port pointer is named after its port
    return "artifact"


@dataclass(frozen=True)
class BlobstorePath:
    area: str  # run_scoped | upload | other
    root: str  # azureml | dataset | LocalUpload | az-ml-artifacts | UI | <first segment>
    key: str | None  # run id, upload hash or timestamp
    rest: str  # below root/key


def classify_blobstore(name: str) -> BlobstorePath:
    parts = name.split("/", 2)
    root = parts[0]
    if len(parts) >= 3 and root in RUN_SCOPED_ROOTS:
        return BlobstorePath("run_scoped", root, parts[1], parts[2])
    if len(parts) >= 3 and root in UPLOAD_ROOTS:
        return BlobstorePath("upload", root, parts[1], parts[2])
    rest = name.split("/", 1)[1] if "/" in name else ""
    return BlobstorePath("other", root, None, rest)


def is_log_text(rest: str) -> bool:
    base = rest.rsplit("/", 1)[-1]
    return base.endswith((".txt", ".log", ".json")) or ".log." in base


def is_spec_candidate(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base.endswith(SPEC_SUFFIXES) and base not in DESIGNER_FILES


def is_dockerfile(name: str) -> bool:
    base = name.rsplit("/", 1)[-1]
    return base == "Dockerfile" or base.endswith(".dockerfile")


def port_folder(rest: str) -> tuple[str, str] | None:
    """Split ``<port>/<file…>`` below a run-scoped key; None for files directly under the run."""
    if "/" not in rest:
        return None
    port, inner = rest.split("/", 1)
    return port, inner


# Files that hold configuration and code, where credentials get pasted: the walk reads them for
# the secret scan wherever they are (YAML, Dockerfiles and logs are read already). Data files
# (CSV, parquet, model weights, other JSON and text) are not read by the walk: there are many
# and they are large; export searches every byte it copies, ``verify --secrets`` every byte
# stored (docs/audit.md).
_SECRET_PRONE = re.compile(
    r"\.(?:py|ipynb|env|cfg|ini|conf|config|toml|properties|sh|bash|zsh|ps1|bat|cmd|r|scala|"
    r"sql|pem|key|crt|tf|tfvars|bicep|dockerfile)$"
    r"|^(?:\.env(?:\..+)?|\.netrc|\.npmrc|\.pypirc|\.pgpass|\.git-credentials|credentials|"
    r"id_(?:rsa|dsa|ecdsa|ed25519)|dockerfile(?:\..+)?|makefile)$"
    r"|(?:settings|config|secret|credential|auth|token|key|env)[^/]*\.json$",
    re.IGNORECASE,
)


def is_secret_prone(name: str) -> bool:
    """A file the secret scan reads by name (code, notebooks, env and config files)."""
    return _SECRET_PRONE.search(name.rsplit("/", 1)[-1]) is not None
