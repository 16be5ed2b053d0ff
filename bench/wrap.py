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
- ``no-fsync``: ``os.fsync`` does nothing (what per-object durability costs).
"""

from __future__ import annotations

import atexit
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


def _patch_no_fsync() -> None:
    os.fsync = lambda fd: None


PATCHES = {
    "no-log-reads": _patch_no_log_reads,
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
