"""Prefix queries over a sorted listing (folders are prefixes; '-' and '.' sort before '/')."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from amlport.storage.base import BlobInfo
from amlport.walk.listing import Listing

SEGMENT = st.text(alphabet="ab-./_0é ", min_size=1, max_size=4).filter(
    lambda s: "/" not in s and s not in (".", "..")
)
NAME = st.lists(SEGMENT, min_size=1, max_size=4).map("/".join)


def _listing(names: list[str]) -> Listing:
    listing = Listing()
    for n in names:
        listing.add(BlobInfo("c", n, 1))
    listing.freeze()
    return listing


def test_siblings_that_sort_between_are_excluded() -> None:
    listing = _listing(["a/b", "a/b-c/x", "a/b.txt", "a/b/x", "a/b/y/z", "a/c"])
    assert [b.name for b in listing.under("c", "a/b")] == ["a/b", "a/b/x", "a/b/y/z"]
    assert listing.has_blobs_under("c", "a/b")
    assert not listing.has_blobs_under("c", "a/b-")
    assert listing.get("c", "a/b.txt") is not None and listing.get("c", "a/bb") is None


@given(st.lists(NAME, unique=True, max_size=30), NAME)
def test_under_matches_a_linear_scan(names: list[str], prefix: str) -> None:
    listing = _listing(names)
    expected = sorted(n for n in names if n == prefix or n.startswith(prefix + "/"))
    assert [b.name for b in listing.under("c", prefix)] == expected
    assert listing.has_blobs_under("c", prefix) == bool(expected)
