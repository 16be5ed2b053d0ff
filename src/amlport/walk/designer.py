"""What the walk knows about designer (azureml.studio) runs, pure over the inventory.

- The table of built-in modules (``designer_modules.yaml``, package data): runtime path →
  Studio name, category, ports and parameter labels. A module not in it keeps its path.
- Parameter values as the module host receives them (URL-encoded, decoded by
  ``urldecode_invoker``): ``decode_parameter`` gives the value, its kind and, for a column
  selector, structured rules and a one-line summary; the raw text is kept beside.
- The linking pass for designer steps (``link_runs`` before inputs are resolved,
  ``link_edges`` after): the module from the output ports when no log names it, untrained
  learners (not models), pre-MLflow models (SDK v1 AutoML ``outputs/model.pkl``), outputs
  on a datastore this copy does not hold, and every input edge that could not be
  established — a finding and ``Run.unestablished``, never a silent gap.

Evidence and limits: docs/designer.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import unquote_plus

from amlport.model import findings as F
from amlport.model.findings import Finding, Severity
from amlport.model.inventory import Inventory, Loc, Model, Output, Pointer, Run
from amlport.safeload import load_json, load_yaml
from amlport.walk.logs import LogFacts

STUDIO = "azureml.studio."
TABLE = "designer_modules.yaml"
PRE_MLFLOW_MODEL = "outputs/model.pkl"
PRE_MLFLOW_MARKERS = ("outputs/scoring_file_v_1_0_0.py", "outputs/conda_env_v_1_0_0.yml")
PRE_MLFLOW_ENV = "outputs/conda_env_v_1_0_0.yml"


@dataclass(frozen=True)
class ModuleInfo:
    path: str
    name: str
    category: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    optional_inputs: tuple[str, ...] = ()
    parameters: dict[str, str] = field(default_factory=dict)
    learner: bool = False


@cache
def modules() -> dict[str, ModuleInfo]:
    """The built-in module table, keyed by runtime path (loaded once)."""
    text = resources.files("amlport.walk").joinpath(TABLE).read_text(encoding="utf-8")
    doc = load_yaml(text, f"amlport/walk/{TABLE}")
    table: dict[str, ModuleInfo] = {}
    for row in doc["modules"]:
        info = ModuleInfo(
            path=str(row["path"]),
            name=str(row["name"]),
            category=str(row.get("category", "")),
            inputs=tuple(str(p) for p in row.get("inputs") or ()),
            outputs=tuple(str(p) for p in row.get("outputs") or ()),
            optional_inputs=tuple(str(p) for p in row.get("optional_inputs") or ()),
            parameters={str(k): str(v) for k, v in (row.get("parameters") or {}).items()},
            learner=bool(row.get("learner", False)),
        )
        table[info.path] = info
    return table


def module_info(path: str | None) -> ModuleInfo | None:
    return modules().get(path) if path else None


def display_name(path: str | None) -> str | None:
    """The Studio name of a module, or its runtime path when the table does not know it."""
    info = module_info(path)
    return info.name if info else path


def module_from_outputs(ports: set[str]) -> ModuleInfo | None:
    """The one built-in module whose output ports are exactly these (None if 0 or several)."""
    want = {p.casefold() for p in ports}
    hits = [m for m in modules().values() if {o.casefold() for o in m.outputs} == want]
    return hits[0] if len(hits) == 1 else None


def is_designer_module(path: str | None) -> bool:
    return bool(path) and str(path).startswith(STUDIO)


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class Parameter:
    """One module parameter: the raw command-line text and what it means."""

    key: str
    raw: str
    value: Any
    kind: str  # text | number | boolean | column_selector | json
    label: str | None = None  # the Studio label, when the module table knows it
    rules: tuple[dict[str, Any], ...] = ()
    summary: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"key": self.key, "label": self.label, "value": self.value}
        out["raw"], out["kind"] = self.raw, self.kind
        if self.kind == "column_selector":
            out["rules"], out["summary"] = list(self.rules), self.summary
        return out


def decode_parameter(key: str, raw: str, module: str | None = None) -> Parameter:
    """Decode what ``urldecode_invoker`` decodes: ``%22Remove+entire+row%22`` → text."""
    info = module_info(module)
    label = info.parameters.get(key) if info else None
    text = unquote_plus(raw)
    value: Any = text
    kind = "text"
    if text.lower() in ("true", "false"):
        value, kind = text.lower() == "true", "boolean"
    elif _is_number(text):
        value, kind = (int(text) if text.lstrip("-").isdigit() else float(text)), "number"
    elif text[:1] in ('"', "{", "["):
        try:
            value, kind = load_json(text, f"parameter {key}"), "json"
        except Exception:
            value, kind = text, "text"
        if isinstance(value, str):
            kind = "text"
        elif isinstance(value, dict) and isinstance(value.get("rules"), list):
            rules = tuple(r for r in value["rules"] if isinstance(r, dict))
            return Parameter(
                key, raw, value, "column_selector", label, rules, column_summary(rules)
            )
    return Parameter(key, raw, value, kind, label)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return text.strip() == text and text.lower() not in ("nan", "inf", "-inf", "infinity")


def column_summary(rules: tuple[dict[str, Any], ...]) -> str:
    """One line a person reads: ``all columns except normalized-losses``."""
    included: list[str] = []
    excluded: list[str] = []
    for rule in rules:
        what = _rule_text(rule)
        (excluded if rule.get("exclude") else included).append(what)
    text = ", ".join(included) if included else "no columns"
    if excluded:
        text += " except " + ", ".join(excluded)
    return text


def _rule_text(rule: dict[str, Any]) -> str:
    kind = str(rule.get("ruleType", "?"))
    if kind == "AllColumns":
        return "all columns"
    cols = rule.get("columns")
    if isinstance(cols, list):
        listed = ", ".join(str(c) for c in cols)
    else:
        listed = str(cols) if cols is not None else ""
    if kind == "ColumnNames":
        return f"columns {listed}" if "," in listed else f"column {listed}"
    if kind == "ColumnIndexes":
        return f"column indexes {listed}"
    if kind == "ColumnTypes":
        types = rule.get("columnTypes") or cols
        named = types if isinstance(types, str) else ", ".join(map(str, types or []))
        return f"columns of type {named}"
    return f"{kind} {json.dumps(rule, sort_keys=True)}"


# --------------------------------------------------------------------------- from the logs


def note_log_facts(inv: Inventory, run: Run, facts: LogFacts) -> None:
    """Record what one log says about its run: ports, parent, node id, reuse, context."""
    for port in facts.ports_in:
        if port not in run.ports_in:
            run.ports_in.append(port)
    for port in facts.ports_out:
        if port not in run.ports_out:
            run.ports_out.append(port)
    if facts.parent and facts.parent != run.run_id and run.parent_id is None:
        run.parent_id = facts.parent
        parent = inv.run(facts.parent)
        if run.run_id not in parent.children:
            parent.children.append(run.run_id)
    if facts.node_id and run.node_id is None:
        run.node_id = facts.node_id
    if facts.reused:
        run.reused = True
        run.reused_from = facts.reused_from or run.reused_from
    if facts.started and (run.started is None or facts.started < run.started):
        run.started = facts.started
    if facts.ended and (run.ended is None or facts.ended > run.ended):
        run.ended = facts.ended
    run.status = run.status or facts.status
    run.experiment = run.experiment or facts.experiment
    run.compute = run.compute or facts.compute


# --------------------------------------------------------------------------- linking


def is_designer_step(inv: Inventory, run: Run) -> bool:
    """A run of a designer module, or a child of a pipeline one of whose steps is one."""
    if is_designer_module(run.module) or run.module_evidence == "ports":
        return True
    parent = inv.runs.get(run.parent_id) if run.parent_id else None
    if parent is None:
        return False
    return any(is_designer_module(inv.runs[c].module) for c in parent.children if c in inv.runs)


def _run_outputs(inv: Inventory) -> dict[str, list[Output]]:
    by_run: dict[str, list[Output]] = {}
    for out in inv.outputs.values():
        if out.run_id:
            by_run.setdefault(out.run_id, []).append(out)
    return by_run


def link_runs(inv: Inventory) -> None:
    """Before inputs are resolved: modules known from output ports, pre-MLflow models."""
    by_run = _run_outputs(inv)
    for run in inv.runs.values():
        reused = inv.runs.get(run.reused_from) if run.reused_from else None
        if run.module is None and reused is not None and reused.module:
            run.module, run.module_evidence = reused.module, "reused"
            run.parameters = run.parameters or dict(reused.parameters)
        if run.module is None and run.parent_id is not None and run.run_id in by_run:
            info = module_from_outputs({o.port for o in by_run[run.run_id]})
            if info is not None:
                run.module, run.module_evidence = info.path, "ports"
    _pre_mlflow_models(inv)


def is_untrained(inv: Inventory, out: Output) -> bool:
    """An untrained learner (``Untrained_model`` of Linear Regression…): not a model."""
    if out.port.casefold().startswith("untrained"):
        return True
    run = inv.runs.get(out.run_id) if out.run_id else None
    info = module_info(run.module) if run else None
    return bool(info and info.learner)


def _pre_mlflow_models(inv: Inventory) -> None:
    """SDK v1 AutoML and other pre-MLflow runs: ``outputs/model.pkl`` beside its scoring file."""
    art = inv.source.artifact_container
    ds = inv.source.datastore_of(art) or art
    for run in inv.runs.values():
        have = set(run.artifacts)
        if PRE_MLFLOW_MODEL not in have or not any(m in have for m in PRE_MLFLOW_MARKERS):
            continue
        folder = f"ExperimentRun/dcid.{run.run_id}"
        where = Loc(ds, f"{folder}/{PRE_MLFLOW_MODEL}")
        env = f"{ds}/{folder}/{PRE_MLFLOW_ENV}"
        if where not in inv.models:
            inv.models[where] = Model(
                loc=where,
                format="pre_mlflow",
                run_id=run.run_id,
                portability="pre-MLflow pickle (SDK v1): loads only with its run's scoring file "
                "and the same library versions (conda_env_v_1_0_0.yml)",
                environment=env if env in inv.environments else None,
                deployment_files=f"{art}/{folder}/outputs",
            )


def off_copy_pointer(inv: Inventory, pointer: Pointer) -> None:
    """A port written to a datastore this copy does not hold: recorded and reported."""
    target = pointer.target
    if target is None:
        return
    if target not in inv.outputs:
        inv.outputs[target] = Output(
            loc=target, run_id=pointer.run_id, port=pointer.port, exists=False
        )
    inv.findings.append(
        Finding(
            F.OTHER_DATASTORE,
            pointer.path,
            f"port {pointer.port} of run {pointer.run_id} was written to datastore "
            f"{target.datastore!r}, which this copy does not hold: lineage records the output, "
            "but its files are neither read nor backed up from here",
            Severity.LOW,
        )
    )
    out = inv.outputs[target]
    if "model" in pointer.port.casefold() and not is_untrained(inv, out):
        inv.models.setdefault(
            target,
            Model(
                loc=target,
                format="unknown",
                run_id=pointer.run_id,
                pointer=pointer.path,
                portability=f"on datastore {target.datastore}, outside this copy",
                exists=False,
            ),
        )


def link_edges(inv: Inventory) -> None:
    """After inputs are resolved: name unnamed ports, then report what is not established."""
    art = inv.source.artifact_container
    by_run = _run_outputs(inv)
    for run in inv.runs.values():
        if not run.exists or not is_designer_step(inv, run):
            continue
        own = {o.port.casefold() for o in by_run.get(run.run_id, [])}
        own |= {p.casefold() for p in run.ports_out}
        _pair_ports(run, own)
        missing = _unestablished(run, own)
        run.unestablished = missing
        if missing:
            inv.findings.append(
                Finding(
                    F.LINEAGE_NOT_ESTABLISHED,
                    f"{art}/ExperimentRun/dcid.{run.run_id}/",
                    f"designer step {display_name(run.module) or run.run_id} ({run.run_id}): "
                    f"its logs do not establish {', '.join(missing)}; the lineage graph lacks "
                    "these edges",
                    Severity.LOW,
                )
            )


def _declared_inputs(run: Run, own: set[str]) -> list[str]:
    """The input ports a step has: its module's (optional ones left out) and those its
    command line names, less its own outputs (a classic command line names both alike)."""
    info = module_info(run.module)
    ports = [p for p in run.ports_in if p.casefold() not in own]
    if info is not None:
        ports += [p for p in info.inputs if p not in info.optional_inputs]
    seen: dict[str, str] = {}
    for p in ports:
        seen.setdefault(p.casefold(), p)
    return list(seen.values())


def _pair_ports(run: Run, own: set[str]) -> None:
    """An input found without its port: named after the upstream port it reads when that is
    one of the step's declared inputs, else the one declared input left, if exactly one."""
    declared = _declared_inputs(run, own)
    named = {r.port.casefold() for r in run.inputs if r.port}
    for ref in run.inputs:
        if ref.port:
            continue
        upstream = ref.loc.path.rstrip("/").rsplit("/", 1)[-1]
        free = [p for p in declared if p.casefold() not in named]
        match = [p for p in free if p.casefold() == upstream.casefold()]
        if not match and len(free) == 1 and sum(1 for r in run.inputs if not r.port) == 1:
            match = free
        if match:
            ref.port = match[0]
            named.add(match[0].casefold())


def _unestablished(run: Run, own: set[str]) -> list[str]:
    out: list[str] = []
    if run.module is None:
        out.append("its module")
    if run.reused and run.reused_from:
        return out  # its inputs are those of the run it reused
    named = {r.port.casefold() for r in run.inputs if r.port}
    unnamed = sum(1 for r in run.inputs if not r.port)
    missing = [p for p in _declared_inputs(run, own) if p.casefold() not in named]
    if len(missing) > unnamed:
        out += [f"input {p}" for p in missing]
    elif run.module is None and not run.inputs:
        out.append("its inputs")  # neither its module nor its logs say which it has
    return out
