"""What run logs reveal (pure): child runs, mounts, inputs, module names and parameters.

The walker relies on *forms* (identifiers, URIs, variable names), never on the wording around
them, so a line whose wording is only inferred is never the one route to an edge
(docs/designer.md, "What a parser may rely on"). The forms, strongest first:

- ``logs/azureml/executionlogs.txt`` of a pipeline: ``Submitting N runs, first five are:
  <node>:<run>,…`` (a local orchestrator writes ``<run>,<run>`` without node ids) and one
  ``Completing processing run id <run>.`` per child: the children beyond the first five are
  named only there;
- a step's own ``executionlogs.txt``: its status and times (``Job is running…``, ``Job
  finished, job RunId is <id>``), and reuse (``azureml.reusedrunid``);
- URIs of inputs and outputs anywhere on a line: ``azureml://…/datastores/<ds>/paths/<p>``,
  ``azuremldatastore://<ds>/<p>``, ``azuremldatareference://<ds>/<p>`` and classic mount paths
  ``/mnt/batch/…/mounts/<ds>/<p>``; the port from ``--<port>=`` before it, from the
  data capability's ``environment_names`` or from a ``/wd/INPUT_<port>`` mount on the same line
  (``/mnt/azureml/cr/j/…``, ``/tmp/azureml/cr/j/…`` on Kubernetes);
- the module host command line (``urldecode_invoker.py … --module-name=<module> …``) for the
  module, its URL-encoded parameters (kept raw here) and its port variables
  ``$AZURE_ML_INPUT_<port>`` / ``$AZURE_ML_OUTPUT_<port>`` (``$AZUREML_DATAREFERENCE_<port>``
  on the classic runtime);
- ``parent_run_id`` / ``AZUREML_ROOT_RUN_ID`` / ``azureml.pipelineRun.moduleNodeId`` in a
  step's own logs: its parent and node id when the parent's log does not name it;
- ``Experiment: <name>`` and ``Run target: <compute>`` at the top of older v1 step logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from amlport.model.uri_scan import find_uris
from amlport.model.uris import UriError, parse_uri

RUN_ID = r"[A-Za-z0-9][A-Za-z0-9_.\-]*[A-Za-z0-9]"
SUBMITTING = re.compile(r"Submitting \d+ runs?, first five are: (?P<list>\S+)")
CHILD = re.compile(rf"^(?:(?P<node>[0-9a-f]{{8}}):)?(?P<run>{RUN_ID})$")
COMPLETING = re.compile(rf"Completing processing run id (?P<run>{RUN_ID})")
MOUNTING = re.compile(
    r"Mounting (?P<container>\S+) container from (?P<account>\S+) account at (?P<mount>\S+)"
)
MODULE_NAME = re.compile(r"--module-name[= ](?P<module>[\w.]+)")
PARAM = re.compile(r"(?<!\S)--(?P<key>[A-Za-z][\w-]*)=(?P<value>[^\s$'\"]\S*)")
ARG_BEFORE = re.compile(r"--(?P<key>[A-Za-z][\w-]*)=['\"]?$")
URI_PHRASE = re.compile(r"\bURI (?P<uri>azureml://\S.*?)/?(?= to /| due to |\s*$)")
DATA_URI = re.compile(r"azuremldata(?:store|reference)://(?P<ds>[^/\s\"']+)/(?P<path>[^\s\"']+)")
INPUT_PORT = re.compile(r"/wd/INPUT_(?P<port>[^/\s\"']+)")
ENV_NAMES = re.compile(r"\"environment_names\"\s*:\s*\[\s*\"(?P<port>[^\"]+)\"")
PORT_VAR = re.compile(
    r"\$\{?(?P<kind>AZURE_ML_INPUT|AZURE_ML_OUTPUT|AZUREML_DATAREFERENCE)_(?P<port>\w+)"
)
KEYED = r"['\"]?\s*[:=]\s*['\"]?"
PARENT = re.compile(rf"\b(?:parent_run_id|azureml\.pipelineRunId){KEYED}(?P<run>{RUN_ID})")
ROOT = re.compile(rf"\bAZUREML_ROOT_RUN_ID{KEYED}(?P<run>{RUN_ID})")
NODE = re.compile(rf"(?:moduleNodeId|azureml\.nodeid){KEYED}(?P<node>[0-9a-f]{{8}})\b")
REUSED_RUN = re.compile(rf"azureml\.reusedrunid{KEYED}(?P<run>{RUN_ID})")
REUSE_WORDS = re.compile(
    r"eligible to reuse a previous run's output|azureml\.isreused\W+true", re.I
)
STAMP = re.compile(r"^\[(?P<ts>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\.\d+)?Z?\]")
FINISHED = re.compile(r"Job (?P<verb>finished|failed), job RunId is")
EXPERIMENT = re.compile(r"^Experiment: (?P<name>\S.*?)\s*$")
RUN_TARGET = re.compile(r"^Run target: (?P<name>\S.*?)\s*$")
# Log files whose content carries lineage; others are read only for the secret scan.
LINEAGE_LOGS = re.compile(
    r"(^logs/azureml/(executionlogs|stdoutlogs)\.txt$|^azureml-logs/(55_|70_driver_log)"
    r"|data-capability\.log$|execution-wrapper\.log$|lifecycler\.log$)"
)


@dataclass
class LogFacts:
    children: list[tuple[str | None, str]] = field(default_factory=list)  # (node_id, run_id)
    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # (container, account, ds)
    locations: list[tuple[str, str, str | None]] = field(default_factory=list)  # (ds, path, port)
    module: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)
    ports_in: list[str] = field(default_factory=list)
    ports_out: list[str] = field(default_factory=list)
    parent: str | None = None  # parent_run_id, else AZUREML_ROOT_RUN_ID
    node_id: str | None = None
    reused: bool = False
    reused_from: str | None = None
    started: str | None = None  # first and last time stamp of an executionlogs.txt
    ended: str | None = None
    status: str | None = None
    experiment: str | None = None
    compute: str | None = None


def is_lineage_log(rest: str) -> bool:
    return bool(LINEAGE_LOGS.search(rest))


# What a line must hold for each expression to match it (case as in the expression): an
# expression whose substrings the whole log lacks is not searched on any of its lines. Most
# lines of most logs match none, and ~15 searches per line were most of the walk's parsing.
_NEEDLES: dict[str, tuple[str, ...]] = {
    "submitting": ("Submitting ",),
    "completing": ("Completing processing run id ",),
    "finished": (", job RunId is",),
    "mounting": ("Mounting ",),
    "module": ("--module-name",),
    "port_var": ("AZURE",),  # $AZURE_ML_INPUT_, $AZURE_ML_OUTPUT_, $AZUREML_DATAREFERENCE_
    "parent": ("parent_run_id", "azureml.pipelineRunId"),
    "root": ("AZUREML_ROOT_RUN_ID",),
    "node": ("moduleNodeId", "azureml.nodeid"),
    "reused_run": ("azureml.reusedrunid",),
    "experiment": ("Experiment: ",),
    "run_target": ("Run target: ",),
    "input_port": ("/wd/INPUT_",),
}
# Lower-cased: ``REUSE_WORDS`` ignores case.
_REUSE_NEEDLES = ("eligible to reuse a previous run's output", "azureml.isreused")
# Every location a line names is a URI (``find_uris``: rewriters/text_log.py ``URI_HINTS``,
# checked against its start pattern by tests/reliability) or an azuremldata…:// one.
_URI_NEEDLES = (":/", "azureml:", "mlflow-artifacts:", "/mnt/", "/scratch/")
# Characters IGNORECASE folds onto ASCII letters (``find_uris`` ignores case): with one of
# them a lower-cased needle could miss, so every expression is searched.
_FOLDED = ("\u0130", "\u0131", "\u017f", "\u212a")
ALL_GATES = frozenset((*_NEEDLES, "uris", "reuse_words"))


def gates(text: str) -> frozenset[str]:
    """The expressions worth searching on the lines of ``text``."""
    if any(c in text for c in _FOLDED):
        return ALL_GATES
    on = {name for name, needles in _NEEDLES.items() if any(n in text for n in needles)}
    lower = text.lower()
    if any(n in lower for n in _URI_NEEDLES):
        on.add("uris")
    if any(n in lower for n in _REUSE_NEEDLES):
        on.add("reuse_words")
    return frozenset(on)


def read_log(text: str, on: frozenset[str] | None = None) -> LogFacts:
    """``on``: the expressions searched (``gates``; all: ``ALL_GATES``, the same facts)."""
    facts = LogFacts()
    root: str | None = None
    on = gates(text) if on is None else on
    if on:
        for line in text.splitlines():
            root = _read_line(line, facts, on) or root
    else:  # only the time stamps: no expression has its substrings in this log
        for line in text.splitlines():
            _read_stamp(line, facts)
    facts.parent = facts.parent or root
    return facts


def _add(items: list[str], value: str) -> None:
    if value not in items:
        items.append(value)


def _read_stamp(line: str, facts: LogFacts) -> None:
    stamp = STAMP.match(line)
    if stamp:
        ts = stamp["ts"].replace(" ", "T") + "Z"
        facts.started = facts.started or ts
        facts.ended = ts


def _read_line(line: str, facts: LogFacts, on: frozenset[str] = ALL_GATES) -> str | None:
    _read_stamp(line, facts)
    m = SUBMITTING.search(line) if "submitting" in on else None
    if m:
        for item in m["list"].split(","):
            c = CHILD.match(item.strip())
            if c:
                _add_child(facts, c["node"], c["run"])
        return None
    m = COMPLETING.search(line) if "completing" in on else None
    if m:
        _add_child(facts, None, m["run"])
        return None
    m = FINISHED.search(line) if "finished" in on else None
    if m:
        facts.status = "failed" if m["verb"] == "failed" else "completed"
    m = MOUNTING.search(line) if "mounting" in on else None
    if m:
        datastore = m["mount"].rstrip("/").rsplit("/", 1)[-1]
        facts.mounts.append((m["container"], m["account"], datastore))
        return None
    gated = on is not ALL_GATES  # ALL_GATES: every expression on every line, the reference
    _read_run_facts(line, facts, on, gated)
    module = MODULE_NAME.search(line) if "module" in on else None
    if module:
        facts.module = module["module"]
        for p in PARAM.finditer(line):
            if p["key"] != "module-name" and "/" not in p["value"]:
                facts.parameters[p["key"]] = p["value"]
    if "port_var" in on:
        for var in PORT_VAR.finditer(line):
            kind = var["kind"]
            _add(facts.ports_out if kind == "AZURE_ML_OUTPUT" else facts.ports_in, var["port"])
    if "input_port" in on or "uris" in on:
        _read_locations(line, facts, gated)
    root = None
    if "root" in on and (not gated or "AZUREML_ROOT_RUN_ID" in line):
        root = ROOT.search(line)
    return root["run"] if root else None


def _add_child(facts: LogFacts, node: str | None, run: str) -> None:
    """One child per run id: a ``Completing`` line names a child the ``Submitting`` line
    may already have listed with its node id (kept), or one beyond the first five."""
    for i, (known_node, known_run) in enumerate(facts.children):
        if known_run == run:
            if known_node is None and node is not None:
                facts.children[i] = (node, run)
            return
    facts.children.append((node, run))


def _read_run_facts(line: str, facts: LogFacts, on: frozenset[str], gated: bool) -> None:
    # Gated, an expression is searched only on a line that holds one of its needles (a
    # match lies within one line; a substring test costs a fraction of a search).
    if "parent" in on and _holds(line, "parent", gated) and (m := PARENT.search(line)):
        facts.parent = m["run"]
    if "node" in on and _holds(line, "node", gated) and (m := NODE.search(line)):
        facts.node_id = m["node"]
    if "reused_run" in on and (m := REUSED_RUN.search(line)):
        facts.reused, facts.reused_from = True, m["run"]
    elif "reuse_words" in on and REUSE_WORDS.search(line):  # any case
        facts.reused = True
    if "experiment" in on and (m := EXPERIMENT.match(line)):
        facts.experiment = m["name"]
    if "run_target" in on and (m := RUN_TARGET.match(line)):
        facts.compute = m["name"]


def _holds(line: str, gate: str, gated: bool) -> bool:
    return not gated or any(n in line for n in _NEEDLES[gate])


def _read_locations(line: str, facts: LogFacts, gated: bool) -> None:
    # Gated, each search only on a line that holds its expression's literal.
    mounted = INPUT_PORT.search(line) if not gated or "/wd/INPUT_" in line else None
    if mounted:  # an input port's mount folder (``create dir for …/wd/INPUT_<port>``)
        _add(facts.ports_in, mounted["port"])
    locations = _locations_in(line, gated)
    if not locations:
        return
    v2_port = mounted
    if not v2_port and (not gated or '"environment_names"' in line):
        v2_port = ENV_NAMES.search(line)
    for start, loc in locations:
        # A command line names the port: --<port>=<path>; a capability line by its mount.
        flag = None
        if not gated or line.find("--", 0, start) >= 0:
            flag = ARG_BEFORE.search(line, 0, start)
        port = flag["key"] if flag else (v2_port["port"] if v2_port else None)
        facts.locations.append((loc[0], loc[1], port))


def _locations_in(line: str, gated: bool) -> list[tuple[int, tuple[str, str]]]:
    found: list[tuple[int, tuple[str, str]]] = []
    for m in DATA_URI.finditer(line) if not gated or "azuremldata" in line else ():
        path = _balanced(m["path"].rstrip("/.,;"))
        if path:
            found.append((m.start(), (m["ds"], path)))
    for start, uri in _uris_in(line, gated):
        loc = _datastore_location(uri)
        if loc is not None:
            found.append((start, loc))
    return found


def _balanced(path: str) -> str:
    """Drop closing brackets that close something outside the URI (``(…uri)``)."""
    for close, open_ in ((")", "("), ("]", "["), ("}", "{")):
        while path.endswith(close) and path.count(close) > path.count(open_):
            path = path[:-1].rstrip("/.,;")
    return path


def _uris_in(line: str, gated: bool) -> list[tuple[int, str]]:
    """URIs on a line; a data-capability ``URI <uri> to|due to`` phrase may hold spaces."""
    phrase = URI_PHRASE.search(line) if not gated or "URI azureml://" in line else None
    if phrase:
        return [(phrase.start("uri"), phrase["uri"])]
    if gated and not _may_name_uri(line):
        return []
    return [(start, uri) for start, _end, uri in find_uris(line)]


def _may_name_uri(line: str) -> bool:
    """What ``gates`` asks of a log for "uris", asked of one line."""
    if any(c in line for c in _FOLDED):
        return True
    lower = line.lower()
    return any(n in lower for n in _URI_NEEDLES)


def _datastore_location(uri: str) -> tuple[str, str] | None:
    try:
        dp = parse_uri(uri).datastore_path
    except UriError:
        return None
    if dp is None or not dp.path.strip("/"):
        return None
    return dp.datastore, dp.path.strip("/")
