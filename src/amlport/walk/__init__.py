"""Walk a workspace's storage: classify every blob, parse the small files, build an inventory."""

from amlport.walk.walker import WalkOptions, walk

__all__ = ["WalkOptions", "walk"]
