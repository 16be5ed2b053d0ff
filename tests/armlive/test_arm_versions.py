"""The ``arm`` extra pins the management SDKs to the minor this suite runs against the replay:
whatever ``pip install 'amlport[arm]'`` may resolve is what tests/armlive tested (design
record 0006, decision 4)."""

from __future__ import annotations

import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"
# The SDKs whose models, paths and arguments the replay tests pin. azure-identity only signs in
# (DefaultAzureCredential), which no replay test exercises (docs/audit.md).
MANAGEMENT = ("azure-mgmt-storage", "azure-mgmt-resource", "azure-mgmt-resource-locks")


def extra(name: str) -> dict[str, Requirement]:
    doc = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))
    reqs = [Requirement(r) for r in doc["project"]["optional-dependencies"][name]]
    return {r.name: r for r in reqs}


@pytest.mark.parametrize("package", MANAGEMENT)
def test_the_arm_extra_allows_only_the_minor_the_suite_runs(package: str) -> None:
    spec = extra("arm")[package].specifier
    installed = Version(version(package))
    assert installed in spec, f"{package} {installed} is outside the arm extra's {spec}"
    (lowest,) = [Version(s.version) for s in spec if s.operator == ">="]
    major, minor = installed.release[:2]
    assert lowest.release[:2] == (major, minor), f"{package}: the suite runs {installed}"
    assert Version(f"{major}.{minor + 1}.0") not in spec, f"{package}: {spec} is not a pin"
    assert Version(f"{major + 1}.0.0") not in spec


def test_the_registration_sdk_is_inside_its_declared_range() -> None:
    spec = extra("azureml")["azure-ai-ml"].specifier
    assert Version(version("azure-ai-ml")) in spec
