"""Issue 17, secrets: one detector for export, scan, audit, verify --secrets and errors.

Secrets of every kind and spelling are seeded into text files, binary files and blob names of
a workspace copy; then ``scan`` and ``audit`` must report them, ``export`` must redact or
report each (never exit 0 in silence), no byte of the repository folder may hold a seeded
value, and ``verify --secrets`` must find what export could not redact.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from helpers.encrypted_mode import stored_contents
from helpers.rel_workspace import BLOBSTORE, Workspace, new_workspace
from helpers.rel_workspace import run_in_process as cli

from amlport.bundle import Repository
from amlport.errors import AmlportError, ParseError
from amlport.export import ExportRequest, run_export
from amlport.export import copy as copy_mod
from amlport.model.manifest import FileEntry
from amlport.secrets import ByteScanner, find_secrets, find_secrets_in_bytes, redact
from amlport.storage.local import LocalSource

ACCOUNT = "relsecretseverywhere"
KEY = base64.b64encode(b"K" * 20 + os.urandom(44)).decode()  # 88 chars, ends "=="
PKL_KEY = base64.b64encode(b"P" * 20 + os.urandom(44)).decode()  # only in a binary file
SIG = base64.b64encode(b"S" * 8 + os.urandom(24)).decode()
SIGE = SIG.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
PEM_BODY = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7" + "q" * 40
SEEDED = {
    # name: (text holding the secret, the value that must not leave)
    "env_bare_key": (f"AZURE_STORAGE_KEY={KEY}\n", KEY),
    "bare_key": (f"key for the account is {KEY} (rotate)\n", KEY),
    "sig_url_once": (f"u=https%3A%2F%2Fa%2Fc%3Fsv%3D1%26sig%3D{SIGE.replace('%', '%25')}\n",
                     SIGE.replace("%", "%25")),
    "sig_url_twice": (f"x%253Fsv%253D1%2526sig%253D{SIGE.replace('%', '%2525')}\n",
                      SIGE.replace("%", "%2525")),
    "sig_json_u0026": ('{"u": "https://a/c?sv=1\\u0026sig=' + SIGE + '\\u0026se=2030"}\n', SIGE),
    "sig_split": (f"GET https://a/c?sv=1&sp=r&sig={SIGE[:20]}\n{SIGE[20:]}&se=2030 200\n",
                  SIGE[20:]),
    "datastore_yaml": (
        "credentials:\n  account_key: " + KEY + "\n  client_secret: Qx8Q~cl1entS3cretValue\n",
        "Qx8Q~cl1entS3cretValue",
    ),
    "json_settings": ('{"Values": {"clientSecret": "jS0nS3ttingSecret42"}}\n',
                      "jS0nS3ttingSecret42"),
    "dockerfile_env": ("FROM python:3.11\nENV AZURE_CLIENT_SECRET d0ckerS3cretVal\n",
                       "d0ckerS3cretVal"),
    "url_userinfo": ("db = 'postgresql://admin:Us3rInf0Pass@db.example.org/x'\n",
                     "Us3rInf0Pass"),
    "aws": ("aws_access_key_id = AKIAQWERTYUIOPASDFGH\n", "AKIAQWERTYUIOPASDFGH"),
    "aws_secret": ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYz1x2y3\n",
                   "wJalrXUtnFEMI/K7MDENG"),
    "pem": (f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY}\n-----END PRIVATE KEY-----\n", PEM_BODY),
    "github": ("GH=ghp_" + "Ab1Cd2Ef3G" * 4 + "\n", "Ab1Cd2Ef3GAb1Cd2Ef3G"),
    "github_pat": ("github_pat_11AAAAAAA0aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbb\n",
                   "11AAAAAAA0aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbb"),
    "huggingface": ("login(hf_AbCdEfGhIjKlMnOpQrStUvWxYz12345678)\n",
                    "AbCdEfGhIjKlMnOpQrStUvWxYz12345678"),
    "openai": ("client = OpenAI(api_key=sk-proj-Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2)\n",
               "Zz9Yy8Xx7Ww6Vv5Uu4Tt3Ss2"),
    "jwt": ("t eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIzNDU2Nzg\n",
            "eyJzdWIiOiJ4In0.c2lnbmF0dXJlMTIzNDU2Nzg"),
    "password_cfg": ("[db]\npassword = p4ssw0rd!Cfg\n", "p4ssw0rd!Cfg"),
    "password_py": ('DB_PASSWORD = "PyP4sswordValue"\n', "PyP4sswordValue"),
    "password_ipynb": ('{"source": ["token = \\"n0tebookT0ken\\"\\n"]}\n', "n0tebookT0ken"),
    "b64_connection_string": (
        base64.b64encode(
            f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY}".encode()
        ).decode() + "\n",
        base64.b64encode(
            f"DefaultEndpointsProtocol=https;AccountName=a;AccountKey={KEY}".encode()
        ).decode()[40:80],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_every_kind_and_spelling_is_found_and_redacted(name: str) -> None:
    text, value = SEEDED[name]
    assert find_secrets(text), name
    clean = redact(text)
    assert value not in clean, name
    assert redact(clean) == clean and not find_secrets(clean)  # idempotent
    assert clean.count("\n") == text.count("\n")  # line numbers hold


@pytest.mark.parametrize("name", sorted(SEEDED))
def test_bytes_of_any_encoding_are_searched(name: str) -> None:
    text, _ = SEEDED[name]
    garbage = bytes(range(256)) * 3
    for data in (
        garbage + text.encode() + garbage,  # inside binary data
        text.encode("utf-16"),  # UTF-16 with a BOM
        text.encode("utf-16-be"),
    ):
        assert find_secrets_in_bytes(data), name
        for chunk in (1, 1000, 1 << 16):
            scanner = ByteScanner()
            for i in range(0, len(data), chunk):
                scanner.feed(data[i : i + chunk])
            assert scanner.close() == find_secrets_in_bytes(data), (name, chunk)


def test_plain_configuration_is_not_a_secret() -> None:
    clean = (
        "password: ${DB_PASSWORD}\npassword = os.environ['PW']\nself.password = password\n"
        "token = get_token()\nmax_tokens: 2048\npad_token: '[PAD]'\nuse_auth_token: true\n"
        "secret_name: my-keyvault-secret\nclient_secret: <your client secret>\n"
        "wasbs://container@acct.blob.core.windows.net/x\nnumpy==1.26.4\n"
        "sha512-" + "A" * 86 + "==\ntask-1234567890abcdefghij\nhttps://host:8080/a@b\n"
    )
    assert not find_secrets(clean), find_secrets(clean)


def test_error_messages_and_parse_findings_are_redacted() -> None:
    err = AmlportError(
        "cannot reach https://admin:Us3rInf0Pass@db.example.org/x",
        hint=f"check AZURE_STORAGE_KEY={KEY}",
    )
    assert "Us3rInf0Pass" not in str(err) and KEY not in str(err)
    perr = ParseError(f"c/x?sig={SIGE}", "bad value password: 'Pw0rdInReason'")
    for text in (perr.path, perr.reason, perr.message):
        assert SIGE not in text and "Pw0rdInReason" not in text


def _seed(ws: Workspace) -> dict[str, str]:
    """Seed every kind in text files the scan reads, a binary file and a blob name; returns
    the values that must never leave (by where they were put)."""
    values: dict[str, str] = {}
    files = {
        ".env": "env_bare_key",
        "settings.json": "json_settings",
        "train.py": "password_py",
        "notebook.ipynb": "password_ipynb",
        "setup.cfg": "password_cfg",
        "Dockerfile": "dockerfile_env",
    }
    for i, (name, case) in enumerate(sorted(files.items())):
        text, values[f"{name}"] = SEEDED[case]
        ws.put(f"{BLOBSTORE}/LocalUpload/up{i}/src/{name}", text)
    # every spelling in a text log of a run (read by the walk, rewritten by export)
    log = "".join(SEEDED[c][0] for c in sorted(SEEDED) if c not in files.values())
    ws.put_run_file("job1", "user_logs/std_log.txt", "start\n" + log)
    values.update({c: SEEDED[c][1] for c in SEEDED if c not in files.values()})
    # binary files: a pickle holding a connection string, a UTF-16 log
    ws.put(
        f"{BLOBSTORE}/LocalUpload/upb/model.pkl",
        b"\x80\x04\x95\x00\x00" + f"AccountKey={PKL_KEY};".encode() + b"\x00" * 8,
    )
    ws.put_run_file("job1", "user_logs/win.log", f"sig={SIGE}\r\n".encode("utf-16"))
    values["pkl"] = PKL_KEY
    # a SAS in a blob name
    ws.put(f"{BLOBSTORE}/LocalUpload/upn/data?sv=1&sig={SIGE}.csv", "a,b\n")
    hostile = "[x]/[bold]a?access_token=Tok3nInAName&x=[/].txt"  # markup and a token
    ws.put(f"{BLOBSTORE}/LocalUpload/upn/{hostile}", "a\n")
    values["name_token"] = "Tok3nInAName"
    ws.put(f"{BLOBSTORE}/LocalUpload/upn/bad&sig={SIGE}.yaml", "a: [\n")  # a malformed-file finding
    return values


def test_scan_audit_export_and_verify_find_every_seeded_secret(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", ACCOUNT)
    values = _seed(ws)
    scan = cli("scan", str(ws.root), "--json")
    assert scan.returncode == 1, scan.explain()
    findings = json.loads(scan.stdout)["inventory"]["findings"]
    flagged = {f["path"] for f in findings if f["code"] == "secret-in-file"}
    for name in (".env", "settings.json", "train.py", "notebook.ipynb", "setup.cfg", "Dockerfile"):
        assert any(p.endswith(f"/src/{name}") for p in flagged), (name, flagged)
    assert any(p.endswith("std_log.txt") for p in flagged)
    assert any(p.endswith("win.log") for p in flagged)  # UTF-16
    assert any("data?sv=1&sig=REDACTED" in p for p in flagged)  # the name, redacted

    audit = cli("audit", str(ws.root), "--format", "json")
    assert audit.returncode in (1, 5), audit.explain()
    failed = {
        r["path"]
        for r in json.loads(audit.stdout)["results"]
        if r["rule_id"] == "AMLP-HYG-002" and r["state"] == "fail"
    }
    assert any(p.endswith("/src/.env") for p in failed) and any(
        p.endswith("win.log") for p in failed
    )

    repo = tmp_path / "repo"
    export = cli("backup", str(ws.root), "--repo", str(repo), "--json")
    assert export.returncode == 1, export.explain()  # warnings: never a silent 0
    result = json.loads(export.stdout)
    warnings = "\n".join(result["warnings"])
    pkl = "files/workspaceblobstore/LocalUpload/upb/model.pkl"
    assert f"not exported: {pkl}: holds what looks like a secret" in warnings
    assert "not exported" in warnings and "sig=REDACTED" in warnings  # the named blob

    texts = [scan.stdout + scan.stderr, audit.stdout + audit.stderr, export.stdout + export.stderr]
    written = [p for p in repo.rglob("*") if p.is_file()]
    for where, value in values.items():
        assert all(value not in t for t in texts), f"{where} leaked in output"
        leaked = [p for p in written if value.encode() in p.read_bytes()]
        assert not leaked, f"{where} leaked into {leaked}"

    # Export stored none of them: verify --secrets agrees.
    assert cli("verify", str(repo), "--secrets").returncode == 0


def _plant(repo: Path, path: str, data: bytes) -> None:
    """A snapshot holding ``data`` at ``path``, as an older amlport (or a hand) could write."""
    repository = Repository.open(str(repo))
    manifest = repository.load_snapshot(repository.list_snapshots()[-1].id)
    digest, _ = repository.add_bytes(data)
    manifest.files.append(FileEntry(path=path, digest=digest, size=len(data)))
    manifest.created, manifest.snapshot_id = "", None
    repository.write_snapshot(manifest)


def test_verify_secrets_finds_a_secret_in_any_stored_object(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", ACCOUNT)
    ws.put(f"{BLOBSTORE}/LocalUpload/up1/src/train.py", "print('hello')\n")
    repo = tmp_path / "repo"
    assert cli("backup", str(ws.root), "--repo", str(repo)).returncode == 0
    pickle = b"\x80\x04\x95" + f"AccountKey={PKL_KEY};".encode() + os.urandom(3000)
    _plant(repo, "files/workspaceblobstore/old/model.pkl", pickle)
    _plant(repo, "files/workspaceblobstore/old/win.log", f"sig={SIGE}\n".encode("utf-16"))
    verify = cli("verify", str(repo), "--secrets", "--json")
    assert verify.returncode == 4, verify.explain()
    hits = json.loads(verify.stdout)["secrets"]["hits"]
    paths = {h["path"] for h in hits}
    assert {
        "files/workspaceblobstore/old/model.pkl",
        "files/workspaceblobstore/old/win.log",
    } <= paths
    text = verify.stdout + verify.stderr
    assert PKL_KEY not in text and SIGE not in text
    human = cli("verify", str(repo), "--secrets")
    assert human.returncode == 4 and "old/model.pkl: account_key x1" in human.stdout + human.stderr


def test_verify_secrets_passes_a_clean_repository(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws", ACCOUNT)
    ws.put(f"{BLOBSTORE}/LocalUpload/up1/src/train.py", "print('hello')\n")
    repo = tmp_path / "repo"
    assert cli("backup", str(ws.root), "--repo", str(repo)).returncode in (0, 1)
    verify = cli("verify", str(repo), "--secrets")
    assert verify.returncode == 0, verify.explain()
    assert "0 hit(s)" in verify.stdout


def test_streamed_files_holding_a_secret_are_never_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streaming paths (large binaries copied raw, large text rewritten as a stream)
    withhold a file before its object is committed: no staged byte stays behind."""
    monkeypatch.setattr(copy_mod, "READ_WHOLE", 1024)
    monkeypatch.setattr(copy_mod, "STREAM_ABOVE", 1024)
    ws = new_workspace(tmp_path / "ws", ACCOUNT)
    weights = os.urandom(300_000)
    secret_at = 200_000  # far from the start: found by the stream scan, not a first chunk
    pkl = weights[:secret_at] + f"AccountKey={PKL_KEY};".encode() + weights[secret_at:]
    ws.put_run_file("job1", "outputs/model.pkl", pkl)
    ws.put_run_file("job1", "outputs/clean.pkl", weights)
    # UTF-16 without a byte-order mark: the redactor cannot rewrite it, the byte search sees it
    log = ("x" * 100 + "\n") * 50 + "token: Utf16T0kenValue9\n"
    ws.put_run_file("job1", "user_logs/run.log", log.encode("utf-16-le"))
    result = run_export(LocalSource(ws.root), tmp_path / "repo", ExportRequest())
    assert result.stats is not None and not result.stats.failures, result.warnings
    assert int(result.exit_code) == 1
    withheld = {w.split(": ")[1] for w in result.warnings if w.startswith("not exported: ")}
    assert {p.rsplit("/", 1)[-1] for p in withheld} == {"model.pkl", "run.log"}
    stored = stored_contents(tmp_path / "repo")  # decrypted when encrypted
    assert weights in stored  # the clean binary, unaltered
    for needle in (PKL_KEY.encode(), "Utf16T0kenValue9".encode("utf-16-le")):
        assert not any(needle in data for data in stored)
    assert not any("model.pkl" in f for a in result.assets for f in a.files)
