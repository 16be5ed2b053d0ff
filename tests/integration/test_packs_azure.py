"""A repository with pack files in an Azure container (Azurite), end to end through the CLI:
backup, verify, prune, restore --check; then a pack blob damaged (cut short, or deleted)
behaves as in a local folder (docs/bundle-format.md, *Pack files*): prune keeps it while it
holds the only copy of an object a snapshot uses (and says so), the next backup stores those
objects again, verify names the pack, and prune drops it once its objects have sound copies.
With ``AMLPORT_TEST_ENCRYPT=1`` the repository is encrypted (the CLI processes get the test
key: tests/conftest.py)."""

from __future__ import annotations

import json

import pytest
from helpers import azurite as az
from helpers.backup import MAPS, WS, cli
from helpers.stores import azure_place

from amlport.bundle import Repository, packs

pytestmark = pytest.mark.azurite

SOURCE = WS / "sdk-bikeshare"


@pytest.mark.parametrize("how", ["cut", "missing"])
def test_a_packed_repository_in_a_container_and_a_damaged_pack_blob(
    azurite: az.Azurite, tmp_path: object, how: str
) -> None:
    place = azure_place(azurite)
    assert place.auth is not None and place.auth.connection_string is not None
    env = {"AMLPORT_REPO_CONNECTION_STRING": place.auth.connection_string, "AMLPORT_PACKS": "1"}
    first = cli("backup", str(SOURCE), "--repo", place.location, "--json", env=env)
    assert first.returncode in (0, 1), first.stderr
    verified = json.loads(cli("verify", place.location, "--json", env=env).stdout)
    assert verified["ok"] and verified["packs_checked"] >= 2
    assert {k for k in place.keys("packs/") if not k.startswith(packs.INDEX_FOLDER)}
    with Repository.open(place.location, auth=place.auth) as repo:
        assert repo.config.packs
        sid = repo.list_snapshots()[-1].id
        packed = [
            f for f in repo.load_snapshot(sid).files
            if repo.objects.location(f.digest).startswith(packs.FOLDER)
        ]  # fmt: skip
        assert packed, "small files are packed"
        victim = max(packed, key=lambda f: f.size)
        key = repo.objects.location(victim.digest).split("@", 1)[0]
    # a pruned repository restores, with proof
    target = tmp_path / "target"  # type: ignore[operator]
    restore = ("restore", place.location, "latest", "--to", str(target), "--map",
               str(MAPS / "qa.yaml"), "--check")  # fmt: skip
    restored = cli(*restore, env=env)
    assert restored.returncode == 0 and "check: PASSED" in restored.stdout, restored.stderr

    blob = place.read(key)
    if how == "cut":
        place.overwrite(key, blob[: len(blob) // 2])
    else:
        place.remove(key)
    damaged = cli("verify", place.location, "--json", env=env)
    assert damaged.returncode == 4 and key in damaged.stdout

    # prune keeps the pack: it holds the only copy of objects the snapshot uses
    kept = cli("forget", place.location, "--keep-last", "5", "--prune", "--json", env=env)
    assert kept.returncode == 0, kept.stderr
    doc = json.loads(kept.stdout)["prune"]
    assert [d["pack"] for d in doc["damaged_packs_kept"]] == [key]
    assert "only copy" in kept.stderr and key in kept.stderr
    assert key in place.keys("packs/") or how == "missing"

    # the next backup stores those objects again (loose): readers take them
    again = cli("backup", str(SOURCE), "--repo", place.location, "--json", env=env)
    assert again.returncode in (0, 1), again.stderr
    assert not json.loads(again.stdout)["from_listing"]
    with Repository.open(place.location, auth=place.auth) as repo:
        assert repo.objects.location(victim.digest).startswith("objects/")
        assert repo.objects.get_bytes(victim.digest, victim.size)
    named = cli("verify", place.location, "--json", env=env)
    assert named.returncode == 4 and key in named.stdout  # verify still names the pack

    # every object it held has a sound copy now: prune drops it and its index entries
    dropped = cli("forget", place.location, "--keep-last", "5", "--prune", "--json", env=env)
    assert dropped.returncode == 0, dropped.stderr
    doc = json.loads(dropped.stdout)["prune"]
    assert doc["damaged_packs_removed"] == [key] and doc["damaged_packs_kept"] == []
    assert key not in place.keys("packs/")
    assert len(place.keys(packs.INDEX_FOLDER)) == 1
    final = json.loads(cli("verify", place.location, "--json", env=env).stdout)
    assert final["ok"] and len(final["snapshots"]) == 2
    again_target = tmp_path / "again"  # type: ignore[operator]
    restore = (*restore[:4], str(again_target), *restore[5:])
    restored = cli(*restore, env=env)
    assert restored.returncode == 0 and "check: PASSED" in restored.stdout, restored.stderr
    assert place.keys("locks/") == set()
