"""Run amlport (or a script) counting the bytes it receives, optionally with a what-if patch.

    python bench/wrap.py OUT_FILE [--patch NAME]... -m amlport scan …   # like python -m
    python bench/wrap.py OUT_FILE path/to/script.py …                   # a script

Bytes received: the loopback interface cannot tell this benchmark's traffic from other
processes' on a shared machine, so the measured program counts for itself:
``socket.recv_into``/``recv`` are wrapped (one addition per read of up to 64 KiB) and the
total is written to OUT_FILE at exit.

What-if patches (``--patch``) change amlport in this process only, to measure what a proposed
optimisation would gain before anyone edits amlport (nothing in src/ is touched):

- ``no-log-reads``: the walk does not read run logs for the secret scan (lineage logs still).
- ``skip-empty``: the walk does not GET blobs the listing says are empty (size 0).
- ``reuse-walk-reads``: bytes the walk read are kept and served again to the export's
  transfer, instead of a second GET of the same small file.
- ``no-fsync``: ``os.fsync`` does nothing (what per-object durability costs).
- ``big-blocks``: the HTTP transport reads response bodies in 1 MiB blocks instead of
  azure-core's default 4 KiB (``connection_data_block_size``), for large payloads.
- ``no-netrc``: requests does not look for a ``~/.netrc`` before every request (what
  ``session.trust_env`` costs when nothing sets ``session.auth``).
"""

from __future__ import annotations

import atexit
import io
import os
import runpy
import socket
import sys
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_received = [0]
_orig_recv_into = socket.socket.recv_into
_orig_recv = socket.socket.recv


def _recv_into(self: socket.socket, *args: Any, **kwargs: Any) -> int:
    n = _orig_recv_into(self, *args, **kwargs)
    with _lock:
        _received[0] += n
    return n


def _recv(self: socket.socket, *args: Any, **kwargs: Any) -> bytes:
    data = _orig_recv(self, *args, **kwargs)
    with _lock:
        _received[0] += len(data)
    return data


def _patch_no_log_reads() -> None:
    from amlport.walk import handlers

    orig = handlers.Handlers.__init__

    def init(self: Any, inv: Any, *, scan_secrets: bool) -> None:
        orig(self, inv, scan_secrets=False)

    handlers.Handlers.__init__ = init  # type: ignore[method-assign]


def _patch_skip_empty() -> None:
    from amlport.storage import base

    orig = base.Source._read_one

    def read_one(self: Any, blob: Any, max_bytes: int | None) -> bytes:
        return b"" if blob.size == 0 else orig(self, blob, max_bytes)

    base.Source._read_one = read_one  # type: ignore[method-assign]


def _patch_reuse_walk_reads() -> None:
    from amlport.storage import azure

    cache: dict[tuple[str, str], bytes] = {}
    orig_read = azure.AzureSource.read_bytes
    orig_open = azure.AzureSource.open_stream

    def read_bytes(self: Any, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
        hit = cache.get((container, name))
        if hit is not None:
            return hit if max_bytes is None else hit[:max_bytes]
        data = orig_read(self, container, name, max_bytes=max_bytes)
        if max_bytes is None or len(data) < max_bytes:  # the whole blob
            cache[(container, name)] = data
        return data

    def open_stream(self: Any, container: str, name: str) -> Any:
        hit = cache.pop((container, name), None)
        return io.BytesIO(hit) if hit is not None else orig_open(self, container, name)

    azure.AzureSource.read_bytes = read_bytes  # type: ignore[method-assign]
    azure.AzureSource.open_stream = open_stream  # type: ignore[method-assign]


def _patch_no_fsync() -> None:
    os.fsync = lambda fd: None


def _patch_no_netrc() -> None:
    import requests.sessions

    requests.sessions.get_netrc_auth = lambda url, raise_errors=False: None  # type: ignore[assignment]


def _patch_big_blocks() -> None:
    from azure.core.pipeline.transport import _requests_basic

    orig = _requests_basic.RequestsTransport.__init__

    def init(self: Any, **kwargs: Any) -> None:
        kwargs.setdefault("connection_data_block_size", 1 << 20)
        orig(self, **kwargs)

    _requests_basic.RequestsTransport.__init__ = init  # type: ignore[method-assign]


PATCHES = {
    "big-blocks": _patch_big_blocks,
    "no-netrc": _patch_no_netrc,
    "no-log-reads": _patch_no_log_reads,
    "skip-empty": _patch_skip_empty,
    "reuse-walk-reads": _patch_reuse_walk_reads,
    "no-fsync": _patch_no_fsync,
}


def main() -> None:
    out = Path(sys.argv[1])
    args = sys.argv[2:]
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p != here]  # bench/ must not shadow anything
    socket.socket.recv_into = _recv_into  # type: ignore[method-assign]
    socket.socket.recv = _recv  # type: ignore[method-assign]
    atexit.register(lambda: out.write_text(str(_received[0])))
    while args and args[0] == "--patch":
        PATCHES[args[1]]()
        args = args[2:]
    if args[0] == "-m":
        module = args[1]
        sys.argv = [module, *args[2:]]
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = args
        sys.path.insert(0, str(Path(args[0]).resolve().parent))
        runpy.run_path(args[0], run_name="__main__")


if __name__ == "__main__":
    main()
