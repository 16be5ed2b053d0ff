"""The typed inventory a walk produces: what a workspace's storage holds.

Everything here is a plain record; ``Inventory.to_dict`` is deterministic (sorted, no
timestamps or etags) so that a walk of a local copy and of the live account compare equal.
Locations are ``(datastore, path)`` pairs, never account URLs: the neutral form.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from amlport.model.findings import Finding
from amlport.model.workspace import WorkspaceDescriptor


@dataclass(frozen=True, order=True)
class Loc:
    """A folder or file in a datastore, without trailing slash."""

    datastore: str
    path: str

    def __str__(self) -> str:
        return f"{self.datastore}/{self.path}"


@dataclass
class InputRef:
    """A location a run read, and how we know (which log file said so)."""

    loc: Loc
    port: str | None = None
    evidence: str = ""
    target_kind: str = "data"  # output (a run's output folder) | data (anything else)


@dataclass
class Run:
    run_id: str
    kind: str = "run"  # pipeline_run | step_run | run
    runtime: str = "unknown"  # classic | common | pipeline | legacy_workdir | unknown
    parent_id: str | None = None
    node_id: str | None = None
    module: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    log_files: list[str] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    inputs: list[InputRef] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    status: str | None = None  # completed | failed | canceled | running, from its logs
    started: str | None = None  # ISO 8601 UTC times from its logs (walk/runtimes.py)
    ended: str | None = None
    exists: bool = True  # False: named by a parent's log but no ExperimentRun folder found
    # Designer facts (walk/designer.py, docs/designer.md): how the module is known (log |
    # ports), the ports its command line names, reuse of an earlier run, the context the
    # logs show, and the edges the walk could not establish (reported, never dropped).
    module_evidence: str | None = None
    ports_in: list[str] = field(default_factory=list)
    ports_out: list[str] = field(default_factory=list)
    reused: bool = False
    reused_from: str | None = None
    experiment: str | None = None
    compute: str | None = None
    unestablished: list[str] = field(default_factory=list)


@dataclass
class Output:
    loc: Loc
    run_id: str | None
    port: str
    format: str = "files"  # DataFrameDirectory | ModelDirectory | ILearner | mlflow_model | …
    files: list[str] = field(default_factory=list)
    size: int = 0
    exists: bool = True


@dataclass
class Model:
    loc: Loc
    format: str  # mlflow | ilearner | model_directory
    run_id: str | None = None
    name: str | None = None
    flavors: list[str] = field(default_factory=list)
    portable: bool = False
    portability: str = ""
    pointer: str | None = None  # container/blob of a designer pointer file naming it
    environment: str | None = None  # id of the environment record it ships with
    deployment_files: str | None = None  # trained_model_outputs folder (container/path)
    exists: bool = True
    # MLmodel ``signature``: part (inputs|outputs|params) -> ``name: type`` entries, summarised
    # (walk/parsers.py ``parse_signature``); None when the MLmodel has none.
    signature: dict[str, list[str]] | None = None


@dataclass
class Pointer:
    """A designer port pointer file (the serialised AzureBlobReference)."""

    path: str  # container/blob of the pointer itself
    run_id: str | None
    port: str
    target: Loc | None
    has_sas: bool = False


@dataclass
class Environment:
    env_id: str
    kind: str  # conda | dockerfile | v2_yaml | reference
    path: str | None = None
    name: str | None = None
    image: str | None = None
    pinned: bool = True
    unpinned: list[str] = field(default_factory=list)
    # What Azure ML builds it from (walk/environments.py): a v2 YAML's ``conda_file`` and
    # ``build.path`` as written, and the container/blob paths they resolve to.
    conda_file: str | None = None
    build_path: str | None = None
    needs: list[str] = field(default_factory=list)  # files it needs beside its own (blobs)
    context: str | None = None  # container/folder of its Docker build context
    part_of: str | None = None  # env_id of the v2 environment this file belongs to
    digest: str | None = None  # SHA-256 of a conda file's parsed content (identical = same)
    same_as: str | None = None  # env_id of the identical environment that stands for it


@dataclass
class JobSpec:
    name: str
    component: str | None = None
    environment: str | None = None
    bindings: list[tuple[str, str, str]] = field(default_factory=list)  # (input, job, output)
    type: str | None = None
    definition: str | None = None  # spec_id of the component file it uses, when found


@dataclass
class PipelineSpec:
    spec_id: str
    path: str
    name: str | None = None
    jobs: dict[str, JobSpec] = field(default_factory=dict)
    schema: str | None = None  # normalised ``$schema`` file name (walk/specs.py), if any


@dataclass
class ComponentSpec:
    spec_id: str
    path: str
    name: str | None = None
    version: str | None = None
    type: str | None = None
    environment: str | None = None
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    jobs: dict[str, JobSpec] = field(default_factory=dict)  # a pipeline component's jobs
    code: str | None = None  # ``code:`` as written (a folder relative to the file, or a URI)


@dataclass
class AssetSpec:
    """A v2 model, data or schedule YAML."""

    spec_id: str
    path: str
    asset_type: str  # model | data | schedule
    name: str | None = None
    version: str | None = None
    type: str | None = None
    target: str | None = None


@dataclass
class Upload:
    loc: Loc
    kind: str  # LocalUpload | az-ml-artifacts | UI | dataset | user
    files: int = 0
    size: int = 0


@dataclass
class Inventory:
    source: WorkspaceDescriptor
    blobs: int = 0
    bytes: int = 0
    runs: dict[str, Run] = field(default_factory=dict)
    outputs: dict[Loc, Output] = field(default_factory=dict)
    models: dict[Loc, Model] = field(default_factory=dict)
    pointers: list[Pointer] = field(default_factory=list)
    environments: dict[str, Environment] = field(default_factory=dict)
    pipelines: dict[str, PipelineSpec] = field(default_factory=dict)
    components: dict[str, ComponentSpec] = field(default_factory=dict)
    assets: dict[str, AssetSpec] = field(default_factory=dict)
    uploads: dict[Loc, Upload] = field(default_factory=dict)
    unknown: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    amlport_records: list[str] = field(default_factory=list)  # blobs under amlport/ (imports)

    def run(self, run_id: str) -> Run:
        """The run record for ``run_id``, created (as not-yet-seen) when missing."""
        if run_id not in self.runs:
            self.runs[run_id] = Run(run_id=run_id, exists=False)
        return self.runs[run_id]

    def counts(self) -> dict[str, int]:
        return {
            "blobs": self.blobs,
            "runs": len(self.runs),
            "outputs": len(self.outputs),
            "models": len(self.models),
            "pointers": len(self.pointers),
            "environments": len(self.environments),
            "pipelines": len(self.pipelines),
            "components": len(self.components),
            "assets": len(self.assets),
            "uploads": len(self.uploads),
            "unknown_files": sum(self.unknown.values()),
            "findings": len(self.findings),
        }

    def to_dict(self) -> dict[str, Any]:
        def rows(values: Any, key: Any) -> list[dict[str, Any]]:
            return [_plain(v) for v in sorted(values, key=key)]

        return {
            "source": self.source.to_dict(),
            "counts": self.counts(),
            "bytes": self.bytes,
            "runs": rows(self.runs.values(), lambda r: r.run_id),
            "outputs": rows(self.outputs.values(), lambda o: o.loc),
            "models": rows(self.models.values(), lambda m: m.loc),
            "pointers": rows(self.pointers, lambda p: p.path),
            "environments": rows(self.environments.values(), lambda e: e.env_id),
            "pipelines": rows(self.pipelines.values(), lambda p: p.spec_id),
            "components": rows(self.components.values(), lambda c: c.spec_id),
            "assets": rows(self.assets.values(), lambda a: a.spec_id),
            "uploads": rows(self.uploads.values(), lambda u: u.loc),
            "unknown": dict(sorted(self.unknown.items())),
            "amlport_records": sorted(self.amlport_records),
            "findings": [f.to_dict() for f in sorted(self.findings)],
        }


class _Unusual(Exception):
    """A value outside ``_direct``'s plain types: ``_plain`` takes the general way."""


_LEAVES = frozenset({str, int, float, bool, type(None)})


def _plain(record: Any) -> dict[str, Any]:
    """``record`` as JSON-ready rows: ``asdict`` then ``_jsonable``. The records of a scan
    hold only strings, numbers, lists, dicts and nested dataclasses; ``_direct`` converts those
    in one pass, without ``asdict``'s deep copies (a fifth of a scan's own CPU after the
    walk), and gives the same result; anything else takes the general way."""
    try:
        return {f.name: _direct(getattr(record, f.name)) for f in fields(record)}
    except _Unusual:
        data = asdict(record)
        return {k: _jsonable(v) for k, v in data.items()}


def _direct(value: Any) -> Any:
    """``_jsonable(asdict-converted value)`` for plain values; ``_Unusual`` for any other."""
    kind = type(value)
    if kind in _LEAVES:
        return value
    if kind is list or kind is tuple:
        return [_direct(v) for v in value]
    if is_dataclass(value) and not isinstance(value, type):
        value = {f.name: getattr(value, f.name) for f in fields(value)}
    elif kind is not dict:
        raise _Unusual
    if value.keys() == {"datastore", "path"}:
        datastore, path = value["datastore"], value["path"]
        if type(datastore) is not str or type(path) is not str:
            raise _Unusual
        return f"{datastore}/{path}"
    if any(type(k) is not str for k in value):
        raise _Unusual
    return {k: _direct(v) for k, v in sorted(value.items(), key=lambda kv: kv[0])}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"datastore", "path"}:
            return f"{value['datastore']}/{value['path']}"
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value
