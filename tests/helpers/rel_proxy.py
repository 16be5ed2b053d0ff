"""A small HTTP proxy on 127.0.0.1 in front of Azurite that misbehaves on purpose.

amlport talks to the proxy's URL (path-style, like Azurite); each request is forwarded to the
emulator unless a rule says otherwise: answer with a throttling or server error, or flip a
byte of the body. Every request is recorded (method, path), and so is every fault injected,
so a test can compare what amlport reports (``retries``) with what really happened.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})
ERROR_CODES = {
    403: "AuthenticationFailed",
    404: "BlobNotFound",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServerBusy",
}


@dataclass(frozen=True)
class Fault:
    """What to do with one request: ``status`` answers it instead of the emulator;
    ``corrupt`` forwards it and flips the first byte of the body; ``cut`` forwards it, sends
    half the body and closes the connection (a body that breaks mid-read)."""

    status: int | None = None
    retry_after: str | None = None
    corrupt: bool = False
    cut: bool = False


# (method, decoded path, how many times this method+path was seen before) -> fault or None
Rule = Callable[[str, str, int], Fault | None]


def no_faults(method: str, path: str, seen: int) -> Fault | None:
    return None


class FaultProxy:
    def __init__(self, upstream_port: int, rule: Rule = no_faults) -> None:
        self.upstream_port = upstream_port
        self.rule = rule
        self.lock = threading.Lock()
        self.seen: Counter[tuple[str, str]] = Counter()
        self.log: list[tuple[str, str]] = []
        self.times: dict[tuple[str, str], list[float]] = {}
        self.injected: list[tuple[str, str, int | str]] = []
        proxy = self

        class Handler(_Handler):
            owner = proxy

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def decide(self, method: str, path: str) -> Fault | None:
        with self.lock:
            key = (method, path)
            seen = self.seen[key]
            self.seen[key] += 1
            self.log.append(key)
            self.times.setdefault(key, []).append(time.monotonic())
            fault = self.rule(method, path, seen)
            if fault is not None:
                what = fault.status or ("cut" if fault.cut else "corrupt")
                self.injected.append((method, path, what))
            return fault


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = unquote(urlsplit(self.path).path)
        fault = self.owner.decide(self.command, path)
        if fault is not None and fault.status is not None:
            self._error(fault)
            return
        status, headers, data = self._forward(body)
        if fault is not None and fault.corrupt and data:
            data = bytes([data[0] ^ 0xFF]) + data[1:]
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in HOP_HEADERS and name.lower() != "content-length":
                self.send_header(name, value)
        length = str(len(data))
        if self.command == "HEAD":  # no body: the size is the upstream's Content-Length
            length = next((v for n, v in headers if n.lower() == "content-length"), "0")
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command != "HEAD" and fault is not None and fault.cut:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if self.command != "HEAD":
            self.wfile.write(data)

    def _forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.owner.upstream_port, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, resp.getheaders(), data
        finally:
            conn.close()

    def _error(self, fault: Fault) -> None:
        code = ERROR_CODES.get(int(fault.status or 500), "InternalError")
        body = (
            f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code>'
            f"<Message>injected by the reliability suite</Message></Error>"
        ).encode()
        self.send_response(int(fault.status or 500))
        self.send_header("Content-Type", "application/xml")
        self.send_header("x-ms-error-code", code)
        if fault.retry_after is not None:
            self.send_header("Retry-After", fault.retry_after)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = do_PATCH = _handle
