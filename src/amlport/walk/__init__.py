"""Walk a workspace's storage: classify every blob, parse the small files, build an inventory."""

from amlport.walk.listing import Listing
from amlport.walk.walker import WalkOptions, walk, walk_with_listing

__all__ = ["Listing", "WalkOptions", "walk", "walk_with_listing"]
