"""A repository on an fsspec filesystem (bundle/fsspec_store.py) beyond the store contract.

The contract (tests/contract/test_repository_store.py) runs every repository test over
``fsspec+memory://`` and ``fsspec+file://``. Here: what only this store has — any other
fsspec filesystem is read-only (a repository zipped and read in place: restore, verify and
snapshots work, a backup says why it cannot), hostile stored files (a symbolic link), URLs
with a password, credentials that do not apply, and the command line end to end.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import pytest
from helpers.bundle import snapshot
from helpers.cliutil import amlport

from amlport.bundle import Repository
from amlport.bundle.fsspec_store import FsspecStore, open_fsspec_store
from amlport.bundle.location import is_remote, open_store
from amlport.errors import AccessDenied, IntegrityError, UsageError
from amlport.storage.guard import place_of_repository
from amlport.storage.opener import StorageAuth

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces" / "designer-autoprice"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"


def _zipped(tmp_path: Path) -> tuple[str, str]:
    """A local repository with one snapshot, zipped: (its fsspec URL, the snapshot id)."""
    repo = Repository.init(tmp_path / "repo")
    sid = snapshot(repo, {"files/a.txt": b"alpha", "files/[b]/..c": b"beta"})
    repo.close()
    archive = tmp_path / "repo.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted((tmp_path / "repo").rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(tmp_path / "repo").as_posix())
    return f"fsspec+zip://::file://{archive.as_posix()}", sid


def test_another_fsspec_filesystem_is_read_only(tmp_path: Path) -> None:
    url, sid = _zipped(tmp_path)
    store = open_store(url)
    assert isinstance(store, FsspecStore) and not store.writable
    repo = Repository.open(url)
    with repo.lock(exclusive=False):  # taken without a lock file: nothing can be written
        loaded = repo.load_snapshot(sid)
        assert repo.read_file(loaded, "files/[b]/..c") == b"beta"
    assert [s.id for s in repo.list_snapshots()] == [sid]
    with pytest.raises(AccessDenied, match=r"read-only.*'zip'"):
        repo.put_bytes(b"new")
    with pytest.raises(AccessDenied, match="read-only"):
        store.create("locks/x.json", b"{}")
    with pytest.raises(AccessDenied, match="read-only"):
        Repository.init(f"fsspec+zip://sub::file://{tmp_path.as_posix()}/repo.zip")


def test_a_symbolic_link_in_a_local_fsspec_repository_is_refused(tmp_path: Path) -> None:
    url = f"fsspec+file://{(tmp_path / 'repo').as_posix()}"
    repo = Repository.init(url)
    (tmp_path / "secret").write_bytes(b"not the repository's")
    (tmp_path / "repo" / "snapshots").mkdir(exist_ok=True)
    (tmp_path / "repo" / "snapshots" / "link.json").symlink_to(tmp_path / "secret")
    store = open_store(url)
    with pytest.raises(IntegrityError, match="not a regular file"):
        store.read("snapshots/link.json", limit=1 << 20)
    assert "link.json" not in list(store.list("snapshots/"))  # never listed as a value
    assert repo.list_snapshots() == []


def _fsynced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the descriptors ``os.fsync`` is called on from now on (Linux: /proc)."""
    seen: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        seen.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")
@pytest.mark.parametrize(
    "how", ["write", "write_chunks", "put_once", "replace_existing", "staging"]
)
def test_a_local_fsspec_repository_writes_durably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Every write to ``fsspec+file://`` is fsynced (the file, before its rename) and so is
    its folder (the rename), as a plain folder's are: a crash or power loss after the call
    returns cannot lose it or leave it empty."""
    root = tmp_path / "repo"
    store = open_store(f"fsspec+file://{root.as_posix()}")
    key, data = "snapshots/[a]..b.json", b"{}"
    store.write(key, b"old")
    seen = _fsynced(monkeypatch)
    if how == "write":
        store.write(key, data)
    elif how == "write_chunks":
        store.write_chunks(key, [b"{", b"}"])
    elif how == "put_once":
        assert store.put_once(key, data)
    elif how == "replace_existing":
        assert store.replace_existing(key, data)
    else:
        with store.staging("snapshots") as stage:
            stage.write(data)
            stage.commit(key, "0" * 64)
    assert (root / key).read_bytes() == data
    folder = str(root / "snapshots")
    assert folder in seen, seen  # the rename is durable
    files_synced = [p for p in seen if p != folder]
    assert files_synced and all(Path(p).name.startswith(".tmp-") for p in files_synced), seen
    assert not [p for p in (root / "snapshots").iterdir() if p.name.startswith(".tmp-")]


def test_urls_credentials_and_protocols() -> None:
    store = open_fsspec_store("fsspec+memory://user:hunter2@x/repo?token=abc")
    assert "hunter2" not in store.display and "token" not in store.display
    assert is_remote("fsspec+memory://x") and not is_remote("./fsspec+memory")
    with pytest.raises(UsageError, match="fsspec filesystem"):
        open_store("fsspec+memory://x", StorageAuth(account_key="k"))
    with pytest.raises(UsageError, match="fsspec protocol 'nope'"):
        open_store("fsspec+nope://x/y")
    assert place_of_repository("fsspec+file:///srv/repo").folder == Path("/srv/repo").resolve()
    assert place_of_repository("fsspec+memory://x").folder is None


def test_backup_to_a_local_fsspec_repository_then_read_a_zipped_copy(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    url = f"fsspec+file://{root.as_posix()}"
    done = amlport("backup", str(WS), "--repo", url, "--json")
    assert done.returncode == 0, done.stderr
    sid = json.loads(done.stdout)["snapshot"]
    assert (root / "config.json").is_file()
    assert amlport("verify", url).returncode == 0
    archive = tmp_path / "copy.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                zf.write(path, path.relative_to(root).as_posix())
    zipped = f"fsspec+zip://::file://{archive.as_posix()}"
    # The az:// repositories' connection string in the environment is not fsspec's credential.
    env = {"AMLPORT_REPO_CONNECTION_STRING": "AccountName=x;AccountKey=eA==;BlobEndpoint=http://h"}
    listed = amlport("snapshots", zipped, "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert [s["id"] for s in json.loads(listed.stdout)["snapshots"]] == [sid]
    checked = amlport("verify", zipped)
    assert checked.returncode == 0 and "read-only" in checked.stderr
    out = tmp_path / "restored"
    restored = amlport("restore", zipped, "latest", "--to", str(out), "--map", str(QA))
    assert restored.returncode == 0, restored.stderr
    assert (out / "workspace.yaml").is_file()
    same = amlport("diff", f"{zipped}@latest", f"{url}@latest", "--json")
    assert same.returncode == 0 and json.loads(same.stdout)["different"] is False, same.stderr
    refused = amlport("backup", str(WS), "--repo", zipped)
    assert refused.returncode == 2 and "read-only" in refused.stderr
    assert "Traceback" not in refused.stderr
