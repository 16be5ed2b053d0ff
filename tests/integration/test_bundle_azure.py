"""A repository in an Azure container: what has no local counterpart.

The contract every store passes (local folder and Azure container alike) is
``tests/contract/test_repository_store.py``. Here: write-once enforced by the service, bounded
memory for large objects, URLs and credentials, and the CLI end to end
(``amlport backup --repo <container URL>``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import pytest
from helpers import azurite as az
from helpers.backup import MAPS, WS, cli
from helpers.bundle import plain_only, snapshot
from helpers.encrypted_mode import sha
from helpers.stores import Pattern, azure_place, object_key, writable_container_sas

from amlport.backup import BackupRequest, run_backup
from amlport.bundle import Repository
from amlport.bundle.azure_store import AzureStore
from amlport.errors import AccessDenied, UsageError
from amlport.storage.local import LocalSource
from amlport.storage.opener import StorageAuth

pytestmark = pytest.mark.azurite

MIB = 1 << 20


# --- Azure only ------------------------------------------------------------------------------


@plain_only
def test_an_azure_repository_unpacks_streaming_with_the_digest_known(
    azurite: az.Azurite, tmp_path: Path
) -> None:
    src = Repository.init(tmp_path / "src")
    big = os.urandom(9 * MIB)
    sid = snapshot(src, {"files/big": big, "files/small": b"s"})
    src.pack(sid, tmp_path / "p.tar.gz")
    data, pieces = src.snapshots.pieces(sid)  # format 2: the pieces travel with the data
    assert data == {sha(big), sha(b"s")} and pieces
    piece_bytes = sum(src.object_size(d) for d in pieces)  # stored bytes, packed or loose
    dst = azure_place(azurite, prefix="")
    report = Repository.unpack(tmp_path / "p.tar.gz", dst.location, auth=dst.auth)
    assert report.objects_added == 2 + len(pieces)
    assert report.bytes_added == len(big) + 1 + piece_bytes
    assert dst.read(object_key(sha(big))) == big
    assert dst.open().verify().ok


def test_large_objects_use_bounded_memory(azurite: az.Azurite) -> None:
    """Writing holds one block (plus the hash state); reading one ranged GET at a time. The
    SDK's own transient for one GET is ~32 MiB here, whatever the object's size."""
    place = azure_place(azurite)
    repo = place.init()
    size = 64 * MIB
    tracemalloc.start()
    try:
        digest, _ = repo.put_stream(Pattern(size, seed=3))
        put_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        with repo.open_object(digest) as fh:
            while fh.read(1 << 20):
                pass
        read_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert put_peak < 20 * MIB, f"writing peaked at {put_peak / MIB:.1f} MiB"
    assert read_peak < 56 * MIB, f"reading peaked at {read_peak / MIB:.1f} MiB"


@plain_only
def test_write_once_is_enforced_by_the_service(azurite: az.Azurite) -> None:
    place = azure_place(azurite)
    repo = place.init()
    assert isinstance(repo.store, AzureStore)
    digest = repo.put_bytes(b"original")
    # A racing writer that checked before we wrote: its conditional write must not land.
    assert repo.store.create(object_key(digest), b"tampered") is False
    assert place.read(object_key(digest)) == b"original"
    assert repo.store.create("config.json", b"{}") is False


def test_a_killed_holder_on_this_machine_does_not_block_a_container_for_30_minutes(
    azurite: az.Azurite,
) -> None:
    """A ``kill -9``'d backup leaves its lock blob behind. Holders elsewhere are judged by
    age only, but one on this machine (same host name, boot and pid namespace) whose pid is
    gone is stale at once. Before, a prune after the kill was refused for 30 minutes."""
    place = azure_place(azurite)
    place.init()
    assert place.auth is not None and place.auth.connection_string is not None
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_A_LOCK, place.location],
        env={**os.environ, "AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        env = {"AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string}
        busy = cli("forget", place.location, "--keep-last", "1", "--prune", env=env)
        assert busy.returncode == 2 and f"pid {holder.pid}" in busy.stderr, busy.stderr
    finally:
        holder.kill()
        holder.wait()
    assert len(place.keys("locks/")) == 1  # left behind by the kill
    pruned = cli("forget", place.location, "--keep-last", "1", "--prune", env=env)
    assert pruned.returncode == 0, pruned.stderr
    assert "removing stale" in pruned.stderr and f"pid {holder.pid}" in pruned.stderr
    assert place.keys("locks/") == set()


HOLD_A_LOCK = """
import sys, time
from amlport.bundle import Repository
from amlport.storage.opener import StorageAuth
import os
auth = StorageAuth(connection_string=os.environ["AMLPORT_REPO_CONNECTION_STRING"])
with Repository.open(sys.argv[1], auth=auth) as repo, repo.lock(exclusive=False):
    print("held", flush=True)
    time.sleep(600)
"""


def test_repository_urls_and_credentials(azurite: az.Azurite) -> None:
    acct = azurite.target
    container = f"repo-{uuid.uuid4().hex[:16]}"
    conn = StorageAuth(connection_string=acct.connection_string)
    repo = Repository.init(f"az://{container}/team-a", auth=conn)
    assert repo.location == f"{acct.url}/{container}/team-a"
    key = StorageAuth(account_key=acct.key)
    assert Repository.open(f"{acct.url}/{container}/team-a/", auth=key).id == repo.id
    # Path() mangles URLs (az:/c): such a location is still taken as the URL it was.
    assert Repository.open(Path(f"az://{container}/team-a"), auth=conn).id == repo.id
    with pytest.raises(UsageError, match="not an amlport repository"):
        Repository.open(f"az://{container}/team-b", auth=conn)
    with pytest.raises(UsageError, match="not an amlport repository"):
        Repository.init(f"az://{container}", auth=conn)  # holds blobs: needs a prefix
    with pytest.raises(UsageError, match="prefix"):
        Repository.open(f"az://{container}/../x", auth=conn)
    with pytest.raises(UsageError, match="local folder"):
        Repository.open("/tmp/somewhere", auth=conn)
    with pytest.raises(UsageError, match="which storage account"):
        Repository.open(f"az://{container}/team-a")
    with pytest.raises(UsageError, match="not a local folder"):
        _ = repo.path
    assert "AccountKey" not in repr(repo.store) and acct.key not in repo.location


def test_a_container_sas_is_enough_and_read_list_only_lists(azurite: az.Azurite) -> None:
    """The usual off-site setup: an admin creates the container, the job gets a SAS for it."""
    acct = azurite.target
    place = azure_place(azurite)
    sas = writable_container_sas(azurite, place)
    assert place.container is not None
    writer = StorageAuth(sas_token=sas)
    result = run_backup(
        LocalSource(WS / "sdk-bikeshare"), place.location, BackupRequest(), repo_auth=writer
    )
    reader = StorageAuth(sas_token=az.read_list_container_sas(acct, place.container.container_name))
    warnings: list[str] = []
    with Repository.open(place.location, auth=reader, on_warning=warnings.append) as repo:
        assert [s.id for s in repo.list_snapshots()] == [result.snapshot_id]
        # A reader on a read-only credential reads without a lock blob (bundle/lock.py) ...
        assert repo.verify().ok and repo.locks() == []
        assert any("read-only to this credential" in w for w in warnings)
        # ... a writer's exclusive lock still needs write access.
        with pytest.raises(AccessDenied, match="access denied") as err, repo.lock():
            pass
        assert "racwdl" in (err.value.hint or "")
    with Repository.open(place.location, auth=writer) as repo:
        assert repo.verify().ok and repo.locks() == []


def test_cli_backup_twice_then_verify_and_snapshots(azurite: az.Azurite) -> None:
    place = azure_place(azurite)
    repo_args = ["--repo", place.location]
    assert place.auth is not None and place.auth.connection_string is not None
    creds = ["--repo-connection-string", place.auth.connection_string]
    ws = str(WS / "sdk-bikeshare")
    first = cli("backup", ws, *repo_args, *creds, "--json")
    assert first.returncode in (0, 1), first.stderr
    doc1 = json.loads(first.stdout)
    assert doc1["transfer"]["new_bytes"] > 0
    objects_after_first = place.keys("objects/")
    second = cli("backup", ws, *repo_args, *creds, "--json")
    assert second.returncode in (0, 1), second.stderr
    doc2 = json.loads(second.stdout)
    assert doc2["parent"] == doc1["snapshot"]
    assert doc2["transfer"]["new_bytes"] == 0 and doc2["transfer"]["read_bytes"] == 0
    assert doc2["changes"]["different"] is False
    assert place.keys("objects/") == objects_after_first
    env = {"AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string}
    verify = cli("verify", place.location, env=env)
    assert verify.returncode == 0, verify.stderr
    assert "verified 2 snapshot(s)" in verify.stdout
    snaps = cli("snapshots", place.location, "--json", *creds)
    assert snaps.returncode == 0, snaps.stderr
    listed = json.loads(snaps.stdout)["snapshots"]
    assert [s["id"] for s in listed] == [doc1["snapshot"], doc2["snapshot"]]
    assert place.auth.connection_string not in snaps.stdout + snaps.stderr
    # No credential: a clear error, not a traceback.
    bare = cli("snapshots", place.location, env={"AMLPORT_REPO_CONNECTION_STRING": ""})
    assert bare.returncode != 0 and "Traceback" not in bare.stderr


def test_cli_restore_check_and_forget_prune_from_a_container(
    azurite: az.Azurite, tmp_path: Path
) -> None:
    place = azure_place(azurite)
    assert place.auth is not None and place.auth.connection_string is not None
    env = {"AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string}
    for _ in range(2):
        done = cli("backup", str(WS / "designer-autoprice"), "--repo", place.location, env=env)
        assert done.returncode in (0, 1), done.stderr
    target = tmp_path / "target"
    args = (
        "restore",
        place.location,
        "latest",
        "--to",
        str(target),
        "--map",
        str(MAPS / "qa.yaml"),
    )
    restored = cli(*args, "--check", env=env)
    assert restored.returncode == 0 and "check: PASSED" in restored.stdout, restored.stderr
    pruned = cli("forget", place.location, "--keep-last", "1", "--prune", "--json", env=env)
    assert pruned.returncode == 0, pruned.stderr
    doc = json.loads(pruned.stdout)
    assert len(doc["keep"]) == 1 and len(doc["remove"]) == 1
    with Repository.open(place.location, auth=place.auth) as stored:  # loose and packed
        assert doc["prune"]["objects_referenced"] == len(set(stored.objects.iter_digests()))
    assert place.keys("locks/") == set()


def test_library_backup_into_a_container(azurite: az.Azurite) -> None:
    place = azure_place(azurite)
    result = run_backup(
        LocalSource(WS / "sdk-bikeshare"), place.location, BackupRequest(), repo_auth=place.auth
    )
    assert result.snapshot_id is not None
    with place.open() as repo:
        assert repo.verify().ok and [s.id for s in repo.list_snapshots()] == [result.snapshot_id]
