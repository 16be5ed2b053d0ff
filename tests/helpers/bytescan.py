"""Feeding the byte scanner as a transfer does (tests of ``secrets`` and its prefilter)."""

from __future__ import annotations

from collections import Counter

from amlport.secrets import ByteScanner


def scan_reusing_one_buffer(data: bytes, chunk: int) -> Counter[str]:
    """Feed ``data`` as a transfer does: every chunk in the same buffer, overwritten after
    each feed (the scanner must not keep a view of it)."""
    scanner = ByteScanner()
    buffer = bytearray(chunk)
    view = memoryview(buffer)
    for at in range(0, len(data), chunk):
        piece = data[at : at + chunk]
        view[: len(piece)] = piece
        scanner.feed(view[: len(piece)])
        view[:] = b"\x01" * chunk  # the next read lands here
    return scanner.close()
