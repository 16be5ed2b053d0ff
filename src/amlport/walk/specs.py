"""Recognise v2 YAML (pipeline jobs, components, environments, assets) and conda files.

A document's kind comes from its ``$schema`` when present (the azureml-examples convention),
otherwise from its shape. Bindings ``${{parent.jobs.<job>.outputs.<out>}}`` become
``JobSpec.bindings`` so the lineage graph can draw ``binds`` edges and report dangling ones.
"""

from __future__ import annotations

import re
from typing import Any

from amlport.model.inventory import AssetSpec, ComponentSpec, Environment, JobSpec, PipelineSpec
from amlport.model.pinning import image_pinned

BINDING = re.compile(r"\$\{\{\s*parent\.jobs\.([^.\s}]+)\.outputs\.([^.\s}]+)\s*\}\}")
# ``$schema`` file names (``…/latest/<name>.schema.json``; the component SDK's
# ``…/jsonschema/<Name>.json``), compared exactly after lower-casing and dropping ``_``:
# ``pipelineComponent`` must not match ``component`` or ``pipeline`` as a substring would.
_SCHEMA_KINDS = {
    "schedule": "schedule",
    "pipelinejob": "pipeline",
    "pipelinecomponent": "pipeline_component",
    "commandjob": "command_job",
    "sweepjob": "command_job",
    "commandcomponent": "component",
    "parallelcomponent": "component",
    "sparkcomponent": "component",
    "datatransfercomponent": "component",
    "importcomponent": "component",
    "flowcomponent": "component",
    "environment": "environment",
    "model": "model",
    "mltable": "data",
    "data": "data",
    "dataimport": "data",
}
_PIN = re.compile(r"(==|=|<|>|~=|@)")
# Tools conda files conventionally list without a version; flagging them is noise.
NOT_PINNED_OK = frozenset({"pip"})


def schema_name(doc: dict[str, Any]) -> str | None:
    """The normalised file name of a document's ``$schema`` (``pipelinecomponent``), or None."""
    schema = doc.get("$schema")
    if not isinstance(schema, str) or not schema.strip():
        return None
    name = schema.strip().rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in (".schema.json", ".json"):
        name = name.removesuffix(suffix)
    return name.replace("_", "").replace("-", "")


def spec_kind(doc: Any) -> str | None:
    """pipeline | pipeline_component | component | command_job | environment | model | data |
    schedule | conda | python_env | None.

    A pipeline job without ``$schema`` that another pipeline names as its ``component:`` is a
    pipeline component too; the linker decides that (``walk/linker.py``)."""
    if not isinstance(doc, dict):
        return None
    kind = _SCHEMA_KINDS.get(schema_name(doc) or "")
    if kind is not None:
        return kind
    if doc.get("type") == "pipeline" or isinstance(doc.get("jobs"), dict):
        return "pipeline"
    if "command" in doc and ("inputs" in doc or "outputs" in doc) and "name" in doc:
        return "component"
    if "build_dependencies" in doc and "python" in doc:
        return "python_env"  # MLflow's virtualenv spec, beside conda.yaml in a model folder
    if isinstance(doc.get("dependencies"), list):
        return "conda"
    if "name" in doc and ("image" in doc or "build" in doc):
        return "environment"
    return None


def env_ref(value: Any) -> str | None:
    """A component's ``environment:``: an asset reference string, or an inline definition."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return str(value.get("image") or value.get("name") or "inline")
    return None


def parse_pipeline(doc: dict[str, Any], spec_id: str, path: str) -> PipelineSpec:
    spec = PipelineSpec(
        spec_id=spec_id, path=path, name=_opt_str(doc.get("name")), schema=schema_name(doc)
    )
    spec.jobs = parse_jobs(doc)
    return spec


def parse_jobs(doc: dict[str, Any]) -> dict[str, JobSpec]:
    """The ``jobs:`` of a pipeline job or a pipeline component."""
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict):
        return {}
    return {
        str(name): _parse_job(str(name), job)
        for name, job in sorted(jobs.items(), key=lambda kv: str(kv[0]))
        if isinstance(job, dict)
    }


def _parse_job(name: str, job: dict[str, Any]) -> JobSpec:
    component = job.get("component")
    env = job.get("environment")
    if isinstance(component, dict):  # inline component definition
        env = env or component.get("environment")
        component = component.get("name") or "inline"
    spec = JobSpec(
        name=name,
        component=_opt_str(component),
        environment=env_ref(env),
        type=_opt_str(job.get("type")),
    )
    trial = job.get("trial")  # a sweep job names its component as ``trial:``
    if spec.component is None and isinstance(trial, str):
        spec.component = trial
    for input_name, value in sorted((job.get("inputs") or {}).items(), key=lambda kv: str(kv[0])):
        text = value.get("path") if isinstance(value, dict) else value
        for m in BINDING.finditer(str(text or "")):
            spec.bindings.append((str(input_name), m[1], m[2]))
    return spec


def parse_component(doc: dict[str, Any], spec_id: str, path: str, kind: str) -> ComponentSpec:
    """A component file; a pipeline component (``kind`` ``pipeline_component``) keeps its jobs."""
    spec_type: str | None
    if kind == "command_job":
        spec_type = kind
    elif kind == "pipeline_component":
        spec_type = "pipeline"
    else:
        spec_type = _opt_str(doc.get("type") or "command")
    code = doc.get("code")
    return ComponentSpec(
        spec_id=spec_id,
        path=path,
        name=_opt_str(doc.get("name")),
        version=_opt_str(doc.get("version")),
        type=spec_type,
        environment=env_ref(doc.get("environment")),
        inputs=sorted(str(k) for k in (doc.get("inputs") or {})),
        outputs=sorted(str(k) for k in (doc.get("outputs") or {})),
        jobs=parse_jobs(doc) if spec_type == "pipeline" else {},
        code=code if isinstance(code, str) else None,
    )


def pipeline_as_component(spec: PipelineSpec) -> ComponentSpec:
    """A pipeline job file that another pipeline names as its component (no ``$schema``)."""
    return ComponentSpec(
        spec_id=spec.spec_id,
        path=spec.path,
        name=spec.name,
        type="pipeline",
        jobs=spec.jobs,
    )


def parse_environment(doc: dict[str, Any], env_id: str, path: str) -> Environment:
    image = _opt_str(doc.get("image"))
    return Environment(
        env_id=env_id,
        kind="v2_yaml",
        path=path,
        name=_opt_str(doc.get("name")),
        image=image,
        pinned=image is None or image_pinned(image),
    )


def parse_asset(doc: dict[str, Any], spec_id: str, path: str, kind: str) -> AssetSpec:
    return AssetSpec(
        spec_id=spec_id,
        path=path,
        asset_type=kind,
        name=_opt_str(doc.get("name")),
        version=_opt_str(doc.get("version")),
        type=_opt_str(doc.get("type")),
        target=_opt_str(doc.get("path")),
    )


def parse_conda(doc: dict[str, Any], env_id: str, path: str) -> Environment:
    unpinned = sorted(set(_unpinned_deps(doc.get("dependencies") or [])))
    return Environment(
        env_id=env_id,
        kind="conda",
        path=path,
        name=_opt_str(doc.get("name")),
        pinned=not unpinned,
        unpinned=unpinned,
    )


def _is_package(dep: str) -> bool:
    """A package spec, not a pip option (``-r requirements.txt``) or a tool left unpinned."""
    return dep not in NOT_PINNED_OK and not dep.startswith("-")


def _unpinned_deps(deps: list[Any]) -> list[str]:
    out: list[str] = []
    for dep in deps:
        if isinstance(dep, dict):
            out.extend(_unpinned_deps(list(dep.get("pip") or [])))
        elif isinstance(dep, str) and _is_package(dep) and not _PIN.search(dep):
            out.append(dep)
    return out


def parse_dockerfile(text: str, env_id: str, path: str) -> Environment:
    images = [
        line.split()[1]
        for line in text.splitlines()
        if line.strip().upper().startswith("FROM ") and len(line.split()) > 1
    ]
    image = images[-1] if images else None
    return Environment(
        env_id=env_id, kind="dockerfile", path=path, image=image, pinned=image_pinned(image)
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)
