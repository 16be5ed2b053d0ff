"""An encrypted repository through the installed command (docs/design/0009): backup with
``--encrypt``, restore, the exit codes of a missing or wrong key, verify with and without
the key, key rotation, and ``pack``/``unpack`` of an encrypted repository. A real fixture
workspace, real subprocesses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers.backup import stored_files
from helpers.cliutil import amlport

REPO = Path(__file__).resolve().parents[2]
DESIGNER = REPO / "fixtures" / "workspaces" / "designer-autoprice"
QA = REPO / "tests" / "integration" / "maps" / "qa.yaml"
# every key given here, and a plain repository compared with the encrypted one: the
# AMLPORT_TEST_ENCRYPT key (in the test and in the amlport processes) would change both
pytestmark = pytest.mark.own_keys


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("encrypted")
    src = root / "src"
    shutil.copytree(DESIGNER, src)
    key = root / "key.json"
    assert amlport("repo", "key", "new", str(key)).returncode == 0
    repo = root / "repo"
    res = amlport("backup", str(src), "--repo", str(repo), "--encrypt", "--key-file", str(key))
    assert res.returncode in (0, 1), res.stderr
    plain = root / "plain"
    assert amlport("backup", str(src), "--repo", str(plain)).returncode in (0, 1)
    return {"root": root, "src": src, "key": key, "repo": repo, "plain": plain}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "amlport/imports" not in p.as_posix()  # names the snapshot id
    }


def test_backup_then_restore_gives_what_the_plain_repository_gives(
    place: dict[str, Path],
) -> None:
    key, root = str(place["key"]), place["root"]
    for name in ("repo", "plain"):  # --check: every restored file hashed and compared
        extra = ["--key-file", key, "--check"] if name == "repo" else []
        res = amlport("restore", str(place[name]), "latest", "--to", str(root / f"to-{name}"),
                      "--map", str(QA), *extra)  # fmt: skip
        assert res.returncode in (0, 1), res.stderr
    restored = _files(root / "to-repo")
    assert restored and restored == _files(root / "to-plain")


def test_diff_against_the_live_source_sees_no_change(place: dict[str, Path]) -> None:
    res = amlport("diff", str(place["repo"]), str(place["src"]), "--key-file",
                  str(place["key"]), "--json")  # fmt: skip
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr
    assert not json.loads(res.stdout)["different"]


def test_an_unchanged_re_backup_stores_no_new_data(place: dict[str, Path]) -> None:
    res = amlport("backup", str(place["src"]), "--repo", str(place["repo"]),
                  "--key-file", str(place["key"]), "--json")  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    transfer = json.loads(res.stdout)["transfer"]
    assert transfer["new_bytes"] <= 16 * 1024  # issue 18's growth target, encrypted too


def test_no_key_and_wrong_key_exit_2_and_name_what_to_do(
    place: dict[str, Path], tmp_path: Path
) -> None:
    res = amlport("snapshots", str(place["repo"]))
    assert res.returncode == 2 and "--key-file" in res.stderr
    other = tmp_path / "other.json"
    assert amlport("repo", "key", "new", str(other)).returncode == 0
    res = amlport("snapshots", str(place["repo"]), "--key-file", str(other))
    assert res.returncode == 2 and "does not open" in res.stderr
    secret = json.loads(other.read_text(encoding="utf-8"))["key"]
    assert secret not in res.stderr + res.stdout
    res = amlport("snapshots", str(place["repo"]), env={"AMLPORT_REPO_KEY": "a wrong guess"})
    assert res.returncode == 2 and "a wrong guess" not in res.stderr


def test_verify_with_and_without_the_key(place: dict[str, Path], tmp_path: Path) -> None:
    repo = tmp_path / "copy"
    shutil.copytree(place["repo"], repo)
    key = str(place["key"])
    assert amlport("verify", str(repo), "--key-file", key).returncode == 0
    res = amlport("verify", str(repo))
    assert res.returncode == 0 and "only its structure" in res.stderr
    stored = [*(repo / "objects").rglob("*"), *(repo / "packs").glob("??/*")]  # loose, packs
    victim = max((p for p in stored if p.is_file()), key=lambda p: p.stat().st_size)
    raw = bytearray(victim.read_bytes())  # a pack file (the default) or an object file
    raw[-3] ^= 0x40
    victim.write_bytes(bytes(raw))
    # a GCM tag needs the key (and so does the sealed pack index that names a pack's hash)
    assert amlport("verify", str(repo)).returncode == 0
    res = amlport("verify", str(repo), "--key-file", key, "--json")
    assert res.returncode == 4 and not json.loads(res.stdout)["ok"]


def test_key_rotation_through_the_cli(place: dict[str, Path], tmp_path: Path) -> None:
    repo = tmp_path / "rotated"
    shutil.copytree(place["repo"], repo)
    old, new = str(place["key"]), str(tmp_path / "new.json")
    before = {p.name: p.read_bytes() for p in stored_files(repo)}  # object files and packs
    assert before

    def ids() -> list[str]:
        res = amlport("repo", "key", "list", str(repo), "--json")  # needs no key
        return [k["id"] for k in json.loads(res.stdout)["keys"]]

    (old_id,) = ids()
    assert amlport("repo", "key", "new", new).returncode == 0
    assert amlport("repo", "key", "add", str(repo), "--key-file", old,
                   "--new-key-file", new).returncode == 0  # fmt: skip
    (new_id,) = set(ids()) - {old_id}
    res = amlport("repo", "key", "remove", str(repo), new_id, "--key-file", new)
    assert res.returncode == 2 and "key this command was given" in res.stderr
    assert amlport("repo", "key", "remove", str(repo), old_id, "--key-file", new).returncode == 0
    assert ids() == [new_id]
    assert amlport("snapshots", str(repo), "--key-file", old).returncode == 2
    assert amlport("snapshots", str(repo), "--key-file", new).returncode == 0
    after = {p.name: p.read_bytes() for p in stored_files(repo)}
    assert after == before  # rotation rewrites no object


def test_pack_of_an_encrypted_repository_stays_encrypted_and_restores_after_unpack(
    place: dict[str, Path], tmp_path: Path
) -> None:
    key = str(place["key"])
    listed = amlport("snapshots", str(place["repo"]), "--key-file", key, "--json")
    first = json.loads(listed.stdout)["snapshots"][0]["id"]
    pack = tmp_path / "x.tar.gz"
    res = amlport("pack", str(place["repo"]), "--snapshot", first, "-o", str(pack),
                  "--key-file", key, "--json")  # fmt: skip
    assert res.returncode == 0 and json.loads(res.stdout)["encrypted"], res.stderr
    res = amlport("unpack", str(pack), "--repo", str(tmp_path / "nokey"))
    assert res.returncode == 2 and "--key-file" in res.stderr
    res = amlport("unpack", str(pack), "--repo", str(place["plain"]), "--key-file", key)
    assert res.returncode == 2 and "never decrypted" in res.stderr
    res = amlport("unpack", str(pack), "--repo", str(tmp_path / "copy"), "--key-file", key)
    assert res.returncode == 0, res.stderr
    assert amlport("verify", str(tmp_path / "copy"), "--key-file", key).returncode == 0
    res = amlport("restore", str(tmp_path / "copy"), first, "--to", str(tmp_path / "to"),
                  "--map", str(QA), "--key-file", key, "--check")  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    res = amlport("restore", str(place["repo"]), first, "--to", str(tmp_path / "direct"),
                  "--map", str(QA), "--key-file", key)  # fmt: skip
    assert res.returncode in (0, 1), res.stderr
    assert _files(tmp_path / "to") == _files(tmp_path / "direct") != {}


def test_encrypt_on_an_existing_plain_repository_is_refused(place: dict[str, Path]) -> None:
    res = amlport("backup", str(place["src"]), "--repo", str(place["plain"]), "--encrypt",
                  "--key-file", str(place["key"]))  # fmt: skip
    assert res.returncode == 2 and "not encrypted" in res.stderr
