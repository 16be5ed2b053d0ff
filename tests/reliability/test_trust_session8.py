"""Trust leftovers of session 8 (F): a damaged duplicate copy in a pack does not hide a sound
copy elsewhere (reads fall back; ``verify`` names the damaged pack and says the objects stay
readable); a dry run writes nothing in the repository, not even a lock file, and still fails
clearly when a concurrent prune removes what it reads; ``LocalTarget.write_stream`` reuses
its copy buffer.

Runs plain and, with ``AMLPORT_TEST_ENCRYPT=1``, encrypted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers.bundle import sha
from helpers.packing import packed_snapshot, reopen, stored_in_two_packs

from amlport.bundle import Repository, packs
from amlport.bundle.verification import CORRUPT_PACK

DATA = b"stored twice " * 40
FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "designer-autoprice"


@pytest.fixture
def packed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repository:
    monkeypatch.setenv("AMLPORT_PACKS", "1")
    return Repository.init(tmp_path / "repo")


def _two_copies(repo: Repository) -> tuple[str, Path, int, int]:
    """DATA stored in two packs (a second batch that did not see the first's index); the
    digest, and the pack, offset and length of the copy the index reads first."""
    sid = stored_in_two_packs(repo, DATA)
    digest = sha(DATA)
    copies = reopen(repo).objects.pack_index().copies_of(digest.split(":")[1])
    assert len(copies) == 2 and copies[0][0] != copies[1][0]
    pack, offset, length = copies[0]
    assert sid
    return digest, repo.path / packs.pack_key(pack), offset, length


def _flip(path: Path, at: int) -> None:
    raw = path.read_bytes()
    path.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :])


@pytest.mark.parametrize("which", ["first", "second"])
def test_a_damaged_copy_in_one_pack_does_not_hide_a_sound_copy_in_another(
    packed: Repository, which: str
) -> None:
    """A byte flipped inside one copy (the pack keeps its size, so it does not look damaged
    to the index): every read falls back to the other copy; verify names the damaged pack,
    says the object is still readable, and still reports the damage (exit 4) until a prune
    drops the pack."""
    digest, pack, offset, length = _two_copies(packed)
    if which == "second":  # the other copy damaged: reads never notice
        copies = reopen(packed).objects.pack_index().copies_of(digest.split(":")[1])
        pack = packed.path / packs.pack_key(copies[1][0])
        offset, length = copies[1][1], copies[1][2]
    _flip(pack, offset + length // 2)
    repo = reopen(packed)
    assert repo.get_bytes(digest) == DATA
    with repo.open_object(digest) as fh:
        assert fh.read() == DATA
    assert repo.objects.check(digest) is None
    assert repo.objects.stored_checked(digest)
    report = reopen(packed).verify()
    assert [p.kind for p in report.problems] == [CORRUPT_PACK], report.problems
    message = report.problems[0].message
    assert pack.name in message and "still readable from another copy" in message
    # prune drops the damaged pack; then the repository is whole
    reopen(packed).prune()
    after = reopen(packed)
    assert after.verify().ok and after.get_bytes(digest) == DATA
    assert not pack.exists()


def test_both_copies_damaged_is_still_a_corrupt_object(packed: Repository) -> None:
    digest, _, _, _ = _two_copies(packed)
    copies = reopen(packed).objects.pack_index().copies_of(digest.split(":")[1])
    for hexd, at, size in copies:
        _flip(packed.path / packs.pack_key(hexd), at + size // 2)
    repo = reopen(packed)
    from amlport.errors import IntegrityError

    with pytest.raises(IntegrityError, match="corrupt"):
        repo.get_bytes(digest)
    report = reopen(packed).verify()
    kinds = sorted(p.kind for p in report.problems)
    assert kinds == ["corrupt_object", CORRUPT_PACK, CORRUPT_PACK], report.problems
    assert all("have no sound copy" in p.message for p in report.problems if p.kind == CORRUPT_PACK)


# --- 1c: one copy buffer per thread ------------------------------------------------------


def test_write_stream_reuses_one_buffer_instead_of_one_per_file(tmp_path: Path) -> None:
    """Small files written one after another allocate no per-file copy buffer: before, each
    ``stream.read(CHUNK)`` of a regular file made a 4 MiB bytes object (page faults and CPU
    per file of a 100k-file restore)."""
    import tracemalloc

    from amlport.model.workspace import WorkspaceDescriptor
    from amlport.storage.target import LocalTarget

    files = []
    for i in range(20):
        f = tmp_path / f"in{i}"
        f.write_bytes(b"small file %d\n" % i)
        files.append(f)
    target = LocalTarget(
        tmp_path / "out", WorkspaceDescriptor(account="ws", blobstore_container="c")
    )
    target.ensure_containers()
    with files[0].open("rb") as fh:  # the thread's buffer is made once
        target.write_stream("c", "warm", fh, metadata={}, overwrite=False)
    tracemalloc.start()
    try:
        for i, f in enumerate(files):
            with f.open("rb") as fh:
                target.write_stream("c", f"d/f{i}", fh, metadata={}, overwrite=False)
            assert target.stat("c", f"d/f{i}") is not None  # hashes the file written
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 * 1024, peak
    assert all((tmp_path / "out" / "c" / "d" / f"f{i}").read_bytes() == f.read_bytes()
               for i, f in enumerate(files))  # fmt: skip


# --- 1b: a dry run writes nothing in the repository, not even a lock file -----------------


def _state(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every entry below ``root`` and ``root`` itself: (mode, size, mtime in ns). A lock file
    written and removed again changes its folder's mtime."""
    entries = [root, *sorted(root.rglob("*"))]
    return {
        p.relative_to(root).as_posix(): (
            p.lstat().st_mode,
            p.lstat().st_size,
            p.lstat().st_mtime_ns,
        )
        for p in entries
    }


def _small_repo(tmp_path: Path) -> tuple[Path, Path]:
    from helpers.rel_workspace import filled_map, small_backup

    repo, _ = small_backup(tmp_path)
    return repo, filled_map(repo, tmp_path / "map.yaml")


DRY_RUNS = {
    "import": lambda repo, mp, to: ("import", str(repo), "--to", str(to), "--map", str(mp)),
    "restore": lambda repo, mp, to: ("restore", str(repo), "--to", str(to), "--map", str(mp)),
    "upgrade": lambda repo, mp, to: ("repo", "upgrade", str(repo), "--packs"),
}


@pytest.mark.parametrize("command", sorted(DRY_RUNS))
def test_a_dry_run_writes_nothing_in_the_repository_not_even_a_lock_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    """``import``/``restore``/``repo upgrade --dry-run`` wrote and removed a shared lock file
    (``locks/``'s mtime moved); now the repository is opened for reading only
    (``ReadingStore``): no write of any kind reaches it."""
    from helpers.rel_workspace import TRACEBACK, run_in_process

    monkeypatch.setenv("AMLPORT_PACKS", "0")  # (upgrade --packs has something to plan)
    repo, mp = _small_repo(tmp_path)
    before = _state(repo)
    to = tmp_path / "target"
    ran = run_in_process(*DRY_RUNS[command](repo, mp, to), "--dry-run")
    assert ran.returncode in (0, 1), ran.explain()
    assert TRACEBACK not in ran.stderr and "lock" not in ran.stderr, ran.stderr
    assert _state(repo) == before
    assert not to.exists()


def test_a_dry_run_with_a_prune_under_it_fails_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dry run holds no lock file, so a prune may run while it reads: what it then finds
    missing is an integrity error (exit 4) that says the run read without a lock and to run
    it again; never a traceback, never wrong bytes."""
    from helpers.rel_workspace import TRACEBACK, run_in_process

    from amlport.importing import engine

    repo, mp = _small_repo(tmp_path)
    real = engine.verify_first

    def then_prune(opened: Repository, picked: object) -> None:
        real(opened, picked)
        other = Repository.open(repo)
        for info in other.list_snapshots():
            other.snapshots.delete(info.id)
        other.prune()  # exclusive: the dry run's lock has no file to refuse it

    monkeypatch.setattr(engine, "verify_first", then_prune)
    to = tmp_path / "target"
    ran = run_in_process("import", str(repo), "--to", str(to), "--map", str(mp), "--dry-run")
    assert ran.returncode == 2, ran.explain()  # the snapshot it reads again is gone
    assert TRACEBACK not in ran.stderr, ran.stderr
    assert "no snapshot" in ran.stderr, ran.stderr
    assert not to.exists()


@pytest.mark.parametrize("packing", ["0", "1"])
def test_what_a_prune_removed_under_a_reader_without_a_lock_file_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packing: str
) -> None:
    """The objects a dry run reads, removed by a prune meanwhile (loose files or a pack):
    an integrity error that says the run held no lock file and to run it again."""
    from amlport.bundle.store import DRY_RUN
    from amlport.errors import IntegrityError

    monkeypatch.setenv("AMLPORT_PACKS", packing)
    repo = Repository.init(tmp_path / "repo")
    sid = packed_snapshot(repo, {"files/a": DATA, "files/b": b"more"})
    reader = Repository.open(repo.path, reading=DRY_RUN)
    stored = [*repo.path.glob("objects/sha256/*/*"), *repo.path.glob("packs/[0-9a-f]*/*")]
    with (
        pytest.raises(IntegrityError, match="without a lock file") as raised,
        reader,
        reader.lock(exclusive=False),
    ):
        files = reader.load_snapshot(sid).files
        for path in stored:
            path.unlink()  # what a prune of these objects does
        reader.get_bytes(files[0].digest)
    assert "run it again" in str(raised.value)
    assert list((repo.path / "locks").iterdir()) == []


@pytest.mark.azurite
def test_a_dry_run_import_writes_no_lock_blob_in_an_azure_repository(
    azurite: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a credential that may write (a connection string) a dry run wrote and deleted a
    lock blob; with a read + list SAS (an off-site copy) it tried and fell back. Now it asks
    for no write in either case, and not one blob changes."""
    import yaml
    from helpers.azurite import read_list_container_sas
    from helpers.rel_workspace import TRACEBACK, run_in_process, target_section

    from amlport.bundle.azure_store import AzureStore

    account, container = azurite.source, "f8-dry-import"
    url = f"{account.url}/{container}"
    env = {"AMLPORT_REPO_CONNECTION_STRING": account.connection_string}
    made = run_in_process("backup", str(FIXTURE), "--repo", url, env=env)
    assert made.returncode == 0, made.explain()
    mp = tmp_path / "map.yaml"
    ran = run_in_process("map", "init", url, "-o", str(mp), env=env)
    assert ran.returncode == 0, ran.explain()
    doc = yaml.safe_load(mp.read_text(encoding="utf-8"))
    doc["target"] = target_section()
    mp.write_text(yaml.safe_dump(doc), encoding="utf-8")
    sas = read_list_container_sas(account, container)
    client = account.service_client().get_container_client(container)
    before = {b.name: str(b.etag) for b in client.list_blobs()}
    writes: list[str] = []
    for name in ("write", "create", "put_once", "delete", "replace_existing"):
        real = getattr(AzureStore, name)

        def recorded(self: Any, key: str, *a: Any, _real: Any = real, **kw: Any) -> Any:
            writes.append(key)
            return _real(self, key, *a, **kw)

        monkeypatch.setattr(AzureStore, name, recorded)
    for creds in (env, {"AMLPORT_REPO_SAS_TOKEN": sas}):
        to = tmp_path / "target"
        ran = run_in_process("import", url, "--to", str(to), "--map", str(mp), "--dry-run",
                             env=creds)  # fmt: skip
        assert ran.returncode in (0, 1), ran.explain()
        assert TRACEBACK not in ran.stderr and "read-only" not in ran.stderr, ran.stderr
        assert writes == [] and not to.exists()
    assert {b.name: str(b.etag) for b in client.list_blobs()} == before


# --- hunt: a secret in a workspace.yaml value reached stdout ------------------------------

KEY = "Zm9vYmFyYmF6cXV4" * 5 + "ab=="
SAS = "sv=2022-11-02&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig=" + "A" * 43 + "%3D"


@pytest.mark.parametrize(
    "args",
    [("scan",), ("scan", "--json"), ("audit",), ("audit", "--format", "json"),
     ("audit", "--format", "markdown"), ("lineage", "--format", "json")],
    ids=lambda a: "-".join(a),
)  # fmt: skip
def test_a_secret_in_a_workspace_yaml_value_is_refused_by_every_reader_and_never_printed(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """``workspace.yaml`` is input: its resource group or workspace name may hold a
    connection string or a SAS (pasted in the wrong field). ``scan`` and ``audit`` printed
    them as they were (session 8: every print and document on stdout now passes the one
    detector, ``cli/terminal.py`` ``without_secrets``); since session 9 the file is refused
    when it is read (``model/workspace.py``), by every command that reads it: exit 2 naming
    the file and its keys, the values never printed, in text and with ``--json``."""
    import shutil

    import yaml
    from helpers.rel_workspace import assert_clean_failure, run_in_process

    src = tmp_path / "src"
    shutil.copytree(FIXTURE, src)
    doc = yaml.safe_load((src / "workspace.yaml").read_text(encoding="utf-8"))
    doc["workspace"] = "ws-" + SAS
    doc["resource_group"] = (
        f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};"
        "EndpointSuffix=core.windows.net"
    )
    (src / "workspace.yaml").write_text(yaml.safe_dump(doc), encoding="utf-8")
    ran = run_in_process(args[0], str(src), *args[1:])
    assert_clean_failure(ran, code=2, says="workspace.yaml: ")
    shown = ran.stdout + ran.stderr
    assert "resource_group (" in shown and "workspace (" in shown, ran.explain()
    assert KEY not in shown and "A" * 43 not in shown


def test_a_streamed_json_document_is_redacted_item_by_item_and_stays_json(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``ls --json`` writes its files item by item (``JsonItems``): a secret in a stored
    path (a name the export kept: it did not look like one to the name check) or a value is
    redacted in the batch it is in, and the document still parses."""
    import json

    from amlport.cli import common

    items = [{"path": f"files/c/f{i}.txt", "size": i} for i in range(3000)]
    items[1500]["path"] = f"files/c/AccountKey={KEY}.txt"
    items[2999]["note"] = "ws-" + SAS
    common.write_json({"schema": "x", "files": common.JsonItems(iter(items))}, None)
    out = capsys.readouterr().out
    doc = json.loads(out)
    assert KEY not in out and "A" * 43 not in out
    assert len(doc["files"]) == 3000 and doc["files"][1]["path"] == "files/c/f1.txt"
