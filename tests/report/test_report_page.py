"""The report page without a browser: escaping, the CSP, the vendored library, the layouts,
and the ``amlport report`` command's options and exit codes."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import jsonschema
import pytest
from helpers.cliutil import amlport
from helpers.reportutil import FIXTURE, ROOT

from amlport.lineage import build_graph
from amlport.report.html import CYTOSCAPE_VERSION, script_json, text
from amlport.report.pipelines import layers, pipelines_of
from amlport.storage.local import LocalSource
from amlport.walk import walk

HOSTILE = [
    "</script><script>alert(1)</script>",
    "<!--",
    "]]>",
    "\u2028\u2029",
    "\x1b[31m\u202e",
    "&amp;\"'",
    "n" * 1024,
]


def test_script_json_cannot_close_or_comment_its_element() -> None:
    data = {"names": HOSTILE, "<key>": "</SCRIPT >"}
    raw = script_json(data)
    for bad in ("<", ">", "&", "\u2028", "\u2029", "\x1b"):
        assert bad not in raw
    back = json.loads(raw)
    assert back["names"][0] == HOSTILE[0]  # markup survives as the text it is
    assert back["names"][4] == "\\x1b[31m\\u202e"  # control characters are made visible
    assert back["<key>"] == "</SCRIPT >"


def test_text_escapes_markup_quotes_and_controls() -> None:
    assert text('<a href="x">\'&') == "&lt;a href=&quot;x&quot;&gt;&#x27;&amp;"
    assert text("a\x1bb\u202ec") == "a\\x1bb\\u202ec"


def test_page_scripts_are_the_ones_its_csp_allows(autoprice: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    run = amlport("report", str(autoprice), "-o", str(page))
    assert run.returncode == 0, run.stderr
    html = page.read_text(encoding="utf-8")
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp is not None
    policy = csp.group(1).replace("&#x27;", "'")
    assert "default-src 'none'" in policy  # nothing from the network, ever
    scripts = re.findall(r"<script>(.*?)</script>", html, flags=re.S)
    assert len(scripts) == 2  # Cytoscape.js and the page script (the data is not executed)
    for body in scripts:
        digest = base64.b64encode(hashlib.sha256(body.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_vendored_cytoscape_is_the_pinned_npm_release() -> None:
    package = json.loads((ROOT / "package.json").read_text())
    assert package["devDependencies"]["cytoscape"] == CYTOSCAPE_VERSION
    npm = ROOT / "node_modules" / "cytoscape"
    assert npm.is_dir(), "run `npm ci` (make test does) to check the vendored copy"
    assert json.loads((npm / "package.json").read_text())["version"] == CYTOSCAPE_VERSION
    vendor = ROOT / "src" / "amlport" / "report" / "vendor"
    assert (vendor / "cytoscape.min.js").read_bytes() == (
        npm / "dist" / "cytoscape.min.js"
    ).read_bytes(), "refresh it with `make report-vendor`"
    assert (vendor / "cytoscape.LICENSE").read_bytes() == (npm / "LICENSE").read_bytes()


def test_layers_follow_the_flow_and_survive_cycles_and_long_chains() -> None:
    place = layers(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("d", "c")])
    assert place["a"][0] < place["b"][0] < place["c"][0]
    assert place["d"][0] == place["c"][0] - 1  # an input sits just above what it feeds
    cyclic = layers(["x", "y", "z"], [("x", "y"), ("y", "z"), ("z", "y")])
    assert set(cyclic) == {"x", "y", "z"}
    n = 5000  # no recursion: a chain of thousands is laid out
    chain = layers([f"n{i}" for i in range(n)], [(f"n{i}", f"n{i + 1}") for i in range(n - 1)])
    assert chain[f"n{n - 1}"] == (n - 1, 0)


def test_designer_pipeline_diagram_of_the_fixture() -> None:
    (pipe,) = pipelines_of(build_graph(walk(LocalSource(FIXTURE))))
    steps = {b.label: b for b in pipe.boxes if b.kind == "step_run"}
    assert len(steps) == 7
    order = ["select_columns", "clean_missing_data", "split_data", "train_generic_model"]
    assert [steps[s].y for s in order] == sorted(steps[s].y for s in order)
    assert steps["score_generic_module"].y < steps["evaluate_generic_module"].y
    inputs = [b.label for b in pipe.boxes if b.kind != "step_run"]
    assert inputs == ["Automobile_price_data_(Raw)"]
    for box in pipe.boxes:  # inside the drawing, no two boxes on one another
        assert box.x >= 0 and box.x + 200 <= pipe.width and box.y + 44 <= pipe.height
    assert len({(b.x, b.y) for b in pipe.boxes}) == len(pipe.boxes)


# -- the command -------------------------------------------------------------------------------


def test_json_names_schema_exit_code_and_what_was_written(autoprice: Path, tmp_path: Path) -> None:
    page = tmp_path / "r.html"
    run = amlport(
        "report", str(autoprice), "--repo", str(autoprice.parent / "repo"), "-o", str(page),
        "--json",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    schema = ROOT / "src" / "amlport" / "cli" / "schemas" / "report.json"
    jsonschema.validate(doc, json.loads(schema.read_text()))
    assert doc["schema"] == "amlport.report/1"
    assert doc["exit_code"] == 0
    assert doc["output"] == str(page) and page.is_file()
    assert doc["kind"] == "source" and doc["snapshots"] == 2 and doc["pipelines"] == 1
    assert doc["nodes"] == doc["nodes_drawn"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["{repo}", "--repo", "{repo}"], "--repo is for a SOURCE"),
        (["{ws}", "--source", "a/b"], "--source chooses snapshots"),
        (["{repo}@ffffffffffff"], "snapshot"),
        (["{tmp}/nothing-here"], "neither a repository"),
    ],
)
def test_misleading_arguments_are_usage_errors(
    autoprice: Path, tmp_path: Path, args: list[str], message: str
) -> None:
    names = {"repo": str(autoprice.parent / "repo"), "ws": str(autoprice), "tmp": str(tmp_path)}
    page = tmp_path / "r.html"
    run = amlport("report", *[a.format(**names) for a in args], "-o", str(page))
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr and not page.exists()


def test_output_is_checked_like_every_dash_o(autoprice: Path, tmp_path: Path) -> None:
    missing = amlport("report", str(autoprice), "-o", str(tmp_path / "no" / "r.html"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    inside = amlport("report", str(autoprice), "-o", str(autoprice / "r.html"))
    assert inside.returncode == 2 and not (autoprice / "r.html").exists()
    repo = autoprice.parent / "repo"
    in_repo = amlport("report", str(repo), "-o", str(repo / "r.html"))
    assert in_repo.returncode == 2 and not (repo / "r.html").exists()
