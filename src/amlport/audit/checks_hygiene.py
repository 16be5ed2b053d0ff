"""Checks over what the walk found in the workspace's storage. Every failure keeps its path
(``container/blob``), so a reader can go straight to the object."""

from __future__ import annotations

from collections.abc import Iterator

from amlport.audit.catalog import Rule
from amlport.audit.engine import CheckContext, CheckFn, Outcome, failed, not_checked, passed
from amlport.model import findings as F
from amlport.model.inventory import Environment, Inventory, Model
from amlport.model.pinning import image_pinned, is_unpinned_ref

WALK = "walk"
DESIGNER_FORMATS = {
    "ilearner": ".ilearner model: loads only in the designer runtime (azureml.studio)",
    "model_directory": "designer ModelDirectory: loads only in the designer runtime",
}
RUN_SCOPED_PREFIXES = ("azureml/", "dataset/", "ExperimentRun/")
MAX_LISTED = 5


def _inventory(ctx: CheckContext) -> Inventory | None:
    return ctx.inventory


def _from_findings(ctx: CheckContext, code: str, clean: str) -> list[Outcome]:
    inv = _inventory(ctx)
    if inv is None:
        return [not_checked(ctx.no_inventory_reason)]
    hits = [f for f in inv.findings if f.code == code]
    if not hits:
        return [passed(clean, evidence=WALK)]
    return [failed(f.message, path=f.path, evidence=f"{WALK}: {code}") for f in hits]


def sas_in_pointer(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    n = len(ctx.inventory.pointers) if ctx.inventory else 0
    return _from_findings(ctx, F.SAS_IN_POINTER, f"no SAS token in {n} designer pointers")


def secrets_in_files(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _from_findings(ctx, F.SECRET_IN_FILE, "no credentials found in the files read")


def dangling_pointers(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    n = len(ctx.inventory.pointers) if ctx.inventory else 0
    return _from_findings(ctx, F.DANGLING_POINTER, f"all {n} designer pointers have data")


def orphan_outputs(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    n = len(ctx.inventory.outputs) if ctx.inventory else 0
    return _from_findings(ctx, F.ORPHAN_OUTPUT, f"all {n} run outputs have their run's record")


def missing_outputs(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    return _from_findings(
        ctx, F.MISSING_OUTPUT, "every output folder a run's logs name as an input holds data"
    )


# --- models --------------------------------------------------------------------------------


def model_path(inv: Inventory, model: Model) -> str:
    container = inv.source.container_of(model.loc.datastore) or model.loc.datastore
    return f"{container}/{model.loc.path}"


def model_uri(model: Model) -> str:
    """The ``azureml://datastores/…/paths/…`` URI of a model folder (for az ml model create)."""
    return f"azureml://datastores/{model.loc.datastore}/paths/{model.loc.path}"


def _live_models(inv: Inventory) -> list[Model]:
    return sorted((m for m in inv.models.values() if m.exists), key=lambda m: m.loc)


def _registered_targets(inv: Inventory) -> list[str]:
    return [a.target for a in inv.assets.values() if a.asset_type == "model" and a.target]


def _is_registered(model: Model, targets: list[str]) -> bool:
    for target in targets:
        if model.loc.path and model.loc.path in target:
            return True
        if model.run_id and (
            f"jobs/{model.run_id}/" in target or f"runs:/{model.run_id}/" in target
        ):
            return True
    return False


def run_output_models(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    """A model that only a run folder holds. Registrations come from the v2 YAML in the
    storage and, when it was read (``--arm-live``), the workspace's model registry; without
    the registry a model the storage does not register is "not checked", not a failure."""
    inv = _inventory(ctx)
    if inv is None:
        return [not_checked(ctx.no_inventory_reason)]
    registry = ctx.facts.registry
    targets = _registered_targets(inv) + list(registry.value or ())
    evidence = f"{WALK} + {registry.origin}" if registry.known else WALK
    out = []
    for model in _live_models(inv):
        if model.format == "unknown" or _is_registered(model, targets):
            continue
        if model.run_id or model.loc.path.startswith(RUN_SCOPED_PREFIXES):
            out.append(_unregistered(inv, model, registry.known, str(registry.reason), evidence))
    if out:
        return out
    return [passed(f"{len(inv.models)} models: none only a run output", evidence=evidence)]


def _unregistered(
    inv: Inventory, model: Model, registry_read: bool, reason: str, evidence: str
) -> Outcome:
    run = f"run {model.run_id}" if model.run_id else "a run"
    kw = {
        "path": model_path(inv, model),
        "evidence": evidence,
        "values": {"model_uri": model_uri(model)},
    }
    if registry_read:
        return failed(
            f"{model.format} model exists only as an output of {run}; neither the storage nor "
            "the workspace's model registry registers it",
            **kw,
        )
    return not_checked(
        f"{model.format} model of {run} is not registered in the storage; {reason}", **kw
    )


def designer_models(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    inv = _inventory(ctx)
    if inv is None:
        return [not_checked(ctx.no_inventory_reason)]
    out = [
        failed(DESIGNER_FORMATS[m.format], path=model_path(inv, m), evidence=WALK)
        for m in _live_models(inv)
        if m.format in DESIGNER_FORMATS
    ]
    return out or [passed(f"{len(inv.models)} models: none designer-only", evidence=WALK)]


# --- specs and environments ----------------------------------------------------------------


def _unpinned(ref: str | None) -> bool:
    if not ref or ref == "inline" or ref.startswith(("file:", "./", "../")):
        return False
    if ref.startswith("azureml:"):
        return is_unpinned_ref(ref)
    return not image_pinned(ref)


def _reference_sites(inv: Inventory) -> Iterator[tuple[str, str, str]]:
    """(path of the YAML, where in it, the reference) for every component/environment ref."""
    for comp in inv.components.values():
        yield (
            comp.path,
            f"component {comp.name or comp.spec_id}: environment",
            comp.environment or "",
        )
    for spec in inv.pipelines.values():
        for job in spec.jobs.values():
            yield spec.path, f"job {job.name}: component", job.component or ""
            inherited = job.definition and job.environment == _comp_env(inv, job.definition)
            if not inherited:
                yield spec.path, f"job {job.name}: environment", job.environment or ""


def _comp_env(inv: Inventory, spec_id: str) -> str | None:
    comp = inv.components.get(spec_id)
    return comp.environment if comp else None


def unpinned_references(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    inv = _inventory(ctx)
    if inv is None:
        return [not_checked(ctx.no_inventory_reason)]
    seen: set[tuple[str, str, str]] = set()
    out = []
    for path, where, ref in _reference_sites(inv):
        if _unpinned(ref) and (path, where, ref) not in seen:
            seen.add((path, where, ref))
            out.append(
                failed(f"{where} {ref} is not pinned to a version", path=path, evidence=WALK)
            )
    for env in inv.environments.values():
        if env.kind in ("v2_yaml", "dockerfile") and env.path and not env.pinned:
            image = env.image or "(none)"
            out.append(
                failed(f"environment image {image} is not pinned", path=env.path, evidence=WALK)
            )
    n = len(inv.pipelines) + len(inv.components)
    return out or [passed(f"{n} pipelines and components: all references pinned", evidence=WALK)]


def conda_unpinned(env: Environment) -> list[str]:
    """Unpinned packages, without pip options such as ``-r requirements.txt``."""
    return [d for d in env.unpinned if not d.lstrip().startswith("-")]


def unpinned_conda(rule: Rule, ctx: CheckContext) -> list[Outcome]:
    inv = _inventory(ctx)
    if inv is None:
        return [not_checked(ctx.no_inventory_reason)]
    out = []
    condas = [e for e in inv.environments.values() if e.kind == "conda" and e.path]
    for env in sorted(condas, key=lambda e: str(e.path)):
        loose = conda_unpinned(env)
        if loose:
            listed = ", ".join(loose[:MAX_LISTED]) + (" …" if len(loose) > MAX_LISTED else "")
            out.append(
                failed(
                    f"{len(loose)} unpinned dependencies: {listed}", path=env.path, evidence=WALK
                )
            )
    return out or [passed(f"{len(condas)} conda files: all dependencies pinned", evidence=WALK)]


CHECKS: dict[str, CheckFn] = {
    "sas_in_pointer": sas_in_pointer,
    "secrets_in_files": secrets_in_files,
    "dangling_pointers": dangling_pointers,
    "run_output_models": run_output_models,
    "designer_models": designer_models,
    "unpinned_references": unpinned_references,
    "unpinned_conda": unpinned_conda,
    "orphan_outputs": orphan_outputs,
    "missing_outputs": missing_outputs,
}
