"""The streaming paths, in process: ``LogStream`` rewrites exactly as ``rewrite_log`` does,
``scan_secrets`` counts as ``find_secrets`` does, the fast pre-checks cannot skip a secret or a
URI, the connection-string pattern is linear, log records are redacted, and the export writer
streams, falls back to a raw copy for binary content, checks MD5, and stops on an outage.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import BinaryIO

import pytest
from helpers.encrypted_mode import stored_contents
from helpers.rel_workspace import new_workspace
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlport import secrets
from amlport.errors import SourceError
from amlport.export import ExportRequest, run_export
from amlport.export import copy as copy_mod
from amlport.export import writer as writer_mod
from amlport.model import uri_scan, uris
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.rewriters.text_log import (
    HOLD,
    STREAM_CHUNK,
    URI_HINTS,
    URI_MAX,
    LogStream,
    pieces,
    rewrite_log,
    scan_secrets,
)
from amlport.secrets import UNFINISHED_MAX
from amlport.storage.base import BlobInfo
from amlport.storage.local import LocalSource
from amlport.walk import WalkOptions, walk

ACCOUNT = "streamacct01"
BLOBSTORE = "azureml-blobstore-5e1ab1e0-0000-4000-8000-00000000c0de"
RULES = RewriteRules(
    "export",
    Identity(
        account=ACCOUNT,
        containers={BLOBSTORE: "workspaceblobstore", "azureml": "workspaceartifactstore"},
    ),
)
KEY = "S3RyZWFtS2V5Rm9yVGhlUmVsaWFiaWxpdHlTdWl0ZTEyMzQ1Njc4OTBhYmNkZWZnaA=="
ATOMS = [
    f"wasbs://{BLOBSTORE}@{ACCOUNT}.blob.core.windows.net/azureml/run/out/part.csv",
    f"https://{ACCOUNT}.blob.core.windows.net/{BLOBSTORE}/UI/x y.csv?sv=1&sig=c2lnc2lnc2lnc2lnc2ln",
    "azureml://datastores/workspaceblobstore/paths/LocalUpload/abc/data.csv",
    "/mnt/azureml/cr/j/0123456789abcdef/cap/data-capability/wd/INPUT_x",
    f"AccountKey={KEY}",
    f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};AccountKey={KEY};EndpointSuffix=x",
    "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
    '"SasToken": "sv=2021&sig=abcdefabcdefabcdefab"',
    "é",
    "日本",
    " ",
    "\t",
    "\n",
    ",",
    ";",
    '"',
    "word",
    " " + "z" * 3000,
]


@st.composite
def log_text(draw: st.DrawFn) -> str:
    parts = draw(st.lists(st.sampled_from(ATOMS), min_size=1, max_size=80))
    if draw(st.booleans()):  # one line longer than the window: the cutting path
        run = " " + "q" * draw(st.integers(HOLD, 3 * HOLD))
        parts.insert(draw(st.integers(0, len(parts))), run)
    # (Fillers start with a space: a value that looks like a secret and is longer than the
    # window, such as ``sig=`` glued to 16 KiB of letters, is redacted only in part.)
    return "".join(parts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=log_text(), chunk=st.sampled_from([997, 4096, 1 << 16]))
def test_a_stream_rewrites_exactly_as_the_whole_file(text: str, chunk: int) -> None:
    data = text.encode()
    whole = rewrite_log("std_log.txt", data, RULES)
    stream = LogStream("std_log.txt", RULES, chunk=chunk)
    out = b"".join(stream.run(io.BytesIO(data)))
    result = stream.result()
    assert out == whole.data
    assert result.redactions == whole.redactions
    assert [(c.location, c.before, c.after) for c in result.changes] == [
        (c.location, c.before, c.after) for c in whole.changes
    ]
    assert stream.read == len(data)
    found = sum((secrets.find_secrets(line) for line in text.split("\n")), Counter())
    assert scan_secrets(io.BytesIO(data), chunk=chunk) == found


def _pem_key(lines: int = 40) -> tuple[str, list[str]]:
    body = [base64.b64encode(hashlib.sha512(str(i).encode()).digest()[:48]).decode()
            for i in range(lines)]  # fmt: skip
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(body) + "\n-----END RSA PRIVATE KEY-----"
    return key, body


@pytest.mark.parametrize("chunk", [997, 4096, STREAM_CHUNK])
def test_a_private_key_across_a_chunk_boundary_is_redacted_whole(chunk: int) -> None:
    """A PEM key (~2.6 KB) that a stream read cut in two: before, the lines after the cut went
    out as they were (18 of 40 key lines at the 1 MiB boundary of a large log), because the
    piece holding them lacked the BEGIN line."""
    key, body = _pem_key()
    filler = "".join(f"step {i} loss 0.{i:04d}\n" for i in range(chunk // 20 + 1))
    filler = filler[: max(chunk - 1500, 0)]
    filler = filler[: filler.rfind("\n") + 1]
    data = f"{filler}{key}\nend of run\n".encode()
    out = b"".join(LogStream("std_log.txt", RULES, chunk=chunk).run(io.BytesIO(data)))
    assert not [line for line in body if line.encode() in out]
    assert out == rewrite_log("std_log.txt", data, RULES).data
    assert scan_secrets(io.BytesIO(data), chunk=chunk) == Counter(private_key=1)


def test_a_wrapped_signature_at_a_chunk_boundary_is_redacted_whole() -> None:
    """A SAS signature wrapped onto the next line, the line break the last of a read."""
    head = f"https://{ACCOUNT}.blob.core.windows.net/{BLOBSTORE}/a.csv?sv=1&sig=c2lnc2lnc2ln\n"
    rest = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY%3D\n"
    filler = "x" * (997 - len(head) - 2) + "\n"
    data = (filler + head + rest + "done\n").encode()
    out = b"".join(LogStream("std_log.txt", RULES, chunk=997).run(io.BytesIO(data)))
    assert b"QUJDREVG" not in out and b"c2lnc2ln" not in out
    assert out == rewrite_log("std_log.txt", data, RULES).data


@pytest.mark.parametrize(
    "hostile",
    [
        "-----BEGIN PRIVATE KEY-----\n" + ("QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n" * 40_000),
        "a.csv?sv=1&sig=c2lnc2lnc2lnc2lnc2ln\n" + "q" * 3_000_000,
        "a.csv?sv=1&sig=c2lnc2lnc2lnc2lnc2ln\n" * 60_000,
    ],
    ids=["key-without-end", "endless-line-after-a-signature", "every-line-a-signature"],
)
def test_what_waits_for_the_rest_of_a_secret_is_bounded(hostile: str) -> None:
    chunk = 4096
    longest = max(len(p.text) for p in pieces(io.BytesIO(hostile.encode()), chunk=chunk))
    assert longest <= UNFINISHED_MAX + 2 * chunk + HOLD


def test_invalid_utf8_bytes_round_trip_and_secrets_around_them_go() -> None:
    data = b"\xff\xfe caf\xe9 AccountKey=" + KEY.encode() + b" \x80\x81\n" + b"\xc3" * 5
    out = b"".join(LogStream("x.log", RULES, chunk=7).run(io.BytesIO(data)))
    assert out == data.replace(KEY.encode(), b"REDACTED")


def test_every_secret_pattern_has_a_trigger() -> None:
    for pattern in secrets._PATTERNS:  # each pattern's own triggers: see tests/unit/test_secrets
        assert pattern.triggers and set(pattern.triggers) <= set(secrets.TRIGGERS), pattern.kind
    assert not secrets.may_hold_secret("nothing to see here: https://example.org/?a=b")
    long_s, kelvin, dotted_i = "\u017f", "\u212a", "\u0130"  # IGNORECASE matches them
    for text in (f"{long_s}ig=abc", f"Account{kelvin}ey=abc", f"S{dotted_i}G=abc", "ACCOUNTKEY="):
        assert secrets.may_hold_secret(text), text


def test_uri_hints_and_limits_match_the_uri_scanner() -> None:
    start = uri_scan._START.pattern  # if this changes, review URI_HINTS in text_log.py
    assert start == (
        r"(?<![\w+.-])(?i:azureml:|wasbs?://|abfss?://|https?://|adl://|runs:/|models:/"
        r"|mlflow-artifacts:|aml://)"
        r"|(?<![\w./-])(?:/mnt/batch/tasks/shared/LS_root/jobs/|/(?:mnt|scratch)/azureml/cr/j/)"
    )
    assert URI_MAX >= uris._MAX_URI_LEN
    samples = ["azureml:x", "wasb://", "abfss://", "HTTP://", "adl://", "runs:/", "models:/",
               "mlflow-artifacts:", "aml://", "/mnt/batch/tasks/shared/LS_root/jobs/",
               "/mnt/azureml/cr/j/", "/scratch/azureml/cr/j/"]  # fmt: skip
    for sample in samples:
        assert uri_scan._START.search(sample), sample
        assert any(h in sample.lower() for h in URI_HINTS), sample


def test_the_connection_string_pattern_is_linear() -> None:
    """It used to backtrack exponentially: 20 ``ab=`` after the prefix took minutes."""
    for text in ("DefaultEndpointsProtocol=https;" + "ab=" * 20000, "DefaultEndpointsProtocol=x;"
                 + "a=b;" * 20000 + " ", ("AccountKey=" + "A" * 50 + ";") * 2000):  # fmt: skip
        started = time.monotonic()
        secrets.redact(text)
        assert time.monotonic() - started < 2.0


def test_log_records_are_redacted() -> None:
    secrets.install_log_redaction()
    secrets.install_log_redaction()  # idempotent
    seen: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    logger = logging.getLogger("urllib3.connectionpool.amlport-test")
    handler = Keep()
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug('"GET /acct/c?sv=1&sig=%s HTTP/1.1" %s', "c2VjcmV0c2lnbmF0dXJlMTIz", 200)
        try:
            raise ValueError(f"boom AccountKey={KEY}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    text = " ".join(f"{r.getMessage()} {r.exc_text}" for r in seen)
    assert "c2VjcmV0c2lnbmF0dXJlMTIz" not in text and KEY not in text
    assert "sig=REDACTED" in text


# --- the walker and the writer, with small limits ----------------------------------------------


def test_the_walker_scans_past_the_parse_limit(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    ws.put_run_file("r", "user_logs/std_log.txt", "x" * 5000 + f" AccountKey={KEY}\n")
    ws.put_run_file("r", "outputs/env.yml", "name: a\n# " + "é" * 3000 + f"\nk: AccountKey={KEY}\n")
    inv = walk(LocalSource(ws.root), options=WalkOptions(max_parse_bytes=1001))
    codes = Counter((f.code, f.path.rsplit("/", 1)[-1]) for f in inv.findings)
    assert codes[("secret-in-file", "std_log.txt")] == 1
    assert codes[("secret-in-file", "env.yml")] == 1
    assert ("file-too-large-to-parse", "std_log.txt") not in codes  # scanned whole
    assert codes[("file-too-large-to-parse", "env.yml")] == 1  # its structure was not parsed
    assert not [f for f in inv.findings if f.code == "non-utf8-text"]  # cut inside an "é"


def _small_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(copy_mod, "STREAM_ABOVE", 1024)
    monkeypatch.setattr(copy_mod, "MAX_REWRITE_BYTES", 2048)


def _objects(repo: Path) -> list[bytes]:
    """What the repository stores, decrypted when it is encrypted (make test-encrypted)."""
    return stored_contents(repo)


def test_the_writer_streams_redacts_and_copies_binary_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_limits(monkeypatch)
    ws = new_workspace(tmp_path / "ws")
    text = ("a,b,c\n" * 2000 + f"AccountKey={KEY}\n").encode()
    binary = b"\x00\x01" * 3000 + b"weights" + b"\x00" * 10
    secret = b"\x00\x01" * 3000 + f"AccountKey={KEY}".encode() + b"\x00" * 10
    ws.put_run_file("r", "outputs/table.csv", text)
    ws.put_run_file("r", "outputs/blob.dat", binary)
    ws.put_run_file("r", "outputs/secret.dat", secret)
    ws.put_run_file("r", "outputs/big.yml", "a: 1\n" * 1000)
    result = run_export(LocalSource(ws.root), tmp_path / "repo", ExportRequest())
    assert result.stats is not None and not result.stats.failures
    assert result.stats.streamed == 2  # the csv and the yaml; the binaries went raw
    stored = _objects(tmp_path / "repo")
    assert text.replace(KEY.encode(), b"REDACTED") in stored
    assert binary in stored  # a binary file is never altered
    # ... and one holding a secret it cannot redact is not stored at all (issue 17)
    assert not any(KEY.encode() in data for data in stored)
    assert any(w.startswith("not exported: ") and "secret.dat" in w for w in result.warnings)
    assert any("too large to parse as yaml" in w for w in result.warnings)


class _WrongMd5(LocalSource):
    def list_blobs(self):  # type: ignore[no-untyped-def]
        for b in super().list_blobs():
            yield BlobInfo(b.container, b.name, b.size, b.etag, "0" * 32)


def test_a_streamed_file_with_a_wrong_md5_is_an_integrity_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _small_limits(monkeypatch)
    ws = new_workspace(tmp_path / "ws")
    ws.put_run_file("r", "user_logs/big.log", "line\n" * 1000)
    result = run_export(_WrongMd5(ws.root), tmp_path / "repo", ExportRequest())
    assert result.stats is not None and result.stats.integrity_failures >= 1
    assert int(result.exit_code) == 4


@pytest.mark.parametrize("read_whole", [1024 * 1024, 16], ids=["read-whole", "streamed"])
def test_a_binary_file_with_a_wrong_md5_is_an_integrity_failure(
    tmp_path: Path, read_whole: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(copy_mod, "READ_WHOLE", read_whole)
    payload = b"\x00\x01weights" * 100
    ws = new_workspace(tmp_path / "ws")
    ws.put_run_file("r", "outputs/model.pkl", payload)
    result = run_export(_WrongMd5(ws.root), tmp_path / "repo", ExportRequest())
    assert result.stats is not None and int(result.exit_code) == 4
    assert any("outputs/model.pkl" in f for f in result.stats.failures)
    assert not any(payload in data for data in _objects(tmp_path / "repo"))


class _DownAfter(LocalSource):
    """Reads start failing as if the endpoint went away; counts the attempts."""

    def __init__(self, root: Path, budget: int) -> None:
        super().__init__(root)
        self.budget = budget
        self.attempts = 0
        self.lock = threading.Lock()

    def _attempt(self) -> None:
        with self.lock:
            self.attempts += 1
            self.budget -= 1
            if self.budget < 0:
                raise SourceError("cannot reach the storage (test)")

    def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        self._attempt()
        return super().read_bytes(container, name, max_bytes=max_bytes)

    def open_stream(self, container: str, name: str) -> BinaryIO:
        self._attempt()
        return super().open_stream(container, name)


def test_an_outage_stops_the_transfer_instead_of_failing_file_by_file(tmp_path: Path) -> None:
    ws = new_workspace(tmp_path / "ws")
    for i in range(200):
        ws.put_run_file("r", f"outputs/p{i:03d}.bin", b"\x00" * 10)
    source = _DownAfter(ws.root, budget=20)
    result = run_export(source, tmp_path / "repo", ExportRequest(workers=2))
    stats = result.stats
    assert stats is not None and stats.stopped is not None and int(result.exit_code) == 3
    assert source.attempts <= 20 + writer_mod.OUTAGE_AFTER + 2  # no retry storm over 180 files
    assert sum(writer_mod.NOT_ATTEMPTED in f for f in stats.failures) > 150
    assert re.search(r"failed \d+ times in a row: cannot reach", stats.stopped)
