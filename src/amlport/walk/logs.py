"""What run logs reveal (pure): child runs, mounts, inputs, module names and parameters.

See storage layout §2.2 for the verified line shapes:
- ``logs/azureml/executionlogs.txt``: ``Submitting N runs, first five are: <node>:<run>,…``;
- ``azureml-logs/55_azureml-execution-*.txt``: ``Mounting <container> container from
  <account> account at /mnt/batch/…/mounts/<datastore>``;
- ``70_driver_log*.txt`` and ``system_logs/…`` logs: compute mount paths and full
  ``azureml://…/datastores/<ds>/paths/<path>`` URIs of inputs and outputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from amlport.model.uri_scan import find_uris
from amlport.model.uris import UriError, parse_uri

SUBMITTING = re.compile(r"Submitting \d+ runs?, first five are: (?P<list>\S+)")
CHILD = re.compile(r"(?P<node>[0-9a-f]{8}):(?P<run>[A-Za-z0-9_.\-]+)")
MOUNTING = re.compile(
    r"Mounting (?P<container>\S+) container from (?P<account>\S+) account at (?P<mount>\S+)"
)
MODULE_NAME = re.compile(r"--module-name[= ](?P<module>[\w.]+)")
PARAM = re.compile(r"(?<!\S)--(?P<key>[A-Za-z][\w-]*)=(?P<value>\S+)")
ARG_BEFORE = re.compile(r"--(?P<key>[A-Za-z][\w-]*)=$")
URI_PHRASE = re.compile(r"\bURI (?P<uri>azureml://\S.*?)/?(?= to /| due to |\s*$)")
INPUT_PORT = re.compile(r"/wd/INPUT_(?P<port>[^/\s]+)")
# Log files whose content carries lineage; others are read only for the secret scan.
LINEAGE_LOGS = re.compile(
    r"(^logs/azureml/executionlogs\.txt$|^azureml-logs/(55_|70_driver_log)"
    r"|data-capability\.log$|execution-wrapper\.log$)"
)


@dataclass
class LogFacts:
    children: list[tuple[str, str]] = field(default_factory=list)  # (node_id, run_id)
    mounts: list[tuple[str, str, str]] = field(default_factory=list)  # (container, account, ds)
    locations: list[tuple[str, str, str | None]] = field(default_factory=list)  # (ds, path, port)
    module: str | None = None
    parameters: dict[str, str] = field(default_factory=dict)


def is_lineage_log(rest: str) -> bool:
    return bool(LINEAGE_LOGS.search(rest))


def read_log(text: str) -> LogFacts:
    facts = LogFacts()
    for line in text.splitlines():
        _read_line(line, facts)
    return facts


def _read_line(line: str, facts: LogFacts) -> None:
    m = SUBMITTING.search(line)
    if m:
        facts.children.extend((c["node"], c["run"]) for c in CHILD.finditer(m["list"]))
        return
    m = MOUNTING.search(line)
    if m:
        datastore = m["mount"].rstrip("/").rsplit("/", 1)[-1]
        facts.mounts.append((m["container"], m["account"], datastore))
        return
    module = MODULE_NAME.search(line)
    if module:
        facts.module = module["module"]
        for p in PARAM.finditer(line):
            if p["key"] != "module-name" and "/" not in p["value"]:
                facts.parameters[p["key"]] = p["value"]
    v2_port = INPUT_PORT.search(line)
    for start, uri in _uris_in(line):
        loc = _datastore_location(uri)
        if loc is None:
            continue
        # A classic command line names the port: --<port>=<mount path>.
        flag = ARG_BEFORE.search(line, 0, start)
        port = flag["key"] if flag else (v2_port["port"] if v2_port else None)
        facts.locations.append((loc[0], loc[1], port))


def _uris_in(line: str) -> list[tuple[int, str]]:
    """URIs on a line; a data-capability ``URI <uri> to|due to`` phrase may hold spaces."""
    phrase = URI_PHRASE.search(line)
    if phrase:
        return [(phrase.start("uri"), phrase["uri"])]
    return [(start, uri) for start, _end, uri in find_uris(line)]


def _datastore_location(uri: str) -> tuple[str, str] | None:
    try:
        dp = parse_uri(uri).datastore_path
    except UriError:
        return None
    if dp is None or not dp.path.strip("/"):
        return None
    return dp.datastore, dp.path.strip("/")
