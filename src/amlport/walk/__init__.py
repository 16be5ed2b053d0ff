"""Walk a workspace's storage: classify every blob, parse the small files, build an inventory.

The walker is imported on first use (``from amlport.walk import walk``): a command that
needs only a light part (the read cache's folder, the listing type) does not import every
parser (docs/design/0007, "Re-backup from the listing").
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from amlport.walk.listing import Listing
    from amlport.walk.walker import WalkOptions, walk, walk_with_listing

__all__ = ["Listing", "WalkOptions", "walk", "walk_with_listing"]


def __getattr__(name: str) -> Any:
    if name == "Listing":
        from amlport.walk.listing import Listing

        return Listing
    if name in ("WalkOptions", "walk", "walk_with_listing"):
        from amlport.walk import walker

        return getattr(walker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
