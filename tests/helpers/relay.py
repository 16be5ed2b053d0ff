"""A relay in front of Azurite (tests of the obstore reads and of the own listing client):
an HTTP forward proxy too (absolute-form request targets) that records every request, and a
body cutter for broken streams."""

from __future__ import annotations

import http.client
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})


@dataclass
class Relay:
    """Forwards to Azurite; as an HTTP forward proxy too (absolute-form request targets).
    ``cut`` names paths whose first GET answer is cut after half its body, ``cut_always``
    paths whose every GET answer is; ``on_cut`` runs before an answer is cut."""

    upstream_port: int
    cut: set[str] = field(default_factory=set)
    cut_always: set[str] = field(default_factory=set)
    on_cut: Callable[[], None] | None = None
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        relay = self

        class Handler(_RelayHandler):
            owner = relay

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def note(self, method: str, path: str, headers: dict[str, str]) -> bool:
        """Record a request; True when its answer is to be cut."""
        with self.lock:
            self.seen.append((method, path, headers))
            if method == "GET" and path in self.cut_always:
                return True
            if method == "GET" and path in self.cut:
                self.cut.discard(path)
                return True
            return False


class _RelayHandler(BaseHTTPRequestHandler):
    owner: Relay
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = urlsplit(self.path)
        origin_form = target.path + (f"?{target.query}" if target.query else "")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        cut = self.owner.note(self.command, target.path, {k.lower(): v for k, v in headers.items()})
        conn = http.client.HTTPConnection("127.0.0.1", self.owner.upstream_port, timeout=60)
        try:
            conn.request(self.command, origin_form, body=body or None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            status, answer = resp.status, resp.getheaders()
        finally:
            conn.close()
        self.send_response(status)
        for name, value in answer:
            if name.lower() not in HOP and name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command == "HEAD":
            return
        if cut and self.owner.on_cut is not None:
            self.owner.on_cut()
        if cut:  # half the body, then the connection dies
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)
            return
        self.wfile.write(data)

    do_GET = do_HEAD = do_PUT = do_POST = do_DELETE = _handle
