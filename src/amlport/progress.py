"""The progress callbacks: one declaration per shape, imported wherever progress is reported.

Before issue 23 the same callback was declared in ten modules under three names (``Progress``,
``ProgressFn``, ``StageProgress``) and three shapes; they now use these names (only
``cli/common.py`` keeps ``ProgressFn``, beside rich's ``Progress`` bar).

- ``Progress`` — ``(stage, done, total)``: a phase of a command ("listing", "objects",
  "verify", …), how many of its items are done, and how many there are, ``None`` while that
  is not known yet (a listing still running). Library code that always knows its total calls
  it with an ``int``; every implementation (the CLI's progress bars) accepts ``None``.
- ``ByteProgress`` — ``(n)``: bytes just stored (the repository's object writer).
- ``TransferProgress`` — ``(files_done, bytes_done)``: running totals of the export's transfer.

Pure types on the lowest floor (docs/design/0000-map.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

Progress: TypeAlias = Callable[[str, int, int | None], None]
ByteProgress: TypeAlias = Callable[[int], None]
TransferProgress: TypeAlias = Callable[[int, int], None]
