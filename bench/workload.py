"""The benchmark workloads: scaled fixture workspaces loaded into a fresh Azurite.

Each workload gets its own emulator with a fresh ``--location`` (Azurite slows as it fills)
serving two accounts: the source, named as the generated ``workspace.yaml`` says, and a target
for ``promote``. The emulator helpers are the test suite's (``tests/helpers/azurite.py``), imported,
not copied.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import azurite as az  # noqa: E402  (tests/helpers/azurite.py)

BLOBS_PER_RUN = 109  # fixtures/generate.py --scaled: files per designer pipeline run
TARGET_ACCOUNT = "amlportbenchdst"
TARGET_WSID = "0b0b0b0b-1c1c-2d2d-3e3e-4f4f4f4f4f4f"


@dataclass
class Workload:
    name: str  # "10k", "100k", "models"
    runs: int  # pipeline runs generated
    large_model_mb: int
    local_dir: Path  # the generated local copy (fixtures/generate.py --scaled)
    files: int  # blobs in it
    bytes: int
    emulator: az.Azurite | None = None
    containers: tuple[str, ...] = ()
    generate_s: float = 0.0
    upload_s: float = 0.0

    @property
    def descriptor_file(self) -> Path:
        return self.local_dir / "workspace.yaml"

    @property
    def source_account_name(self) -> str:
        import yaml

        return str(yaml.safe_load(self.descriptor_file.read_text())["account"])

    @property
    def source(self) -> az.AzuriteAccount:
        assert self.emulator is not None
        return self.emulator.account(self.source_account_name)

    @property
    def target(self) -> az.AzuriteAccount:
        assert self.emulator is not None
        return self.emulator.account(TARGET_ACCOUNT)


def runs_for(blobs: int) -> int:
    """Pipeline runs that give about ``blobs`` blobs."""
    return max(1, round(blobs / BLOBS_PER_RUN))


def generate(name: str, runs: int, large_model_mb: int, out: Path, python: str) -> Workload:
    out.mkdir(parents=True, exist_ok=True)
    argv = [python, str(REPO / "fixtures" / "generate.py"), "--scaled", str(runs), "--out"]
    argv.append(str(out))
    if large_model_mb:
        argv += ["--large-model-mb", str(large_model_mb)]
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    took = time.perf_counter() - t0
    local = out / f"scaled-{runs}"
    files = 0
    size = 0
    for _, _, path in az.local_files(local):
        files += 1
        size += path.stat().st_size
    return Workload(name, runs, large_model_mb, local, files, size, generate_s=took)


def load(w: Workload, location: Path, *, workers: int = 8) -> None:
    """Start a fresh emulator for ``w`` and upload the workspace into its source account."""
    shutil.rmtree(location, ignore_errors=True)
    location.mkdir(parents=True)
    w.emulator = az.start_azurite(location, (w.source_account_name, TARGET_ACCOUNT))
    t0 = time.perf_counter()
    w.containers = tuple(
        az.upload_workspace(w.source.connection_string, w.local_dir, workers=workers)
    )
    w.upload_s = time.perf_counter() - t0


def unload(w: Workload) -> None:
    if w.emulator is not None:
        w.emulator.stop()
        shutil.rmtree(w.emulator.location, ignore_errors=True)
        w.emulator = None


def map_file(w: Workload, path: Path) -> Path:
    """A promote map: the same datastores, in a target workspace with other names."""
    import yaml

    blobstore = f"azureml-blobstore-{TARGET_WSID}"
    doc = {
        "target": {
            "account": TARGET_ACCOUNT,
            "endpoint": "core.windows.net",
            "subscription_id": "11111111-2222-3333-4444-555555555555",
            "resource_group": "rg-amlport-bench-target",
            "workspace": "amlport-bench-target",
            "containers": {"blobstore": blobstore, "artifacts": "azureml"},
            "datastores": {"workspaceblobstore": blobstore, "workspaceartifactstore": "azureml"},
        },
        "datastores": {
            "workspaceblobstore": "workspaceblobstore",
            "workspaceartifactstore": "workspaceartifactstore",
        },
    }
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def scan_reads(local_dir: Path) -> list[tuple[str, str, int]]:
    """Exactly the blobs ``amlport scan`` reads (container, name, size), found by walking the
    local copy with a source that records every read. The classification is by name and
    size only, so the set is the same when the same workspace is read from Azure."""
    from amlport.storage.local import LocalSource
    from amlport.walk import walk

    seen: set[tuple[str, str]] = set()

    class Recording(LocalSource):
        def read_bytes(self, container: str, name: str, *, max_bytes: int | None = None) -> bytes:
            seen.add((container, name))
            return super().read_bytes(container, name, max_bytes=max_bytes)

    src = Recording(local_dir, None)
    try:
        walk(src)
    finally:
        src.close()
    return sorted((c, n, (local_dir / c / n).stat().st_size) for c, n in seen)
