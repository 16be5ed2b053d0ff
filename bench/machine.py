"""What the benchmark ran on: CPU, cores, memory, load, and the versions of every tool."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return 0.0


def _version(pkg: str) -> str:
    try:
        return metadata.version(pkg)
    except metadata.PackageNotFoundError:
        return "not installed"


def _azurite_version() -> str:
    try:
        data = json.loads((REPO / "node_modules" / "azurite" / "package.json").read_text())
        return str(data["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def _run(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "unknown"


def _amlport_tree() -> Path:
    """The source tree of the amlport this interpreter runs (the one measured)."""
    import importlib.util

    spec = importlib.util.find_spec("amlport")
    if spec is None or spec.origin is None:
        return REPO
    return Path(spec.origin).resolve().parent


def _git_commit() -> str:
    tree = str(_amlport_tree())
    head = _run(["git", "-C", tree, "rev-parse", "--short", "HEAD"])
    dirty = _run(["git", "-C", tree, "status", "--porcelain", "--untracked-files=no", "."])
    return f"{head}{' (+ uncommitted changes)' if dirty else ''}" if head else "unknown"


IMPORTS = "import amlport.cli.app, amlport.backup.run, amlport.storage.azure"


def _import_rss(python: str) -> dict[str, Any]:
    """RSS of ``python`` after importing what ``amlport backup`` over Azure imports, and
    whether azure-storage-blob pulled in aiohttp (it does when aiohttp is installed)."""
    code = (
        f"{IMPORTS}; import sys; "
        "rss = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmRSS')]; "
        "print(int(rss[0]) // 1024, 'aiohttp' in sys.modules)"
    )
    out = _run([python, "-c", code]).split()
    if len(out) != 2 or not out[0].isdigit():
        return {"rss_mb": None, "aiohttp": None}
    return {"rss_mb": int(out[0]), "aiohttp": out[1] == "True"}


def _environment(python: str) -> dict[str, Any]:
    """The environment amlport is measured in, and (for comparison) the test environment."""
    import sys

    dists = _run([python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"])
    blob = _run(
        [python, "-c", "import importlib.metadata as m; print(m.version('azure-storage-blob'))"]
    )
    return {
        "python": python,
        "packages": len([line for line in dists.splitlines() if "==" in line]),
        "azure-storage-blob": blob or "unknown",
        "imports": _import_rss(python),
        "harness_imports": _import_rss(sys.executable) if python != sys.executable else None,
    }


def describe(rclone: str | None, python: str) -> dict[str, Any]:
    rclone_version = "not installed"
    if rclone:
        first = _run([rclone, "version"]).splitlines()
        rclone_version = first[0].removeprefix("rclone ").strip() if first else "unknown"
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "nproc": os.cpu_count(),
        "memory_gib": round(_mem_gib(), 1),
        "kernel": platform.release(),
        "os": _run(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]) or platform.system(),
        "python": platform.python_version(),
        "node": _run(["node", "--version"]),
        "azurite": _azurite_version(),
        "azure-storage-blob": _version("azure-storage-blob"),
        "rclone": rclone_version,
        "amlport": _version("amlport"),
        "commit": _git_commit(),
        "environment": _environment(python),
    }
