"""Which blob names the obstore read path can address (``storage.objects.carries``).

object_store's ``Path`` refuses empty segments, ``.``/``..`` segments and ASCII control
characters ("Could not parse path"); before the SDK fallback a backup of an Azure source with
such a name (all legal in Azure) ended in an internal error. The Azurite property test
(tests/reliability/test_hostile_names_azurite_property.py) drives them end to end.
"""

from __future__ import annotations

from pathlib import Path

import obstore
import pytest
from obstore.store import MemoryStore

from amlport.bundle.files import local_path
from amlport.errors import UsageError
from amlport.storage.objects import carries

UNCARRIED = ["a//b", "/a", "a/", "a/./b", "a/../b", ".", "..", "tab\there", "c\rd", "d\x7fe", ""]
CARRIED = ["a/b", "x[/]y.txt", "a..b/..c", "c1\x85\x9b", "bidi\u202eevil", "q?x=1&y#z%2F", "é"]


def _obstore_keeps(name: str) -> bool:
    """Does obstore store ``name`` and list it back exactly as given?"""
    store = MemoryStore()
    try:
        obstore.put(store, name, b"x")
    except Exception:  # obstore refuses the path (ValueError or one of its own errors)
        return False
    return [m["path"] for m in obstore.list(store).collect()] == [name]


@pytest.mark.parametrize("name", UNCARRIED)
def test_names_object_store_cannot_keep_are_not_carried(name: str) -> None:
    assert not carries(name)
    assert not name or not _obstore_keeps(name)  # the premise of the SDK fallback


@pytest.mark.parametrize("name", CARRIED)
def test_other_legal_names_are_carried_exactly(name: str) -> None:
    assert carries(name)
    assert _obstore_keeps(name)


def test_a_bundle_path_with_an_empty_segment_is_refused_as_a_local_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="empty path segment"):
        local_path(tmp_path, "files/ws/a//b.txt")
    assert local_path(tmp_path, "files/ws/a/b.txt") == tmp_path / "files" / "ws" / "a" / "b.txt"
