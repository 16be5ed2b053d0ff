"""Link the records of a walk: run tree, pointer targets, inputs to outputs, models, specs.

Pure over the inventory plus one question to the listing (``has_blobs``: is there anything
under this container/path?). Every inference here is described in docs/concepts.md.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable

from amlport.model import findings as F
from amlport.model.findings import Finding, Severity
from amlport.model.inventory import (
    Environment,
    InputRef,
    Inventory,
    JobSpec,
    Loc,
    Model,
    Output,
    Run,
)
from amlport.model.pinning import image_pinned, is_unpinned_ref
from amlport.walk import designer, environments, runtimes
from amlport.walk.specs import pipeline_as_component

HasBlobs = Callable[[str, str], bool]
TRIAL = re.compile(r"^(?P<base>.+)_(?P<n>\d+)$")
MODEL_FORMATS = {"ILearner": "ilearner", "ModelDirectory": "model_directory"}
DESIGNER_RUNTIME = "needs the designer runtime (azureml.studio) to load; not portable"


def link(inv: Inventory, has_blobs: HasBlobs) -> None:
    _canonical_datastores(inv)
    _run_tree(inv)
    designer.link_runs(inv)  # module from its ports, pre-MLflow models
    _output_formats(inv)
    _designer_models(inv)
    _pointers(inv, has_blobs)
    _deployment_files(inv)
    _inputs(inv, has_blobs)
    designer.link_edges(inv)  # unnamed ports, edges not established
    _job_definitions(inv)
    _environment_refs(inv)
    environments.link(inv)  # an environment's own files; identical environments as one
    _bindings(inv)
    runtimes.settle(inv.runs)  # a pipeline run's end state from its children's
    _sort(inv)


def _canonical(inv: Inventory, datastore: str) -> str:
    """The built-in name of the datastore that names the same container (e.g. mlops_blob)."""
    container = inv.source.container_of(datastore)
    return (inv.source.datastore_of(container) if container else None) or datastore


def _canonical_datastores(inv: Inventory) -> None:
    for run in inv.runs.values():
        for ref in run.inputs:
            ref.loc = Loc(_canonical(inv, ref.loc.datastore), ref.loc.path)
    for p in inv.pointers:
        if p.target is not None:
            p.target = Loc(_canonical(inv, p.target.datastore), p.target.path)


def _run_tree(inv: Inventory) -> None:
    for run in list(inv.runs.values()):
        m = TRIAL.match(run.run_id)
        if run.parent_id is None and m and m["base"] in inv.runs:
            run.parent_id = m["base"]
            inv.runs[m["base"]].children.append(run.run_id)
    for run in inv.runs.values():
        run.runtime = _runtime(run)
        # A pipeline parent: children with node ids, or (a local orchestrator, children
        # beyond the first five) a run that only has pipeline logs.
        if run.children and (
            run.runtime == "pipeline" or any(inv.runs[c].node_id for c in run.children)
        ):
            run.kind = "pipeline_run"
    for run in inv.runs.values():
        parent = inv.runs.get(run.parent_id) if run.parent_id else None
        if run.kind != "pipeline_run" and (
            run.node_id is not None or (parent is not None and parent.kind == "pipeline_run")
        ):
            run.kind = "step_run"


def _runtime(run: Run) -> str:
    if any(f.startswith("azureml-logs/") for f in run.log_files):
        return "classic"
    if any(f.startswith(("user_logs/", "system_logs/")) for f in run.log_files):
        return "common"
    if "logs/azureml/executionlogs.txt" in run.log_files:
        return "pipeline"
    return run.runtime


def _output_formats(inv: Inventory) -> None:
    for out in inv.outputs.values():
        if "data.ilearner" in out.files:
            out.format = "ILearner"
        elif "MLmodel" in out.files and out.format == "files":
            out.format = "mlflow_model"
        if out.run_id and not inv.runs.get(out.run_id, Run(out.run_id, exists=False)).exists:
            inv.findings.append(
                Finding(
                    F.ORPHAN_OUTPUT,
                    f"{inv.source.container_of(out.loc.datastore)}/{out.loc.path}",
                    f"output folder of run {out.run_id}, which has no run record in the "
                    "artifact store",
                    Severity.LOW,
                )
            )


def _designer_models(inv: Inventory) -> None:
    for out in inv.outputs.values():
        fmt = MODEL_FORMATS.get(out.format)
        if fmt and out.loc not in inv.models and not designer.is_untrained(inv, out):
            inv.models[out.loc] = Model(
                loc=out.loc, format=fmt, run_id=out.run_id, portability=DESIGNER_RUNTIME
            )


def _pointers(inv: Inventory, has_blobs: HasBlobs) -> None:
    for p in inv.pointers:
        if p.target is None:
            continue
        container = inv.source.container_of(p.target.datastore)
        if container is None:
            designer.off_copy_pointer(inv, p)  # recorded and reported, not checked
            continue
        if p.target in inv.models:
            inv.models[p.target].pointer = p.path
        if has_blobs(container, p.target.path):
            continue
        inv.findings.append(
            Finding(
                F.DANGLING_POINTER,
                p.path,
                f"points at {container}/{p.target.path}/, which holds no blobs; "
                "deployments that use it will fail",
                Severity.HIGH,
            )
        )
        _missing_output(inv, p.target, p.run_id, p.port)
        if "model" in p.port.lower() and p.target not in inv.models:
            inv.models[p.target] = Model(
                loc=p.target,
                format="unknown",
                run_id=p.run_id,
                pointer=p.path,
                portability="target missing",
                exists=False,
            )


def _missing_output(inv: Inventory, loc: Loc, run_id: str | None, port: str) -> None:
    if loc not in inv.outputs:
        inv.outputs[loc] = Output(loc=loc, run_id=run_id, port=port, exists=False)


def _deployment_files(inv: Inventory) -> None:
    art = inv.source.artifact_container
    ds = inv.source.datastore_of(art) or art
    for run in inv.runs.values():
        if not any(a.startswith("trained_model_outputs/") for a in run.artifacts):
            continue
        folder = f"ExperimentRun/dcid.{run.run_id}/trained_model_outputs"
        env_id = next(
            (
                e
                for e in (f"{ds}/{folder}/conda_env.yaml", f"{ds}/{folder}/conda_env.yml")
                if e in inv.environments
            ),
            None,
        )
        for model in inv.models.values():
            if model.run_id == run.run_id and model.format in MODEL_FORMATS.values():
                model.deployment_files = f"{art}/{folder}"
                model.environment = model.environment or env_id


def output_key(loc: Loc, runs: dict[str, Run]) -> Loc | None:
    """The output folder holding a location: ``azureml|dataset/<run>/<port>``, ``<run>/<port>``."""
    parts = loc.path.split("/")
    if parts[0] in ("azureml", "dataset") and len(parts) >= 3:
        return Loc(loc.datastore, "/".join(parts[:3]))
    if parts[0] in runs and len(parts) >= 2:
        return Loc(loc.datastore, "/".join(parts[:2]))
    return None


def _inputs(inv: Inventory, has_blobs: HasBlobs) -> None:
    for run in inv.runs.values():
        kept: dict[Loc, InputRef] = {}
        for ref in run.inputs:
            if _owner(ref.loc) == run.run_id:
                continue  # the run's own output or working directory
            key = output_key(ref.loc, inv.runs)
            if key is not None:
                ref.loc, ref.target_kind = key, "output"
            if ref.loc not in kept or kept[ref.loc].port is None:
                kept[ref.loc] = ref  # one edge per location; keep the one that names the port
        for ref in kept.values():
            if ref.target_kind == "output":
                _check_output_exists(inv, run, ref, has_blobs)
        run.inputs = sorted(kept.values(), key=lambda r: r.loc)


def _owner(loc: Loc) -> str | None:
    """The run a run-scoped location belongs to (``azureml|dataset/<run>/…`` or ``<run>/…``)."""
    parts = loc.path.split("/")
    if parts[0] in ("azureml", "dataset"):
        return parts[1] if len(parts) > 1 else None
    return parts[0]


def _check_output_exists(inv: Inventory, run: Run, ref: InputRef, has_blobs: HasBlobs) -> None:
    container = inv.source.container_of(ref.loc.datastore)
    if container is None or (ref.loc in inv.outputs and inv.outputs[ref.loc].exists):
        return
    if has_blobs(container, ref.loc.path):
        return
    port = ref.loc.path.rsplit("/", 1)[-1]
    if ref.loc not in inv.outputs:
        inv.findings.append(
            Finding(
                F.MISSING_OUTPUT,
                f"{container}/{ref.loc.path}",
                f"run {run.run_id} expected this output (per {ref.evidence}) but it left no "
                "blobs (an empty upload-mode output; downstream mounts fail with "
                "StreamAccess.NotFound)",
                Severity.MEDIUM,
            )
        )
    _missing_output(inv, ref.loc, _owner(ref.loc), port)


def job_sets(inv: Inventory) -> list[tuple[str, str, dict[str, JobSpec]]]:
    """(spec id, file path, jobs) of every pipeline job and pipeline component."""
    sets = [(p.spec_id, p.path, p.jobs) for p in inv.pipelines.values()]
    sets += [(c.spec_id, c.path, c.jobs) for c in inv.components.values() if c.jobs]
    return sorted(sets, key=lambda s: s[0])


def _job_definitions(inv: Inventory) -> None:
    """Link each job to the component file its ``component:`` names (docs/concepts.md)."""
    _pipeline_components(inv)
    for spec_id, _, jobs in job_sets(inv):
        folder = posixpath.dirname(spec_id)
        for job in jobs.values():
            definition = resolve_component(inv, folder, job.component)
            if definition is None or definition == spec_id:
                continue
            job.definition = definition
            comp = inv.components.get(definition)
            if comp is not None:
                job.environment = job.environment or comp.environment


def _pipeline_components(inv: Inventory) -> None:
    """A pipeline file without ``$schema`` that a job names as its component is a pipeline
    component, not a pipeline job of its own (one with ``pipelineJob.schema.json`` stays a job:
    that is what its author declared)."""
    named: set[str] = set()
    for spec_id, _, jobs in job_sets(inv):
        for job in jobs.values():
            found = resolve_component(inv, posixpath.dirname(spec_id), job.component)
            if found is not None:
                named.add(found)
    for spec_id in sorted(named & inv.pipelines.keys()):
        spec = inv.pipelines[spec_id]
        if spec.schema is None and any(
            resolve_component(inv, posixpath.dirname(o), j.component) == spec_id
            for o, _, jobs in job_sets(inv)
            if o != spec_id
            for j in jobs.values()
        ):
            inv.components[spec_id] = pipeline_as_component(inv.pipelines.pop(spec_id))


_LABEL_OR_VERSION = re.compile(r"^(?P<name>[^:@/]+)(?::(?P<version>[^:@/]+)|@(?P<label>[^:@/]+))?$")


def component_ref(ref: str) -> tuple[str, str | None] | None:
    """(name, version or None) of an asset reference to a component: ``azureml:name:version``,
    ``azureml:name@label``, ``azureml:name``, ``azureml://registries/<r>/components/<name>/
    versions/<v>`` (or ``/labels/<l>``), the workspace ARM form with ``/components/``."""
    body = ref.strip().removeprefix("azureml:")
    if body.startswith("/"):
        parts = [p for p in body.split("/") if p]
        if "components" not in parts:
            return None
        at = parts.index("components")
        rest = parts[at + 1 :]
        if not rest:
            return None
        version = rest[2] if len(rest) >= 3 and rest[1] == "versions" else None
        return rest[0], version
    m = _LABEL_OR_VERSION.match(body)
    return (m["name"], m["version"]) if m else None


def resolve_component(inv: Inventory, folder: str, ref: str | None) -> str | None:
    """The spec id of the component (or pipeline) file a job's ``component:`` names, when it
    is in this workspace: a relative file (``./x.yml``, ``file:x.yml``) beside the referring
    file, else the one code snapshot ``LocalUpload/<hash>/<its folder>/`` holding it (how
    ``az ml`` uploads each ``code:`` folder on its own); an asset reference by name and
    version (``azureml:name:1``), or by name only (a label such as ``@latest``: the highest
    version found). None when it names nothing here, or more than one file."""
    text = (ref or "").strip()
    if not text or text == "inline":
        return None
    if text.startswith("azureml:"):
        found = component_ref(text)
        return _by_name(inv, *found) if found else None
    path = text.removeprefix("file:")
    if not path.endswith((".yml", ".yaml")) or "://" in path or path.startswith("/"):
        return None
    spec_id = posixpath.normpath(posixpath.join(folder, path))
    if spec_id.split("/", 1)[0] != folder.split("/", 1)[0]:
        return None  # climbed out of the datastore
    if spec_id in inv.components or spec_id in inv.pipelines:
        return spec_id
    return _in_snapshot(inv, posixpath.normpath(path))


def _in_snapshot(inv: Inventory, path: str) -> str | None:
    parts = path.split("/")
    if len(parts) < 2 or ".." in parts[-2:]:
        return None
    suffix = parts[-2:]
    found = [
        c
        for c in inv.components
        if (p := c.split("/"))[1:2] == ["LocalUpload"] and len(p) == 5 and p[3:] == suffix
    ]
    return found[0] if len(found) == 1 else None


def _by_name(inv: Inventory, name: str, version: str | None) -> str | None:
    found = [
        c
        for c in inv.components.values()
        if c.name == name and (version is None or c.version == version)
    ]
    if not found:
        return None
    ordered = sorted(found, key=lambda c: c.spec_id)  # max keeps the first of equal copies
    return max(ordered, key=lambda c: _version_key(c.version)).spec_id


def _version_key(version: str | None) -> tuple[int, ...]:
    """Numeric versions compare as numbers (``10`` after ``9``); others rank lowest."""
    if version is None or not all(p.isdigit() for p in version.split(".")):
        return (-1,)
    return tuple(int(p) for p in version.split("."))


def _environment_refs(inv: Inventory) -> None:
    by_name = {e.name: e.env_id for e in inv.environments.values() if e.kind == "v2_yaml"}
    refs = [c.environment for c in inv.components.values()]
    refs += [j.environment for _, _, jobs in job_sets(inv) for j in jobs.values()]
    for ref in refs:
        if not ref or ref in inv.environments or ref == "inline":
            continue
        if not ref.startswith("azureml:"):  # an inline environment: a container image
            inv.environments[ref] = Environment(
                env_id=ref, kind="image", image=ref, pinned=image_pinned(ref)
            )
            continue
        name = _ref_name(ref)
        if name in by_name:
            continue
        inv.environments[ref] = Environment(
            env_id=ref, kind="reference", name=name, pinned=not is_unpinned_ref(ref)
        )


def _ref_name(ref: str) -> str | None:
    """``azureml:name@latest`` / ``azureml:name:3`` / ``azureml://registries/r/environments/name/…``."""
    body = ref.removeprefix("azureml:")
    if body.startswith("//"):
        parts = body.split("/")
        return parts[6] if len(parts) > 6 else None
    return re.split(r"[:@]", body, maxsplit=1)[0] or None


def environment_id(inv: Inventory, ref: str | None) -> str | None:
    """The environment record a component/job reference resolves to."""
    if not ref or ref == "inline":
        return None
    if ref in inv.environments:
        return ref
    name = _ref_name(ref)
    for env in inv.environments.values():
        if env.kind == "v2_yaml" and env.name == name:
            return env.env_id
    return None


def _bindings(inv: Inventory) -> None:
    for _, path, jobs in job_sets(inv):
        for job in jobs.values():
            for input_name, source_job, output in job.bindings:
                if source_job in jobs:
                    continue
                inv.findings.append(
                    Finding(
                        F.DANGLING_BINDING,
                        path,
                        f"job {job.name!r} input {input_name!r} binds to "
                        f"parent.jobs.{source_job}.outputs.{output}, but the pipeline has no "
                        f"job {source_job!r}",
                        Severity.MEDIUM,
                    )
                )


def _sort(inv: Inventory) -> None:
    for run in inv.runs.values():
        run.log_files.sort()
        run.artifacts.sort()
        run.children.sort()
    for out in inv.outputs.values():
        out.files.sort()
    inv.pointers.sort(key=lambda p: p.path)
    inv.findings.sort()
