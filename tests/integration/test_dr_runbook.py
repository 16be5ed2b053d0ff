"""The disaster-recovery runbook (docs/recipes/disaster-recovery.md), run as written, over
Azurite, every step checked (issue 21).

- the lost workspace: ``designer-autoprice`` in its own emulated account;
- the nightly job: ``amlport backup <its URL> --repo az://amlport-dr/prod`` into a second
  emulated account (``amlsrc``): the off-site copy docs/backup.md recommends;
- the new workspace: a third account (``amldst``) whose containers have other names, its
  datastores named as the source's (the runbook's advice) or one of them renamed.

The runbook's ``bash`` blocks run in bash, in order, in one working folder, exactly as the
page spells them (variables carried from block to block as a shell carries them). Three
stand-ins replace what the emulator cannot be:

- ``az`` is a shell function that records its arguments (Azurite has no control plane). Step 2
  only creates the workspace: the test creates its containers instead and sets ``NEW`` and
  ``NEW_ACCOUNT`` as step 2 does;
- ``amlport … --credential default`` gets the new account's connection string instead
  (Azurite has no Entra ID); the repository's credential is ``$AMLPORT_REPO_CONNECTION_STRING``,
  as the runbook says;
- the human edit of step 3 (filling in ``target:``) is made on the file ``map init`` wrote.

Before issue 21, step 3 (``map init az://…``) and step 6 (``diff az://…@ID``) failed on the
off-site repository, and step 5 fell back to a Python snippet.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from helpers import azurite as az
from helpers.cliutil import amlport

pytestmark = pytest.mark.azurite

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "docs" / "recipes" / "disaster-recovery.md"
REPO = "az://amlport-dr/prod"  # what the runbook's step 1 names
SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"
_STEP = re.compile(r"^## (\d+)\. ", re.M)
_BLOCK = re.compile(r"^([ \t]*)```bash\n(.*?)^[ \t]*```", re.M | re.S)

PRELUDE = r"""
amlport() {
    local args=() given=("$@")
    while [ $# -gt 0 ]; do
        if [ "$1" = --credential ] && [ "${2-}" = default ]; then
            args+=(--connection-string "$DR_TARGET_CONNECTION_STRING"); shift 2
        else
            args+=("$1"); shift
        fi
    done
    "$DR_PYTHON" -m amlport "${args[@]}"
    local rc=$?
    printf '%s\t%s\n' "$rc" "${given[*]}" >> "$DR_AMLPORT_LOG"
    return $rc
}
az() { printf '%s\n' "$*" >> "$DR_AZ_LOG"; }
export -f amlport az
[ -f state.sh ] && source state.sh
"""
EPILOGUE = "\ndeclare -p REPO SNAP NEW NEW_ACCOUNT 2>/dev/null > state.sh\n"


def runbook_steps() -> dict[int, list[str]]:
    """Step number -> the bash blocks of that step, as the page spells them."""
    text = RUNBOOK.read_text(encoding="utf-8")
    heads = list(_STEP.finditer(text))
    steps: dict[int, list[str]] = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        body = text[head.end() : end]
        steps[int(head.group(1))] = [
            textwrap.dedent(m.group(1) + m.group(2).replace("\n" + m.group(1), "\n"))
            for m in _BLOCK.finditer(body)
        ]
    return steps


@dataclass
class Call:
    rc: int
    args: list[str]


@dataclass
class Shell:
    """Runs the runbook's blocks in ``work``, the way an operator's shell would."""

    work: Path
    env: dict[str, str]

    def run(self, block: str) -> tuple[subprocess.CompletedProcess[str], list[Call], list[str]]:
        log, az_log = self.work / ".amlport-calls", self.work / ".az-calls"
        for f in (log, az_log):
            f.write_text("", encoding="utf-8")
        ran = subprocess.run(
            ["bash", "-c", PRELUDE + block + EPILOGUE],
            cwd=self.work,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
            env=self.env,
        )
        calls = [
            Call(int(rc), shlex.split(args))
            for rc, _, args in (line.partition("\t") for line in log.read_text().splitlines())
        ]
        return ran, calls, az_log.read_text(encoding="utf-8").splitlines()

    def set(self, **values: str) -> None:
        """What a step outside the emulator's reach leaves in the shell (step 2)."""
        state = self.work / "state.sh"
        old = state.read_text(encoding="utf-8") if state.exists() else ""
        new = "".join(f"declare -- {k}={shlex.quote(v)}\n" for k, v in values.items())
        state.write_text(old + new, encoding="utf-8")


def _ok(calls: list[Call], ran: subprocess.CompletedProcess[str], *allowed: int) -> None:
    codes = allowed or (0,)
    bad = [c for c in calls if c.rc not in codes]
    assert calls and not bad, f"{bad}\n{ran.stdout}\n{ran.stderr}"


@pytest.fixture(scope="module")
def lost_workspace(
    azurite: az.Azurite, azurite_workspaces: dict[str, az.LoadedWorkspace]
) -> az.LoadedWorkspace:
    """The workspace, backed up by the nightly job into the off-site repository."""
    ws = azurite_workspaces["designer-autoprice"]
    env = {"AMLPORT_REPO_CONNECTION_STRING": azurite.source.connection_string}
    ran = amlport("backup", ws.url, "--connection-string", ws.account.connection_string,
                  "--workspace-file", str(ws.descriptor_file), "--repo", REPO,
                  "--tag", "nightly", env=env)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    return ws


@pytest.mark.skipif(sys.platform == "win32", reason="the runbook is bash")
@pytest.mark.parametrize("renamed", [False, True], ids=["same-datastores", "renamed-datastore"])
def test_the_dr_runbook_runs_as_written(
    azurite: az.Azurite, lost_workspace: az.LoadedWorkspace, tmp_path: Path, renamed: bool
) -> None:
    steps = runbook_steps()
    assert sorted(steps) == [1, 2, 3, 4, 5, 6, 7]
    new_account = azurite.target
    env = {
        **os.environ,
        "COLUMNS": "200",
        "AMLPORT_REPO_CONNECTION_STRING": azurite.source.connection_string,
        "DR_TARGET_CONNECTION_STRING": new_account.connection_string,
        "DR_PYTHON": sys.executable,
        "DR_AMLPORT_LOG": str(tmp_path / "work" / ".amlport-calls"),
        "DR_AZ_LOG": str(tmp_path / "work" / ".az-calls"),
        "SUBSCRIPTION_ID": SUBSCRIPTION,
    }
    env.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    env.pop("AMLPORT_CONNECTION_STRING", None)
    (tmp_path / "work").mkdir()
    shell = Shell(tmp_path / "work", env)

    # 1. Pick and check the snapshot: the off-site repository lists it and verifies.
    [block] = steps[1]
    ran, calls, _ = shell.run(block)
    _ok(calls, ran)
    assert [c.args[:2] for c in calls] == [["snapshots", REPO], ["verify", f"{REPO}@latest"]]
    assert "verified 1 snapshot(s)" in ran.stdout

    # 2. Create the new workspace: the emulator's stand-in (containers with other names).
    [block] = steps[2]
    assert "NEW=https://$NEW_ACCOUNT.blob.core.windows.net" in block
    tag = uuid.uuid4().hex[:8]
    blobstore, artifacts = f"azureml-blobstore-dr{tag}", f"azureml-dr{tag}"
    service = new_account.service_client()
    for name in (blobstore, artifacts):
        service.create_container(name)
    shell.set(NEW=new_account.url, NEW_ACCOUNT=new_account.name)

    # 3. Write the map file; the operator fills in the target.
    [block] = steps[3]
    ran, calls, _ = shell.run(block)
    _ok(calls, ran)
    map_file = shell.work / "dr-map.yaml"
    doc = yaml.safe_load(map_file.read_text(encoding="utf-8"))
    assert doc["source"] == "azmlfromscratchstr/azml-from-scratch"
    assert doc["datastores"] == {
        "workspaceblobstore": "workspaceblobstore",
        "workspaceartifactstore": "workspaceartifactstore",
    }
    blob_store = "drblobstore" if renamed else "workspaceblobstore"  # the operator's choice
    doc["target"].update(
        account=new_account.name,
        subscription_id=SUBSCRIPTION,
        resource_group="rg-ml-dr",
        workspace="mlw-dr",
        containers={"blobstore": blobstore, "artifacts": artifacts},
        datastores={blob_store: blobstore, "workspaceartifactstore": artifacts},
    )
    doc["datastores"]["workspaceblobstore"] = blob_store
    map_file.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")

    # 4. Restore, with the proof.
    [block] = steps[4]
    ran, calls, _ = shell.run(block)
    _ok(calls, ran)
    assert "check: PASSED" in ran.stdout and "exit 0" in ran.stdout, ran.stdout + ran.stderr
    restored = {b.name for b in service.get_container_client(artifacts).list_blobs()}
    assert any(n.endswith("/Trained_model") for n in restored)
    assert (shell.work / "dr-assets" / "register.sh").is_file()

    # 5. Register the assets (az recorded), extract the designer pipelines with ls/dump.
    [register, extract] = steps[5]
    ran, calls, az_calls = shell.run(register)
    assert ran.returncode == 0, ran.stderr
    assert az_calls[:2] == [
        f"account set --subscription {SUBSCRIPTION}",
        "configure --defaults group=rg-ml-dr workspace=mlw-dr",
    ]
    created = [c for c in az_calls if c.startswith("ml ") and " create " in f"{c} "]
    kinds = [c.split()[1] for c in created]
    assert "model" in kinds and "environment" in kinds, az_calls
    assert kinds.index("environment") < kinds.index("model")  # dependency order
    ran, calls, _ = shell.run(extract)
    _ok(calls, ran)
    listed = json.loads(amlport("ls", f"{REPO}@latest", "pipelines", "--json", env=env).stdout)[
        "files"
    ]
    assert listed and [c.args[0] for c in calls] == ["ls", "ls"] + ["dump"] * len(listed)
    extracted = sorted(p.name for p in (shell.work / "dr-pipelines").iterdir())
    assert extracted == sorted(f["path"].rsplit("/", 1)[-1] for f in listed)
    for f in listed:
        written = shell.work / "dr-pipelines" / f["path"].rsplit("/", 1)[-1]
        assert written.stat().st_size == f["size"]
        if written.suffix == ".yml":  # the portable description (.md: its document)
            assert yaml.safe_load(written.read_text(encoding="utf-8"))["steps"]

    # 6. Verify: a rescan by URL, and the diff against the snapshot.
    [block] = steps[6]
    ran, calls, az_calls = shell.run(block)
    scan, diff = calls
    assert scan.rc in (0, 1) and scan.args[0] == "scan", ran.stderr  # 1: the fixture's findings
    assert diff.rc == 1 and diff.args[:3] == ["diff", f"{REPO}@latest", new_account.url]
    assert az_calls == ["ml model list -o table", "ml environment list -o table"]
    again = amlport(*diff.args[:3], "--workspace-file", str(map_file), "--json",
                    "--connection-string", new_account.connection_string, env=env)  # fmt: skip
    report = json.loads(again.stdout)
    assert [a["id"] for a in report["assets"]["added"]] == [
        "unclassified:workspaceartifactstore/amlport"
    ], report["assets"]
    assert report["assets"]["removed"] == [] and report["files"]["removed"] == 0
    if not renamed:
        assert report["assets"]["changed"] == [] and report["files"]["changed"] == 0
    lineage = report["lineage"]
    assert not (lineage["nodes_added"] or lineage["nodes_removed"]), lineage
    assert not (lineage["edges_added"] or lineage["edges_removed"]), lineage
    audit = report["audit"]  # the restored workspace has the snapshot's audit facts
    assert audit["added"] == audit["removed"] == [] and audit["unchanged"] > 0, audit

    # 7. Afterwards: the local drill and the read-only proof of the standing copy.
    [drill, proof] = steps[7]
    ran, calls, _ = shell.run(drill)
    _ok(calls, ran)
    assert "check: PASSED" in ran.stdout and (shell.work / "dr-drill").is_dir()
    before = {b.name: b.etag for b in service.get_container_client(artifacts).list_blobs()}
    ran, calls, _ = shell.run(proof)
    _ok(calls, ran)
    assert "check: PASSED" in ran.stdout and "nothing written" in ran.stdout, ran.stdout
    after = {b.name: b.etag for b in service.get_container_client(artifacts).list_blobs()}
    assert after == before
