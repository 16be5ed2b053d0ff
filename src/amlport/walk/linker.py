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
from amlport.model.inventory import Environment, InputRef, Inventory, Loc, Model, Output, Run
from amlport.model.pinning import image_pinned, is_unpinned_ref

HasBlobs = Callable[[str, str], bool]
TRIAL = re.compile(r"^(?P<base>.+)_(?P<n>\d+)$")
MODEL_FORMATS = {"ILearner": "ilearner", "ModelDirectory": "model_directory"}
DESIGNER_RUNTIME = "needs the designer runtime (azureml.studio) to load; not portable"


def link(inv: Inventory, has_blobs: HasBlobs) -> None:
    _canonical_datastores(inv)
    _run_tree(inv)
    _output_formats(inv)
    _designer_models(inv)
    _pointers(inv, has_blobs)
    _deployment_files(inv)
    _inputs(inv, has_blobs)
    _job_definitions(inv)
    _environment_refs(inv)
    _bindings(inv)
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
        if run.children and any(inv.runs[c].node_id for c in run.children):
            run.kind = "pipeline_run"
        elif run.node_id is not None:
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
        if fmt and out.loc not in inv.models:
            inv.models[out.loc] = Model(
                loc=out.loc, format=fmt, run_id=out.run_id, portability=DESIGNER_RUNTIME
            )


def _pointers(inv: Inventory, has_blobs: HasBlobs) -> None:
    for p in inv.pointers:
        if p.target is None:
            continue
        container = inv.source.container_of(p.target.datastore)
        if container is None:
            continue  # another storage account or datastore: cannot be checked from here
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


def _job_definitions(inv: Inventory) -> None:
    """Resolve ``component: file:./x.yml`` against the pipeline file's folder."""
    for spec in inv.pipelines.values():
        folder = posixpath.dirname(spec.spec_id)
        for job in spec.jobs.values():
            ref = (job.component or "").removeprefix("file:")
            if not ref.endswith((".yml", ".yaml")):
                continue
            spec_id = posixpath.normpath(posixpath.join(folder, ref))
            comp = inv.components.get(spec_id)
            if comp is not None:
                job.definition = spec_id
                job.environment = job.environment or comp.environment


def _environment_refs(inv: Inventory) -> None:
    by_name = {e.name: e.env_id for e in inv.environments.values() if e.kind == "v2_yaml"}
    refs = [c.environment for c in inv.components.values()]
    refs += [j.environment for p in inv.pipelines.values() for j in p.jobs.values()]
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
    for spec in inv.pipelines.values():
        for job in spec.jobs.values():
            for input_name, source_job, output in job.bindings:
                if source_job in spec.jobs:
                    continue
                inv.findings.append(
                    Finding(
                        F.DANGLING_BINDING,
                        spec.path,
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
