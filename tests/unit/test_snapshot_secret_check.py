"""Writing a snapshot still refuses any secret-like text after its check got cheaper
(docs/design/0007, "First-backup time (A, session 8)"): the tree writer searches a chunk's
entries together for a trigger first and checks each entry only when the join holds one, and
``may_hold_secret`` searches a long text natively where Vectorscan is installed. Both must
give the answers of the per-entry, pure search: a secret in a file's name or an entry's
metadata never reaches the repository, in any chunk, whatever the names around it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.bundle import manifest, new_repo
from hypothesis import given, settings
from hypothesis import strategies as st

from amlport import secret_prefilter, secrets
from amlport.bundle import Repository
from amlport.errors import AmlportError
from amlport.model.manifest import FileEntry, RewriteRecord

SIGNATURE = "sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D"
HOSTILE = [
    "a[1]/b]",
    "x/..y/z..",
    "tab\there",
    "n" * 200,
    "caf\u00e9/\u65e5\u672c",
    "token-and-key-words",  # triggers, no secret
    "pass\u017fword",  # the long s: the pure search folds it to "s"
    "\u212aey",  # the Kelvin sign folds to "k"
]
NATIVE = secret_prefilter.text_filter(secrets._MIN_TRIGGERS) is not None
MODES = ["pure", pytest.param("native", marks=pytest.mark.skipif(not NATIVE, reason="no wheel"))]


@pytest.fixture(params=MODES)
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    secret_prefilter.force(request.param)
    yield request.param
    secret_prefilter.force("auto")


def _names(count: int) -> dict[str, bytes]:
    """``count`` files under hostile names (one of 1,024 characters), each its own bytes."""
    out = {}
    for i in range(count):
        name = HOSTILE[i % len(HOSTILE)]
        out[f"files/{i:04d}/{name}"] = b"%d" % i
    out["files/long/" + "l" * 1013] = b"long"  # a path of 1,024 characters
    return out


def _refused(repo: Repository, m: object) -> None:
    with pytest.raises(AmlportError, match="secret-like") as err:
        repo.write_snapshot(m)  # type: ignore[arg-type]
    assert "Zm9vYmFy" not in str(err.value)
    assert repo.list_snapshots() == []
    assert sorted((repo.path / "snapshots").iterdir()) == []


@pytest.mark.parametrize("where", [0, 57, 199])
def test_a_secret_in_a_file_name_is_refused_in_any_chunk(
    tmp_path: Path, mode: str, where: int
) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, _names(200))
    near = sorted(m.files, key=lambda f: f.path)[where]
    m.files.append(FileEntry(f"{near.path}?sv=1&{SIGNATURE}", near.digest, near.size))
    _refused(repo, m)


@pytest.mark.parametrize(
    "secret",
    [
        SIGNATURE,
        SIGNATURE.replace("sig", "SIG"),
        SIGNATURE.replace("s", "\u017f", 1),  # long s: IGNORECASE matches it as "s"
        "AccountKey=" + "A" * 86 + "==",
        "password: hunter2hunter2",
    ],
)
def test_a_secret_in_an_entry_s_metadata_is_refused(tmp_path: Path, mode: str, secret: str) -> None:
    repo = new_repo(tmp_path)
    m = manifest(repo, _names(120))
    path = sorted(f.path for f in m.files)[64]
    before = f"https://x/c/b?sv=1&{secret}&" + "\u00e9" * 300  # a long, non-ASCII entry
    m.rewrites.append(RewriteRecord(path, "/uri", before, "y", "r"))
    assert secrets.has_secret(before)
    _refused(repo, m)


def test_names_with_triggers_but_no_secret_give_the_same_snapshot(tmp_path: Path) -> None:
    """The same manifest written with the pure and the native search: the same root and
    pieces (names holding triggers, fold characters, 1,024 characters)."""
    ids = []
    for run, how in enumerate(["pure", "native" if NATIVE else "pure", "auto"]):
        secret_prefilter.force(how)
        try:
            repo = new_repo(tmp_path, f"r{run}")
            m = manifest(repo, _names(300), created="2026-01-01T00:00:00Z")
            m.warnings.append("AccountKey=REDACTED removed from files/a")  # done already
            m.files.append(
                FileEntry(path="files/token/sig=REDACTED", digest=m.files[0].digest, size=1)
            )
            ids.append(repo.write_snapshot(m))
        finally:
            secret_prefilter.force("auto")
    assert len(set(ids)) == 1


_WORDS = ["sig=", "SiG%3D", "key:", 'KEY"', "@", "==", "tok", "en", "eyJ", "ghp_", "{"]
_CHARS = ["\u017f", "\u212a", "\u0130", "\u00e9", "\udcff", "x", " ", "\n", "\x00"]
_PIECES = st.sampled_from(_WORDS + _CHARS)


@settings(max_examples=300, deadline=None)
@given(st.lists(_PIECES, max_size=40), st.integers(0, 600), st.text(max_size=40))
def test_the_native_search_answers_as_the_pure_one(pieces: list[str], pad: int, noise: str) -> None:
    text = "a" * pad + "".join(pieces) + noise
    pure = secrets._ANY_TRIGGER.search(secrets._lower(text)) is not None
    assert secrets.may_hold_secret(text) == pure
    assert secrets.may_hold_secret(text + "b" * 300) == (
        secrets._ANY_TRIGGER.search(secrets._lower(text + "b" * 300)) is not None
    )
