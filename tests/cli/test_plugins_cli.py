"""``amlport plugins`` and a broken plugin, with a real installed distribution.

The distribution (``amlport-test-plugin``: a dist-info folder and its modules on
``PYTHONPATH``, found by ``importlib.metadata`` as pip-installed ones are) declares six
``amlport.exporters.v1`` entry points: one that works, one whose module raises on import, one
whose error quotes an account key, one whose name a built-in has, one that is not an
exporter, and one whose name is hostile. The run lists the good one, names every other in a
warning (exit 1), and an export with them installed goes on (issue 23: one broken entry point
crashed every export).
"""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from helpers import REPO_ROOT
from helpers.cliutil import amlport

HOSTILE = "x[/]y[bold]"
KEY = "c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0cw=="
PLUGIN = """
class GoodExporter:
    name = "test_good"
    kinds = ("model",)

    def accepts(self, item, ctx):
        return False

    def export(self, item, ctx):
        raise AssertionError("never accepted")


class NotAnExporter:
    pass
"""
ENTRY_POINTS = f"""[amlport.exporters.v1]
test_good = amlport_test_plugin:GoodExporter
test_broken = amlport_broken_plugin:Exporter
test_leaky = amlport_leaky_plugin:Exporter
mlflow_model = amlport_test_plugin:GoodExporter
test_shapeless = amlport_test_plugin:NotAnExporter
{HOSTILE} = amlport_test_plugin:Missing
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("site")
    (root / "amlport_test_plugin.py").write_text(PLUGIN, encoding="utf-8")
    (root / "amlport_broken_plugin.py").write_text("raise ImportError('needs torch')\n")
    leak = f"raise RuntimeError('DefaultEndpointsProtocol=https;AccountKey={KEY}')\n"
    (root / "amlport_leaky_plugin.py").write_text(leak)
    info = root / "amlport_test_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: amlport-test-plugin\nVersion: 0.1\n"
    )
    (info / "entry_points.txt").write_text(ENTRY_POINTS, encoding="utf-8")
    return {"PYTHONPATH": str(root)}


def test_plugins_lists_every_kind_and_exits_0() -> None:
    res = amlport("plugins", "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    kinds = {p["kind"] for p in doc["plugins"]}
    assert kinds == {"exporter", "importer", "rewriter", "audit check"}
    assert doc["warnings"] == [] and all(p["origin"] == "built-in" for p in doc["plugins"])
    text = amlport("plugins")
    assert text.returncode == 0, text.stderr
    assert "MlflowRegistryImporter" in text.stdout and "wasb" in text.stdout


def test_a_broken_plugin_is_a_warning_naming_it(site: dict[str, str]) -> None:
    res = amlport("plugins", "--json", env=site)
    assert res.returncode == 1, res.stderr
    doc = json.loads(res.stdout)
    schema = REPO_ROOT / "src" / "amlport" / "cli" / "schemas" / "plugins.json"
    jsonschema.validate(doc, json.loads(schema.read_text(encoding="utf-8")))
    good = [p for p in doc["plugins"] if p["name"] == "test_good"]
    assert good == [
        {
            "kind": "exporter",
            "name": "test_good",
            "origin": "entry point amlport.exporters.v1",
            "target": "amlport_test_plugin:GoodExporter",
            "distribution": "amlport-test-plugin 0.1",
        }
    ]
    builtin = [p for p in doc["plugins"] if p["name"] == "mlflow_model"]
    assert [p["origin"] for p in builtin] == ["built-in"]  # the plugin did not replace it
    warnings = "\n".join(doc["warnings"])
    assert len(doc["warnings"]) == 5
    assert "'test_leaky'" in warnings and KEY not in res.stdout + res.stderr  # redacted
    assert "'test_broken'" in warnings and "ImportError: needs torch" in warnings
    assert "'mlflow_model'" in warnings and "name is taken by built-in" in warnings
    assert "'test_shapeless'" in warnings and "not an exporter" in warnings
    assert repr(HOSTILE) in warnings
    text = amlport("plugins", env=site)
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert "test_broken" in text.stderr and HOSTILE in text.stderr  # brackets shown as they are


def test_an_export_goes_on_without_a_broken_plugin(site: dict[str, str], tmp_path: Path) -> None:
    ws = REPO_ROOT / "fixtures" / "workspaces" / "sdk-bikeshare"
    res = amlport("export", str(ws), "--repo", str(tmp_path / "repo"), "--json", env=site)
    assert res.returncode == 1, res.stderr  # exported, with warnings
    assert "Traceback" not in res.stderr
    doc = json.loads(res.stdout)
    assert doc["assets"] and doc["snapshot"]
    assert "test_broken" in json.dumps(doc["skipped"])


def test_a_bad_option_is_a_usage_error_exit_2() -> None:
    res = amlport("plugins", "--no-such-option")
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
