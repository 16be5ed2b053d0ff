"""``amlport report`` pages in a real browser: headless Chromium, offline, asserting on the DOM.

The page is written by the installed command (a subprocess, as a user runs it), opened from
``file://`` with every network request sent to a closed port, and driven as a person would:
the graph's node count, a click on a node in the canvas revealing its upstream, search, the
snapshot history. Screenshots go to build/report/ for people to look at (docs/report.md).
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.cliutil import amlport
from helpers.reportutil import FIXTURE, SHOTS

from amlport.lineage import build_graph
from amlport.storage.local import LocalSource
from amlport.walk import walk

TIMEOUT = 30.0


def wait_for(check: Callable[[], Any], what: str) -> Any:
    """Poll ``check`` until it returns something truthy (a page is loaded, a click handled)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def node_count(ws: Path) -> int:
    return int(build_graph(walk(LocalSource(ws))).g.number_of_nodes())


def write_report(*args: str) -> None:
    run = amlport("report", *args)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr


def open_page(driver: Any, page: Path) -> int:
    """Load ``page``; the number of graph nodes the page says it drew."""
    driver.get(page.resolve().as_uri())
    status = wait_for(
        lambda: driver.execute_script(
            "return document.getElementById('graph-status').getAttribute('data-nodes')"
        ),
        "the graph to render",
    )
    return int(status)


def no_network_and_no_errors(driver: Any) -> None:
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == []  # a script refused by the page's CSP, or any script error, shows here


def screenshot(driver: Any, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(int(height), 8000))
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)  # the resize relayouts the canvas
    path = SHOTS / name
    driver.save_screenshot(str(path))
    driver.set_window_size(1400, 1000)
    return path


def click_node(driver: Any, kind: str, label: str) -> None:
    """A real mouse click on the node's place in the canvas (viewport coordinates)."""
    from selenium.webdriver.common.action_chains import ActionChains

    x, y = driver.execute_script(
        "var kind = arguments[0], label = arguments[1];"
        "var n = window.amlportGraph.nodes().filter(function (e) {"
        " return e.data('kind') === kind && e.data('label') === label; })[0];"
        "var box = document.getElementById('cy');"
        "box.scrollIntoView({block: 'center'});"
        "var r = box.getBoundingClientRect(), p = n.renderedPosition();"
        "return [r.left + p.x, r.top + p.y];",
        kind,
        label,
    )
    actions = ActionChains(driver)
    actions.w3c_actions.pointer_action.move_to_location(round(x), round(y)).click()
    actions.perform()


def texts(driver: Any, selector: str) -> list[str]:
    return list(
        driver.execute_script(
            "return Array.from(document.querySelectorAll(arguments[0]))"
            ".map(function (e) { return e.textContent; })",
            selector,
        )
    )


@pytest.fixture(scope="module")
def workspace_page(autoprice: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    page = tmp_path_factory.mktemp("page") / "report.html"
    write_report(str(autoprice), "--repo", str(autoprice.parent / "repo"), "-o", str(page))
    return page


def test_workspace_report_draws_the_graph_and_a_click_shows_upstream(
    chrome: Any, autoprice: Path, workspace_page: Path
) -> None:
    expected = node_count(autoprice)
    assert open_page(chrome, workspace_page) == expected
    assert len(texts(chrome, "#node-list li")) == expected
    click_node(chrome, "model", "Trained_model")
    wait_for(lambda: texts(chrome, "#panel-upstream li"), "the side panel after a click")
    assert texts(chrome, "#panel .sel-title") == ["Trained_model"]
    upstream = " ".join(texts(chrome, "#panel-upstream li"))
    # The model derives from the step that trained it and, through the pipeline, the raw data.
    assert "train_generic_model" in upstream
    assert "Automobile_price_data_(Raw)" in upstream
    assert "score_generic_module" in " ".join(texts(chrome, "#panel-downstream li"))
    files = texts(chrome, "#panel-files li")
    assert any(f.endswith("Trained_model/data.ilearner") for f in files)
    # Designer pipeline diagram, audit findings with remediation, history of both snapshots.
    assert len(texts(chrome, "svg.pipeline g.box")) == 8  # 7 steps and the raw data input
    assert any("AMLP-HYG-005" in t for t in texts(chrome, "#audit .finding"))
    assert texts(chrome, "#audit .finding.fail details summary")[0] == "Remediation"
    history = texts(chrome, "#history tbody tr")
    assert len(history) == 2
    assert "+0 -0 ~1" in history[0]  # the newest first: one file changed
    no_network_and_no_errors(chrome)
    shot = screenshot(chrome, "report-workspace.png")
    assert shot.stat().st_size > 20_000


def test_search_finds_and_selects_a_node(chrome: Any, workspace_page: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    open_page(chrome, workspace_page)
    box = chrome.find_element(By.ID, "graph-search")
    box.send_keys("split_d")
    wait_for(lambda: texts(chrome, "#graph-status") == ["1 match"], "the search status")
    box.send_keys(Keys.ENTER)
    wait_for(lambda: texts(chrome, "#panel .sel-title") == ["split_data"], "the search selection")
    downstream = " ".join(texts(chrome, "#panel-downstream li"))
    assert "Results_dataset1" in downstream and "Results_dataset2" in downstream


def test_snapshot_report_shows_the_recorded_lineage_and_history(
    chrome: Any, autoprice: Path, tmp_path: Path
) -> None:
    repo = autoprice.parent / "repo"
    first, _second = (autoprice.parent / "ids.txt").read_text().split()
    page = tmp_path / "snapshot.html"
    write_report(f"{repo}@{first[:12]}", "-o", str(page))
    assert open_page(chrome, page) == node_count(autoprice)
    history = texts(chrome, "#history tbody tr")
    assert len(history) == 2
    assert history[1].startswith("▶ " + first[:12])  # the reported snapshot is marked
    assert "not a snapshot" in " ".join(texts(chrome, "#audit .note"))
    assert any(r.startswith("model") for r in texts(chrome, "#inventory tbody tr"))
    click_node(chrome, "step_run", "split_data")
    wait_for(lambda: texts(chrome, "#panel-files li"), "the snapshot's files of the step")
    no_network_and_no_errors(chrome)
    screenshot(chrome, "report-snapshot.png")


# -- hostile names -----------------------------------------------------------------------------

BLOBSTORE = "azureml-blobstore-bfe051f9-e8f5-424e-a59f-174a92b7aa97"
OUTPUT = "azureml/d3cfccaf-c844-452a-b732-2dcb56ec623a/Results_dataset1"  # split_data's output
IMG = '<img src=x onerror="window.__pwned=1">'
SCRIPT = '"><script>window.__pwned=2</script>'  # holds a "/": a folder in a local copy
CONTROLS = "\x1b[31mred\x1b]0;title\x07\x7f\x9b\u202etxt.exe"
SHOWN_CONTROLS = "\\x1b[31mred\\x1b]0;title\\x07\\x7f\\x9b\\u202etxt.exe"
RUN_ID = "<svg onload=window.__pwned=3>"  # a run folder dcid.<RUN_ID> holding a model
MLMODEL = (
    Path(__file__).resolve().parents[2] / "fixtures" / "workspaces" / "messy" / "azureml"
    / "ExperimentRun" / "dcid.5457b928-888f-4d08-9555-11c99e4d851a" / "model" / "MLmodel"
)  # fmt: skip
WORKSPACE = "ws'\"&amp;<q onmouseover=x"  # workspace.yaml refuses a "<…>" placeholder


def _long_name() -> str:
    """A blob name of exactly 1,024 characters below the output folder."""
    left = 1024 - len(OUTPUT) - 1
    segments = []
    while left > 200:  # 200-character folders (a local file name holds at most 255 bytes)
        segments.append("L" * 200)
        left -= 201
    segments.append("L" * left)
    return "/".join(segments)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("hostile") / "ws"
    shutil.copytree(FIXTURE, ws)
    descriptor = ws / "workspace.yaml"
    text = descriptor.read_text(encoding="utf-8")
    lines = [
        f"workspace: {json.dumps(WORKSPACE)}" if ln.startswith("workspace:") else ln
        for ln in text.splitlines()
    ]
    descriptor.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = ws / BLOBSTORE / OUTPUT
    for name in (IMG, SCRIPT, CONTROLS, _long_name()):
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"hostile name test\n")
    model = ws / "azureml" / "ExperimentRun" / f"dcid.{RUN_ID}" / "model"
    model.mkdir(parents=True)
    shutil.copy(MLMODEL, model / "MLmodel")
    return ws


def test_hostile_names_cannot_inject_markup_or_script(
    chrome: Any, hostile: Path, tmp_path: Path
) -> None:
    page = tmp_path / "hostile.html"
    write_report(str(hostile), "-o", str(page))
    raw = page.read_text(encoding="utf-8")
    # Not one hostile name reaches the file as markup, nor any raw control character.
    for bad in ("<img src=x", "<script>window", "<svg onload", "<q onm", "\x1b", "\u202e"):
        assert bad not in raw
    assert raw.count("<script") == 3  # the data, Cytoscape.js, the page script

    open_page(chrome, page)
    assert chrome.execute_script("return window.__pwned === undefined")
    assert chrome.execute_script("return document.querySelectorAll('img').length") == 0
    assert chrome.execute_script("return document.scripts.length") == 3
    header = " ".join(texts(chrome, "header .loc b"))
    assert WORKSPACE in header  # shown as the text it is

    # The run with a markup name is a node: its label is text in the list, the panel, the graph.
    buttons = texts(chrome, "#node-list button")
    assert RUN_ID in buttons
    chrome.execute_script(
        "var name = arguments[0];"
        "Array.from(document.querySelectorAll('#node-list button'))"
        ".filter(function (b) { return b.textContent === name; })[0].click();",
        RUN_ID,
    )
    assert texts(chrome, "#panel .sel-title") == [RUN_ID]

    # The output holding the hostile blobs lists them, whole, as text.
    chrome.execute_script(
        "Array.from(document.querySelectorAll('#node-list button'))"
        ".filter(function (b) { return b.textContent === 'Results_dataset1'; })[0].click();"
    )
    files = texts(chrome, "#panel-files li")
    prefix = f"{BLOBSTORE}/{OUTPUT}/"
    assert prefix + IMG in files
    assert prefix + SCRIPT in files
    assert prefix + SHOWN_CONTROLS in files  # control characters made visible
    assert prefix + _long_name() in files and len(_long_name()) + len(OUTPUT) + 1 == 1024
    assert chrome.execute_script("return window.__pwned === undefined")
    assert chrome.execute_script("return document.querySelectorAll('img, iframe').length") == 0
    no_network_and_no_errors(chrome)
    screenshot(chrome, "report-hostile.png")
