"""No seeded secret leaks anywhere: a property test over generated credentials.

Hypothesis generates SAS tokens, account keys, bearer tokens and connection strings and seeds
them into a generated workspace: a designer pointer (``SasToken`` and a signed ``Uri``), v2
YAML, an MLmodel, logs (one larger than the 8 MiB parse limit, so the streaming paths run
too). Then ``scan --json``, ``scan``, ``export --json``, ``audit`` (json, sarif, markdown),
``lineage`` (json, mermaid) and error paths (a storage endpoint that refuses the credential,
a malformed connection string, conflicting SAS tokens; with and without ``--debug``) run in
this process with every log record captured at DEBUG. No output, error message, log record,
report or exported byte may contain a seeded value.
"""

from __future__ import annotations

import json
import logging
import string
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from helpers.rel_proxy import Fault, FaultProxy
from helpers.rel_workspace import BLOBSTORE, Ran, Workspace, new_workspace
from helpers.rel_workspace import run_in_process as cli
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

ACCOUNT = "relsecretsacct"
_B64 = string.ascii_letters + string.digits + "+/"


@st.composite
def seeded(draw: st.DrawFn) -> dict[str, str]:
    sig = draw(st.text(_B64, min_size=30, max_size=44)) + "%3D"
    key = draw(st.text(_B64, min_size=60, max_size=86)) + "=="
    key2 = draw(st.text(_B64, min_size=60, max_size=86)) + "=="
    token = draw(st.text(string.ascii_letters + string.digits + "-._", min_size=24, max_size=60))
    sas = f"sv=2021-08-06&ss=b&srt=sco&sp=rl&se=2030-01-01T00%3A00%3A00Z&sig={sig}"
    return {
        "sig": sig,
        "key": key,
        "key2": key2,
        "token": token,
        "sas": sas,
        "conn": f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={key};"
        "EndpointSuffix=core.windows.net",
        "conn_sas": f"BlobEndpoint=https://{ACCOUNT}.blob.core.windows.net/;"
        f"SharedAccessSignature={sas}",
        "big": "yes" if draw(st.booleans()) else "",
    }


def _values(s: dict[str, str]) -> list[str]:
    """What must never appear (the parts that grant access)."""
    return [s["sig"], s["key"], s["key2"], s["token"], s["sig"].replace("%3D", "=")]


def _seed(ws: Workspace, s: dict[str, str]) -> None:
    url = f"https://{ACCOUNT}.blob.core.windows.net/{BLOBSTORE}/azureml/run1/out/"
    pointer = {
        "Container": BLOBSTORE,
        "SasToken": s["sas"],
        "Uri": f"wasbs://{BLOBSTORE}@{ACCOUNT}.blob.core.windows.net/azureml/run1/out/?{s['sas']}",
        "Account": ACCOUNT,
        "RelativePath": "azureml/run1/out/",
        "PathType": 0,
        "AmlDataStoreName": "workspaceblobstore",
    }
    ws.put_run_file("designer", "Trained_model", json.dumps(pointer))
    ws.put(f"{BLOBSTORE}/azureml/run1/out/data.csv", "a,b\n1,2\n")
    ws.put_run_file(
        "v2job",
        "outputs/job.yml",
        "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
        "command: python train.py\n"
        f"environment_variables:\n  CONN: '{s['conn']}'\n  CONN2: '{s['conn_sas']}'\n"
        f"inputs:\n  data:\n    type: uri_file\n    path: '{url}data.csv?{s['sas']}'\n",
    )
    ws.put_run_file(
        "v2job",
        "model/MLmodel",
        "artifact_path: model\nflavors:\n  python_function:\n    loader_module: mlflow.sklearn\n"
        f"metadata:\n  source: '{url}?{s['sas']}'\n  note: 'AccountKey={s['key2']}'\n",
    )
    log = (
        f"INFO connecting with {s['conn']}\n"
        f"DEBUG GET {url}data.csv?{s['sas']}\n"
        f"DEBUG headers Authorization: Bearer {s['token']}\n"
        f"WARN retry sig={s['sig']} SharedAccessSignature={s['sas']}\n"
    )
    ws.put_run_file("v2job", "user_logs/std_log.txt", log)
    ws.put_run_file("v2job", "system_logs/data_capability/rslex.log.2024-01-01-00", log)
    if s["big"]:  # past the parse limit: the walker and the writer stream it
        filler = ("x" * 1023 + "\n") * (9 * 1024)
        ws.put_run_file("v2job", "user_logs/big_log.txt", filler + log)


@contextmanager
def captured_logs() -> Iterator[list[logging.LogRecord]]:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    root = logging.getLogger()
    handler, level = Keep(logging.DEBUG), root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield records
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _record_text(record: logging.LogRecord) -> str:
    try:
        message = record.getMessage()
    except Exception:
        message = f"{record.msg} {record.args}"
    return f"{message} {record.exc_text or ''} {record.args!r}"


def _refusing_storage() -> FaultProxy:
    """An endpoint that answers every request 403 AuthenticationFailed, at once."""
    return FaultProxy(1, lambda method, path, seen: Fault(403))


def _error_paths(s: dict[str, str], ws: Workspace) -> list[Ran]:
    runs: list[Ran] = []
    with _refusing_storage() as proxy:
        url = f"{proxy.endpoint}/{ACCOUNT}"
        conn = (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={s['key']};"
            f"BlobEndpoint={url};"
        )
        for debug in ((), ("--debug",)):
            runs += [
                cli(*debug, "scan", url, "--connection-string", conn),
                cli(*debug, "scan", f"{url}/{BLOBSTORE}?{s['sas']}"),
                cli(
                    *debug,
                    "export",
                    url,
                    "--to",
                    str(ws.root.parent / "r2"),
                    "--sas-token",
                    s["sas"],
                ),
                cli(*debug, "lineage", url, "--account-key", s["key"]),
                cli(*debug, "audit", url, "--format", "json", "--sas-token", s["sas"]),
            ]
    runs += [
        cli("scan", "az://container", "--connection-string", f"AccountKey={s['key']};nonsense"),
        cli("scan", f"https://{ACCOUNT}.blob.core.windows.net/c1x?{s['sas']}", "--sas-token", "x"),
        cli("scan", f"ftp://{ACCOUNT}/c?{s['sas']}"),
    ]
    for ran in runs:
        assert ran.returncode == 2, ran.explain()
    return runs


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    phases=[Phase.explicit, Phase.generate],  # a leak needs no shrinking to be understood
)
@given(s=seeded())
def test_no_seeded_secret_appears_in_any_output(s: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory(prefix="amlport-secrets-") as tmp, captured_logs() as logs:
        root = Path(tmp)
        ws = new_workspace(root / "ws", ACCOUNT)
        _seed(ws, s)
        repo = root / "repo"
        runs = [
            cli("scan", str(ws.root), "--json", "-o", str(root / "scan.json")),
            cli("scan", str(ws.root)),
            cli("export", str(ws.root), "--to", str(repo), "--json"),
            cli("export", str(ws.root), "--to", str(repo)),
            cli("audit", str(ws.root), "--format", "json", "-o", str(root / "audit.json")),
            cli("audit", str(ws.root), "--format", "sarif", "-o", str(root / "audit.sarif")),
            cli("audit", str(ws.root), "--format", "markdown"),
            cli("lineage", str(ws.root)),
            cli("lineage", str(ws.root), "--format", "mermaid", "-o", str(root / "g.mmd")),
            cli("verify", str(repo), "--json"),
            cli("snapshots", str(repo), "--json"),
        ]
        scan = json.loads(runs[0].stdout)
        assert any(f["code"] == "secret-in-file" for f in scan["inventory"]["findings"])
        assert runs[2].returncode in (0, 1), runs[2].explain()
        runs += _error_paths(s, ws)

        texts = [r.stdout + r.stderr for r in runs] + [_record_text(r) for r in logs]
        written = [p for p in root.rglob("*") if p.is_file() and not p.is_relative_to(ws.root)]
        blobs = [p.read_bytes() for p in written]
        for value in _values(s):
            for text in texts:
                assert value not in text, f"{value[:6]}… leaked in: {text[:300]}"
            raw = value.encode()
            leaked = [p for p, data in zip(written, blobs, strict=True) if raw in data]
            assert not leaked, f"{value[:6]}… leaked into {leaked}"
