"""What a first backup's main process does per file, made cheaper without changing what is
stored (docs/design/0007, "First-backup time (A, session 9)"):

- a batch lists a fan-out folder's small loose objects once (``ObjectStore._loose_small``)
  instead of looking up each new object's file: an object loose already is still not
  packed again, a link in a folder's place is still refused;
- a file entry of the common form is read back without ``_Fields`` (``FileEntry.from_dict``)
  and written field by field (``trees.entry_text``): the same entries, the same errors, the
  same bytes, hostile names included;
- the transfer asks ``rewrites`` of a file once (``FileCopier.reusable(remember=True)``).

Runs plain and, with ``AMLPORT_TEST_ENCRYPT=1``, encrypted.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import pack_files, sha
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport.bundle import Repository
from amlport.bundle.index import SourceIndex
from amlport.bundle.trees import dumps, entry_text
from amlport.errors import AmlportError, IntegrityError
from amlport.export.copy import Carried, FileCopier
from amlport.export.transfer import TransferStats
from amlport.model.manifest import FileEntry
from amlport.rewriters.rules import Identity, RewriteRules
from amlport.storage.base import BlobInfo
from amlport.storage.local import LocalSource

HOSTILE = [
    "a",
    "[x]",
    "]",
    "..",
    ".",
    "a/../b",
    "a/./b",
    ".hidden",
    "dir/.hidden",
    "a//b",
    "/abs",
    "tab\there",
    "ctl\x01\x1f\x7f",
    "nul\x00",
    "new\nline",
    'q"uote',
    "back\\slash",
    "ünïcødé/ß",
    "\u2028\u2029",
    "\ud800lone",
    "x" * 1024,
    "",
]


@pytest.fixture
def packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    monkeypatch.setenv("AMLPORT_PACKS", "1")
    return Repository.init(tmp_path / "repo")


# --- a batch's lookups of loose objects -----------------------------------------------------


def test_a_small_object_loose_before_the_batch_is_not_packed_again(packed: Repository) -> None:
    loose = packed.put_bytes(b"stored loose, outside a batch")
    with packed.objects.batch():
        assert packed.add_bytes(b"first of its batch")[1]  # lists its fan-out folder
        assert packed.add_bytes(b"stored loose, outside a batch") == (loose, False)
        new, stored = packed.add_bytes(b"packed")
    assert stored and packed.objects.location(new).startswith("packs/")
    assert packed.objects.location(loose) == packed.objects.key(loose)  # not copied
    assert packed.get_bytes(loose) == b"stored loose, outside a batch"


def test_an_object_streamed_loose_inside_the_batch_is_not_packed_after_it(
    packed: Repository,
) -> None:
    data = b"streamed, then added"
    fan = sha(data).split(":")[1][:2]
    with packed.objects.batch():
        # a neighbour of the same fan-out folder: the folder is listed before the stream
        neighbour = next(
            b"n%d" % i for i in range(100_000) if sha(b"n%d" % i).split(":")[1][:2] == fan
        )
        assert packed.add_bytes(neighbour)[1]
        digest, _ = packed.put_stream(io.BytesIO(data))
        assert packed.add_bytes(data) == (digest, False)
    assert packed.objects.location(digest) == packed.objects.key(digest)
    assert packed.get_bytes(digest) == data
    assert len(pack_files(packed)) == 1


def test_a_loose_object_at_another_size_is_packed_beside_it(packed: Repository) -> None:
    """A file in an object's place that is not its stored size (cut short) does not count:
    the object is packed, as before."""
    data = b"whole bytes of the object"
    digest = packed.put_bytes(data)
    path = packed.objects.path(digest)
    path.write_bytes(data[:5])
    with packed.objects.batch():
        assert packed.add_bytes(data) == (digest, True)
    assert packed.objects.location(digest).startswith("packs/")
    assert Repository.open(packed.path).get_bytes(digest) == data


def test_a_link_in_place_of_a_fan_out_folder_is_refused(packed: Repository, tmp_path: Path) -> None:
    data = b"an object whose folder is a link"
    fan = sha(data).split(":")[1][:2]
    outside = tmp_path / "outside"
    outside.mkdir()
    folder = packed.path / "objects" / "sha256" / fan
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, folder)
    with pytest.raises(IntegrityError, match="symbolic link"), packed.objects.batch():
        packed.add_bytes(data)
    assert not list(outside.iterdir())


# --- a file entry read back and written ----------------------------------------------------


_slow = FileEntry.checked  # the checks that name what is wrong, without the fast path


def _outcome(parse: Any, data: Any) -> tuple[str, Any]:
    try:
        entry = parse(data, "w")
    except AmlportError as exc:
        return "error", exc.message
    return "entry", (entry._key(), entry.original)


DIGEST = "sha256:" + "ab" * 32
VALUES: dict[str, list[Any]] = {
    "path": [*(f"files/ds/{n}" for n in HOSTILE), *HOSTILE, 7, None, b"files/x", True],
    "digest": [DIGEST, DIGEST + "\n", "sha256:" + "AB" * 32, "", None, 3],
    "size": [0, 12, -1, True, 1.5, None, "3", 2**70],
    "original": [None, {"datastore": "ds", "container": "c", "path": "x"}, {}, [], "x"],
    "rewritten": [None, False, True, 0, 1, "yes"],
    "original_digest": [None, "", DIGEST, "sha256:xyz", 5, DIGEST + "\n"],
}


@settings(max_examples=400, deadline=None)
@given(
    st.fixed_dictionaries({k: st.sampled_from(v) for k, v in VALUES.items()}),
    st.sets(st.sampled_from(sorted(VALUES))),
)
def test_a_file_entry_reads_back_as_the_full_checks_read_it(
    fields: dict[str, Any], absent: set[str]
) -> None:
    data = {k: v for k, v in fields.items() if k not in absent}
    assert _outcome(FileEntry.from_dict, data) == _outcome(_slow, data)


@pytest.mark.parametrize("data", [None, [], "x", 3])
def test_an_entry_that_is_not_an_object_is_refused_as_before(data: Any) -> None:
    assert _outcome(FileEntry.from_dict, data) == _outcome(_slow, data)


@pytest.mark.parametrize("name", [n for n in HOSTILE if n and "\x00" not in n])
@pytest.mark.parametrize("rewritten", [False, True])
def test_a_file_entry_is_written_as_the_encoder_writes_it(name: str, rewritten: bool) -> None:
    for datastore in ("ds", "wörk[1]", "a\tb"):
        entry = FileEntry(
            f"files/{datastore}/{name}",
            DIGEST,
            len(name),
            {"datastore": datastore, "container": f"c-{name[:8]}", "path": name},
            rewritten,
            DIGEST if rewritten else None,
        )
        assert entry_text(entry.to_dict()) == dumps(entry.to_dict())
    other = [
        FileEntry(f"specs/{name}", DIGEST, 0, {"specs": name}).to_dict(),
        FileEntry(f"x/{name}", DIGEST, 1, None).to_dict(),
        {**entry.to_dict(), "extra": name},
        {**entry.to_dict(), "size": True},
        {**entry.to_dict(), "original": {"datastore": 1, "container": "c", "path": name}},
        {"path": name},
        [name],
    ]
    for item in other:
        assert entry_text(item) == dumps(item)


@given(st.text(), st.text(), st.text(), st.integers(min_value=0), st.booleans())
@settings(max_examples=300, deadline=None)
def test_any_text_is_written_as_the_encoder_writes_it(
    name: str, datastore: str, container: str, size: int, rewritten: bool
) -> None:
    item = FileEntry(
        f"files/{datastore}/{name}",
        DIGEST,
        size,
        {"datastore": datastore, "container": container, "path": name},
        rewritten,
    ).to_dict()
    assert entry_text(item) == dumps(item)


# --- ``rewrites`` asked once per file ----------------------------------------------------------


def test_reuse_takes_the_answer_reusable_remembered_and_forgets_it(packed: Repository) -> None:
    copier = FileCopier(
        None,  # type: ignore[arg-type]  # no file is read
        RewriteRules(direction="export", source=Identity()),
        TransferStats(),
        [],
    )
    index = SourceIndex(packed.store, "src", packed.objects.size)
    carried = Carried({}, {}, {}, {})
    blob = BlobInfo(container="c[1]", name="../x/MLmodel", size=10, etag="e")
    assert not copier.reusable(index, carried, "files/ds/../x/MLmodel", blob)
    assert not copier._rewrites  # asked ahead of the count: nothing kept
    assert not copier.reusable(index, carried, "files/ds/../x/MLmodel", blob, remember=True)
    assert copier._rewrites == {"files/ds/../x/MLmodel": True}
    assert not copier.reuse(index, carried, "files/ds/../x/MLmodel", blob)
    assert not copier._rewrites


# --- the walk searches the listing's names together ------------------------------------------

SAS = "sv=2021-08-06&ss=b&srt=co&sp=rl&se=2030-01-01&sig=" + "A1b2C3d4E5f6G7h8I9j0KlMnOp%2Bab%3D"


def _findings_of_names(root: Path, together: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    from amlport.walk import WalkOptions, walk_with_listing
    from amlport.walk import walker as walker_mod

    monkeypatch.setattr(walker_mod, "NAMES_SEARCHED_TOGETHER", together)
    inv, _ = walk_with_listing(LocalSource(root), options=WalkOptions())
    return [repr(f) for f in inv.findings]


def test_a_secret_in_any_name_of_the_listing_is_found_as_name_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    from amlport.model import findings as F

    root = tmp_path / "ws"
    shutil.copytree(Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "messy", root)
    container = next(p for p in root.iterdir() if p.name.startswith("azureml-blobstore"))
    names = []
    for i in range(700):
        hostile = HOSTILE[i % len(HOSTILE)].replace("/", "_").replace("\x00", "0") or "e"
        hostile = hostile.replace("\ud800", "\udcff")  # a byte not UTF-8 (surrogateescape)
        if hostile in (".", ".."):
            hostile = f"[{hostile}]"
        names.append(f"many/{i:04d}-{hostile[:200]}")
    for i in (0, 255, 256, 300, 699):  # the first, at a cut and after it, the last
        names[i] = f"many/{i:04d}-?{SAS if i % 2 else SAS.upper()}.txt"
    for name in names:
        path = container / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    together = _findings_of_names(root, 256, monkeypatch)
    one_by_one = _findings_of_names(root, 1, monkeypatch)
    assert together == one_by_one
    found = [f for f in together if F.SECRET_IN_FILE in f and "many/" in f]
    assert len(found) == 5 and all("A1b2C3" not in f for f in found)  # named, redacted
