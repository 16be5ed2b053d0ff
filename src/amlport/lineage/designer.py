"""A designer pipeline run as a document a person can follow and rebuild it from.

``describe_pipeline`` turns one pipeline run of the inventory into a plain structure
(``amlport.designer-pipeline/1``): the steps in flow order under their Studio names, every
input and output port (consumed or not), the parameters decoded (the raw text beside them;
column selectors as rules and a one-line summary), the datasets read, the facts storage shows
about the run, and — said explicitly — what storage cannot show. ``to_markdown`` renders it
with a Mermaid diagram. Pure: no I/O. See docs/designer.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from amlport.model.inventory import InputRef, Inventory, Loc, Output, Run
from amlport.walk import designer as D

FORMAT = "amlport.designer-pipeline/1"
GLOBAL_SUFFIX = "_globaldatasets"
ALWAYS_HIDDEN = (
    "the canvas: module positions, comments and the draft's name and description in Studio",
    "parameters a step left at their default: only those on its command line are listed",
    "the registered dataset's name and version: only the datastore path a step read is known",
    "the compute's size and the pipeline's default datastore settings",
)


class NotAPipeline(LookupError):
    """The text names no pipeline run (or several)."""


def designer_pipelines(inv: Inventory) -> list[Run]:
    """Pipeline runs one of whose steps runs a designer module, oldest first."""
    found = [
        r
        for r in inv.runs.values()
        if r.kind == "pipeline_run"
        and any(D.is_designer_step(inv, inv.runs[c]) for c in r.children if c in inv.runs)
    ]
    return sorted(found, key=lambda r: (r.started or "", r.run_id))


def find_pipeline(inv: Inventory, text: str) -> Run:
    """The pipeline run ``text`` names: its id, or a prefix of it naming exactly one."""
    runs = designer_pipelines(inv)
    exact = [r for r in runs if r.run_id == text]
    hits = exact or [r for r in runs if text and r.run_id.startswith(text)]
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(r.run_id for r in runs) or "none"
    what = "matches several" if hits else "matches no"
    raise NotAPipeline(f"{text!r} {what} designer pipeline run (found: {known})")


@dataclass
class _Step:
    run: Run
    order: int = 0
    depth: int = 0
    producers: list[str] = field(default_factory=list)  # run ids it reads from


def describe_pipeline(
    inv: Inventory, pipeline: Run, outputs: dict[str, list[Output]] | None = None
) -> dict[str, Any]:
    """``outputs`` is ``outputs_by_owner(inv)``: an export describing every pipeline passes
    the one it built once (built per pipeline, it made an export quadratic)."""
    steps = {c: _Step(inv.runs[c]) for c in pipeline.children if c in inv.runs}
    if outputs is None:
        outputs = outputs_by_owner(inv)
    owner_of = _owners(steps, outputs)
    for s in steps.values():
        refs = _inputs_of(inv, s.run)
        s.producers = sorted(
            {owner_of[str(r.loc)] for r in refs if str(r.loc) in owner_of} - {s.run.run_id}
        )
    ordered = _flow_order(steps)
    number = {s.run.run_id: i + 1 for i, s in enumerate(ordered)}
    consumers = _consumers(inv, ordered, owner_of, number)
    datasets: dict[str, dict[str, Any]] = {}
    rows = [_step_doc(inv, s, outputs, owner_of, number, consumers, datasets) for s in ordered]
    facts = _facts(pipeline, [s.run for s in ordered])
    hidden = [f"the {k}" for k in ("experiment", "compute") if facts[k] is None]
    if any(r["not_established"] for r in rows):
        hidden.append(
            "the connections listed under 'not established': the steps' logs in storage do "
            "not name them"
        )
    return {
        "format": FORMAT,
        "pipeline_run": pipeline.run_id,
        "facts": facts,
        "datasets": sorted(datasets.values(), key=lambda d: d["location"]),
        "steps": rows,
        "storage_cannot_show": hidden + list(ALWAYS_HIDDEN),
    }


def outputs_by_owner(inv: Inventory) -> dict[str, list[Output]]:
    """Run id → the outputs it made, in the inventory's order."""
    by: dict[str, list[Output]] = {}
    for out in inv.outputs.values():
        if out.run_id:
            by.setdefault(out.run_id, []).append(out)
    return by


def _owners(steps: dict[str, _Step], outputs: dict[str, list[Output]]) -> dict[str, str]:
    """Output location → the step that produced it (a reused step owns its reused outputs)."""
    owner: dict[str, str] = {}
    for s in steps.values():
        for rid in (s.run.run_id, s.run.reused_from):
            for out in outputs.get(rid or "", []):
                owner.setdefault(str(out.loc), s.run.run_id)
    return owner


def _flow_order(steps: dict[str, _Step]) -> list[_Step]:
    """Dependencies first; among a step's inputs the longest chain first, so the main data
    flow reads straight down and a side branch (a learner) sits just above the step it
    feeds. Independent ends in the order they started."""

    def depth(rid: str, seen: frozenset[str] = frozenset()) -> int:
        s = steps[rid]
        if s.depth or rid in seen:
            return s.depth
        s.depth = 1 + max((depth(p, seen | {rid}) for p in s.producers if p in steps), default=0)
        return s.depth

    for rid in steps:
        depth(rid)
    order: list[_Step] = []
    done: set[str] = set()

    def visit(rid: str, path: frozenset[str] = frozenset()) -> None:
        if rid in done or rid in path or rid not in steps:
            return
        s = steps[rid]
        for p in sorted(s.producers, key=lambda p: (-steps[p].depth if p in steps else 0, p)):
            visit(p, path | {rid})
        done.add(rid)
        order.append(s)

    fed = {p for s in steps.values() for p in s.producers}
    ends = [s for s in steps.values() if s.run.run_id not in fed]
    for s in sorted(ends, key=lambda s: (s.run.started or "", s.run.run_id)):
        visit(s.run.run_id)
    for rid in sorted(steps, key=lambda r: (steps[r].run.started or "", r)):
        visit(rid)  # anything in a cycle (never in a real designer graph)
    return order


def _name(run: Run) -> str:
    return D.display_name(run.module) or f"unknown module (run {run.run_id})"


def _ref(number: dict[str, int], runs: dict[str, Run], rid: str) -> str:
    return f"{number[rid]}. {_name(runs[rid])}"


def _inputs_of(inv: Inventory, run: Run) -> list[InputRef]:
    """A step's inputs; a reused step's are those of the run it reused."""
    reused = inv.runs.get(run.reused_from) if run.reused_from else None
    if not run.inputs and reused is not None:
        return reused.inputs
    return run.inputs


def _consumers(
    inv: Inventory, ordered: list[_Step], owner_of: dict[str, str], number: dict[str, int]
) -> dict[str, list[str]]:
    runs = {s.run.run_id: s.run for s in ordered}
    out: dict[str, list[str]] = {}
    for s in ordered:
        for ref in _inputs_of(inv, s.run):
            if str(ref.loc) in owner_of:
                port = ref.port or "?"
                out.setdefault(str(ref.loc), []).append(
                    f"{_ref(number, runs, s.run.run_id)} ({port})"
                )
    return out


def _step_doc(
    inv: Inventory,
    s: _Step,
    outputs: dict[str, list[Output]],
    owner_of: dict[str, str],
    number: dict[str, int],
    consumers: dict[str, list[str]],
    datasets: dict[str, dict[str, Any]],
) -> dict[str, Any]:
    run = s.run
    info = D.module_info(run.module)
    runs = inv.runs
    inputs = []
    refs = _inputs_of(inv, run)
    for ref in sorted(refs, key=lambda r: _port_rank(info, r.port, inputs=True)):
        entry: dict[str, Any] = {"port": ref.port, "location": str(ref.loc)}
        producer = owner_of.get(str(ref.loc))
        if producer is not None and producer in number:
            made = inv.outputs.get(ref.loc)
            port = made.port if made else ref.loc.path.rsplit("/", 1)[-1]
            entry["from"] = {"step": _ref(number, runs, producer), "port": port}
        else:
            ds = _dataset(ref.loc)
            entry["from"] = {"dataset": ds["name"]}
            here = datasets.setdefault(ds["location"], {**ds, "read_by": []})
            here["read_by"].append(f"{number[run.run_id]}. {_name(run)}")
        inputs.append(entry)
    own = outputs.get(run.run_id, []) + outputs.get(run.reused_from or "", [])
    ports = {o.port: o for o in own}
    names = list(info.outputs) if info else []
    names += sorted(p for p in ports if p not in names)
    outs = []
    for port in names:
        o = ports.get(port)
        loc = str(o.loc) if o else None
        outs.append(
            {
                "port": port,
                "location": loc,
                "format": o.format if o else None,
                "in_this_copy": bool(o and o.exists),
                "consumed_by": consumers.get(loc or "", []),
            }
        )
    params = [
        D.decode_parameter(k, v, run.module).to_dict() for k, v in sorted(run.parameters.items())
    ]
    if info:
        params.sort(key=lambda p: _param_rank(info, p["key"]))
    return {
        "order": number[run.run_id],
        "name": _name(run),
        "module": run.module,
        "module_known_from": run.module_evidence,
        "category": info.category if info else None,
        "run_id": run.run_id,
        "node_id": run.node_id,
        "runtime": run.runtime,
        "started": run.started,
        "ended": run.ended,
        "status": run.status,
        "reused_from": run.reused_from,
        "parameters": params,
        "inputs": inputs,
        "outputs": outs,
        "not_established": list(run.unestablished),
    }


def _port_rank(info: D.ModuleInfo | None, port: str | None, *, inputs: bool) -> tuple[int, str]:
    listed = (info.inputs if inputs else info.outputs) if info else ()
    names = [p.casefold() for p in listed]
    key = (port or "").casefold()
    return (names.index(key) if key in names else len(names), key)


def _param_rank(info: D.ModuleInfo, key: str) -> tuple[int, str]:
    keys = list(info.parameters)
    return (keys.index(key) if key in keys else len(keys), key)


def _dataset(loc: Loc) -> dict[str, Any]:
    leaf = loc.path.rstrip("/").rsplit("/", 1)[-1]
    glob = loc.datastore.endswith(GLOBAL_SUFFIX)
    return {
        "name": leaf.replace("_", " ") if glob else leaf,
        "location": str(loc),
        "datastore": loc.datastore,
        "path": loc.path,
        "kind": "designer sample dataset (global)" if glob else "datastore path",
    }


def _facts(pipeline: Run, steps: list[Run]) -> dict[str, Any]:
    starts = [t for t in [pipeline.started, *(r.started for r in steps)] if t]
    ends = [t for t in [pipeline.ended, *(r.ended for r in steps)] if t]
    return {
        "experiment": pipeline.experiment
        or next((r.experiment for r in steps if r.experiment), None),
        "compute": pipeline.compute or next((r.compute for r in steps if r.compute), None),
        "started": min(starts) if starts else None,
        "ended": max(ends) if ends else None,
        "status": pipeline.status,
        "runtimes": sorted({r.runtime for r in steps if not r.reused}),
        "steps": len(steps),
        "reused_steps": sum(1 for r in steps if r.reused),
    }


# --------------------------------------------------------------------------- Markdown


def _md(text: object) -> str:
    """Plain text in Markdown: no markup, no table break, no HTML."""
    out = str(text)
    for ch in "\\`*[]<>|#":
        out = out.replace(ch, "\\" + ch)
    return " ".join(out.split())


def _code(text: object) -> str:
    body = " ".join(str(text).split()).replace("`", "'")
    return f"`{body}`"


def _mermaid(text: object) -> str:
    out = " ".join(str(text).split())
    for ch, entity in (
        ("#", "#35;"),
        ('"', "#quot;"),
        ("<", "#lt;"),
        (">", "#gt;"),
        ("|", "#124;"),
        ("[", "#91;"),
        ("]", "#93;"),
        ("`", "#96;"),
    ):
        out = out.replace(ch, entity)
    return out


def _value(p: dict[str, Any]) -> str:
    if p["kind"] == "column_selector":
        return str(p["summary"])
    if isinstance(p["value"], bool):
        return "True" if p["value"] else "False"
    if p["kind"] == "json":
        return str(p["raw"])
    return str(p["value"])


def to_markdown(doc: dict[str, Any]) -> str:
    f = doc["facts"]
    lines = [f"# Designer pipeline run {_md(doc['pipeline_run'])}", ""]
    lines += ["| | |", "|---|---|"]
    for key in ("experiment", "compute", "started", "ended", "status"):
        value = f[key] if f[key] is not None else "not shown by storage"
        lines.append(f"| {key} | {_md(value)} |")
    lines.append(f"| runtime | {_md(', '.join(f['runtimes']))} |")
    lines.append(f"| steps | {f['steps']} ({f['reused_steps']} reused) |")
    lines += ["", "## Datasets", ""]
    for d in doc["datasets"]:
        lines.append(
            f"- **{_md(d['name'])}**: {_md(d['kind'])} {_code(d['location'])}, "
            f"read by {_md(', '.join(d['read_by']))}"
        )
    if not doc["datasets"]:
        lines.append("- none found in the steps' logs")
    lines += ["", "## Steps, in flow order", ""]
    for s in doc["steps"]:
        lines += _step_markdown(s)
    lines += ["## Diagram", "", "```mermaid", *_diagram(doc), "```", ""]
    lines += ["## What storage cannot show", ""]
    lines += [f"- {_md(x)}" for x in doc["storage_cannot_show"]]
    return "\n".join(lines) + "\n"


def _step_markdown(s: dict[str, Any]) -> list[str]:
    lines = [f"### {s['order']}. {_md(s['name'])}", ""]
    meta = [f"module {_code(s['module'] or 'unknown')}"]
    if s["module_known_from"] == "ports":
        meta.append("(named from its output ports)")
    meta.append(f"run {_code(s['run_id'])}")
    if s["reused_from"]:
        meta.append(f"reused the outputs of run {_code(s['reused_from'])}")
    if s["started"]:
        meta.append(f"{_md(s['started'])} to {_md(s['ended'])}")
    if s["status"]:
        meta.append(_md(s["status"]))
    lines += [" · ".join(meta), ""]
    if s["parameters"]:
        lines += ["| setting | value | as stored |", "|---|---|---|"]
        for p in s["parameters"]:
            label = p["label"] or p["key"]
            lines.append(f"| {_md(label)} | {_md(_value(p))} | {_code(p['raw'])} |")
        lines.append("")
    lines.append("Inputs:")
    for i in s["inputs"]:
        src = i["from"]
        origin = f"{src['step']}, port {src['port']}" if "step" in src else src["dataset"]
        lines.append(f"- {_md(i['port'] or 'unnamed port')} ← {_md(origin)}")
    if not s["inputs"]:
        lines.append("- none")
    lines.append("")
    lines.append("Outputs:")
    for o in s["outputs"]:
        used = ", ".join(o["consumed_by"]) if o["consumed_by"] else "not consumed"
        where = "" if o["in_this_copy"] else ", not in this copy"
        fmt = f" ({_md(o['format'])})" if o["format"] else ""
        lines.append(f"- {_md(o['port'])}{fmt} → {_md(used)}{_md(where)}")
    if s["not_established"]:
        lines += ["", f"Not established from storage: {_md(', '.join(s['not_established']))}"]
    lines.append("")
    return lines


def _diagram(doc: dict[str, Any]) -> list[str]:
    out = ["flowchart TD"]
    ids = {d["name"]: f"d{i}" for i, d in enumerate(doc["datasets"])}
    for d in doc["datasets"]:
        out.append(f'  {ids[d["name"]]}[("{_mermaid(d["name"])}")]')
    steps = {f"{s['order']}. {s['name']}": f"s{s['order']}" for s in doc["steps"]}
    for s in doc["steps"]:
        label = _mermaid(f"{s['order']}. {s['name']}")
        out.append(f'  s{s["order"]}["{label}"]')
    for s in doc["steps"]:
        for i in s["inputs"]:
            src = i["from"]
            node = steps.get(src["step"]) if "step" in src else ids.get(src["dataset"])
            if node is None:
                continue
            label = _mermaid(f"{src.get('port', '')} → {i['port'] or '?'}".strip(" →"))
            out.append(f'  {node} -->|"{label}"| s{s["order"]}')
    return out
