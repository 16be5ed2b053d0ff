"""Every writing command over Azure storage, driven with generated hostile blob names (issue 17,
Deliver 8; the sibling of ``test_hostile_names_property.py``, which drives local folders).

Three Azurite accounts: a source workspace (the designer fixture uploaded, plus blobs under
hostile names and files holding a seeded storage key), a repository account (``az://``
containers) and a target account. Names use what Azure allows and a local folder does not:
1,024 characters, ``[/]`` and other markup, ``..`` inside a segment, empty segments (``a//b``),
control characters (tab, CR, LF, DEL, C1 — Azurite cannot list ESC or BEL: its XML refuses
them), bidi overrides. Each example runs ``export`` (dry run), ``backup``, ``snapshots``,
``map init``, ``import`` and ``promote`` (dry runs, then real), ``restore --check``, ``pack``
and ``unpack`` as a user does (a subprocess) and asserts:

- no traceback, an exit code from docs/exit-codes.md, no raw escape byte printed;
- the source account is unchanged (every blob's etag), nothing is written on a dry run;
- nothing written outside each run's own place (the accounts hold only the containers the
  maps and repositories name; the local folder only the map and the archive);
- the seeded key appears in no byte printed, stored in a repository, a target or the archive.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.cliutil import amlport
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

pytestmark = [pytest.mark.azurite, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "fixtures" / "workspaces" / "designer-autoprice"
BLOBSTORE = "azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97"
DOCUMENTED = {0, 1, 2, 3, 4, 5}
KEY = "q2Vf" + "Zk8x" * 20 + "Tw=="  # a syntactically real account key (88 characters)
SRC, REPOS, TGT = "hnsrc", "hnrepo", "hntgt"
# Target containers of the three maps: import, restore, promote land apart.
TARGETS = {
    "import": ("hn-import-blobs", "hn-import-art"),
    "restore": ("hn-restore-blobs", "hn-restore-art"),
    "promote": ("hn-promote-blobs", "hn-promote-art"),
}
PREFIX = "UI/n"  # hostile blobs live under UI/n<i>/ in the blobstore
MAX_NAME = 1024  # Azure's limit on a blob name

_PIECES = ["[", "]", "[/]", "[bold]", "[link=x]", "..", "\x85", "\x9b", "\u202e", " ", "/", "\\"]
# Legal in Azure, but object_store's Path cannot address them (an empty segment, ASCII control
# characters): the source reads them through the SDK (storage/objects.carries). Before that
# fallback a backup ended in "internal error: ValueError: Could not parse path".
OBSTORE_REFUSES = ["a//b.txt", "tab\there", "cr\rlf\nx", "del\x7fx"]
_PLAIN = string.ascii_letters + string.digits + "-_.()é#%?=&"


@st.composite
def hostile_blob_name(draw: st.DrawFn) -> str:
    parts = draw(
        st.lists(
            st.one_of(st.sampled_from(_PIECES), st.text(_PLAIN, min_size=1, max_size=8)),
            min_size=1,
            max_size=10,
        )
    )
    name = "".join(parts)
    if draw(st.booleans()):
        name += "x" * draw(st.integers(0, 1000))
    return _legal(name)


def _legal(name: str) -> str:
    """What Azure accepts: a backslash is stored as ``/``; no ``.``/``..`` segment (the HTTP
    layer would resolve it); not ending in ``/`` or ``.``; at most 1,024 characters."""
    segments = name.replace("\\", "/").split("/")
    name = "/".join(s + "x" if s in {".", ".."} else s for s in segments)
    name = name[: MAX_NAME - len(PREFIX) - 3]
    return name.rstrip("/.") + "x"


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[az.Azurite]:
    az.require_azurite()
    emu = az.start_azurite(tmp_path_factory.mktemp("hostile-az"), [SRC, REPOS, TGT])
    try:
        yield emu
    finally:
        emu.stop()


def _clear(account: az.AzuriteAccount) -> None:
    service = account.service_client()
    for container in service.list_containers():
        service.delete_container(container.name)


def _state(account: az.AzuriteAccount) -> dict[tuple[str, str], str]:
    service = account.service_client()
    return {
        (c.name, b.name): str(b.etag)
        for c in service.list_containers()
        for b in service.get_container_client(c.name).list_blobs()
    }


def _no_key_in(account: az.AzuriteAccount) -> None:
    service = account.service_client()
    for c in service.list_containers():
        client = service.get_container_client(c.name)
        for b in client.list_blobs():
            data = client.download_blob(b.name).readall()
            assert KEY.encode() not in data, f"seeded key written to {account.name}/{c.name}"


def _source(account: az.AzuriteAccount, names: list[str]) -> None:
    az.upload_workspace(account.connection_string, FIXTURE)
    blobs = account.service_client().get_container_client(BLOBSTORE)
    for i, name in enumerate(names):
        blobs.upload_blob(f"{PREFIX}{i}/{name}", f"hostile name {i}\n".encode(), overwrite=True)
    blobs.upload_blob("UI/cfg/.env", f"AZURE_STORAGE_KEY={KEY}\n".encode(), overwrite=True)
    pickle = b"\x80\x04pickle\x00AccountKey=" + KEY.encode() + b"\x00"
    blobs.upload_blob("UI/cfg/model.pkl", pickle, overwrite=True)
    conn = f"DefaultEndpointsProtocol=https;AccountName=x;AccountKey={KEY};EndpointSuffix=x\n"
    blobs.upload_blob("UI/cfg/conn.txt", conn.encode(), overwrite=True)


def _run(*args: str, env: dict[str, str]) -> tuple[int, str]:
    res = amlport(*args, env=env, timeout=300)
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert "internal error" not in res.stderr, (args[:2], res.stderr[-2000:])
    assert res.returncode in DOCUMENTED, (args[:2], res.returncode, res.stderr[-2000:])
    for stream in (res.stdout, res.stderr):
        assert KEY not in stream, f"seeded key printed by {args[0]}"
        assert "\x1b" not in stream, f"raw escape printed by {args[0]}"
    return res.returncode, res.stdout


def _map(template: Path, out: Path, account: str, blobs: str, artifacts: str) -> Path:
    doc = yaml.safe_load(template.read_text(encoding="utf-8"))
    doc["target"] = {
        "account": account,
        "endpoint": "core.windows.net",
        "subscription_id": "00000000-0000-0000-0000-000000000001",
        "resource_group": "rg-target",
        "workspace": "ws-target",
        "containers": {"blobstore": blobs, "artifacts": artifacts},
        "datastores": {"workspaceblobstore": blobs, "workspaceartifactstore": artifacts},
    }
    out.write_text(yaml.safe_dump(doc), encoding="utf-8")
    return out


@settings(
    max_examples=1,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=st.lists(hostile_blob_name(), min_size=1, max_size=3))
@example(
    names=[
        "x[/]y.txt",
        "ws[prod]/[bold]b[/bold]/a..b/..c",
        "c1\x85\x9b/bidi\u202eevil.txt/q?x=1&y#z%2F",
        "/".join(["s" * 200] * 5) + "/" + "t" * (MAX_NAME - len(PREFIX) - 3 - 1005),
    ]
)
def test_every_writing_command_holds_with_hostile_blob_names(
    names: list[str], emulator: az.Azurite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _every_writing_command(names, emulator, tmp_path_factory.mktemp("hostile-az"))


def test_names_obstore_cannot_address_are_read_through_the_sdk(
    emulator: az.Azurite, tmp_path_factory: pytest.TempPathFactory
) -> None:
    _every_writing_command(OBSTORE_REFUSES, emulator, tmp_path_factory.mktemp("uncarried"))


def _every_writing_command(names: list[str], emulator: az.Azurite, base: Path) -> None:
    src, repos, tgt = (emulator.account(n) for n in (SRC, REPOS, TGT))
    for account in (src, repos, tgt):
        _clear(account)
    _source(src, names)
    before = _state(src)
    env = {"AMLPORT_REPO_CONNECTION_STRING": repos.connection_string}
    s_conn = ("--connection-string", src.connection_string)
    t_conn = ("--connection-string", tgt.connection_string)
    repo, repo2 = "az://hn-repo", "az://hn-repo2"

    _run("export", src.url, "--to", repo, *s_conn, "--dry-run", env=env)
    assert _state(repos) == {}, "an export dry run wrote the repository"

    code, _ = _run("backup", src.url, "--repo", repo, *s_conn, env=env)
    assert code == 1  # the files holding the seeded key are withheld, with a warning
    code, out = _run("snapshots", repo, "--json", env=env)
    assert code == 0
    template = base / "map.yaml"
    _run("map", "init", repo, "-o", str(template), env=env)
    maps = {k: _map(template, base / f"{k}.yaml", TGT, *v) for k, v in TARGETS.items()}

    _run("import", repo, "--to", tgt.url, "--map", str(maps["import"]), *t_conn, "--dry-run",
         env=env)  # fmt: skip
    _run("promote", src.url, "--to", tgt.url, "--map", str(maps["promote"]), *s_conn,
         "--target-connection-string", tgt.connection_string, "--dry-run", env=env)  # fmt: skip
    assert _state(tgt) == {}, "a dry run wrote the target"

    _run("import", repo, "--to", tgt.url, "--map", str(maps["import"]), *t_conn, env=env)
    imported = {n for c, n in _state(tgt) if c == TARGETS["import"][0]}
    assert {f"{PREFIX}{i}/{name}" for i, name in enumerate(names)} <= imported
    _run("restore", repo, "latest", "--to", tgt.url, "--map", str(maps["restore"]), *t_conn,
         "--check", env=env)  # fmt: skip
    _run("promote", src.url, "--to", tgt.url, "--map", str(maps["promote"]), *s_conn,
         "--target-connection-string", tgt.connection_string, env=env)  # fmt: skip
    snap = _last_snapshot(out)
    archive = base / "a.tar.gz"
    _run("pack", repo, "--snapshot", snap, "-o", str(archive), env=env)
    _run("unpack", str(archive), "--to", repo2, env=env)

    assert _state(src) == before, "the source changed"
    assert {c for c, _ in _state(repos)} <= {"hn-repo", "hn-repo2"}, "a write left the repos"
    allowed = {c for pair in TARGETS.values() for c in pair}
    assert {c for c, _ in _state(tgt)} <= allowed, "a write escaped the maps' containers"
    assert {p.name for p in base.iterdir()} <= {"map.yaml", *(f"{k}.yaml" for k in TARGETS),
                                                "a.tar.gz"}  # fmt: skip
    for account in (repos, tgt):
        _no_key_in(account)
    if archive.exists():
        assert KEY.encode() not in archive.read_bytes()


def _last_snapshot(snapshots_json: str) -> str:
    doc = json.loads(snapshots_json)
    rows = doc["snapshots"] if isinstance(doc, dict) else doc
    return str(rows[-1]["id"])
