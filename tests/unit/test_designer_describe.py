"""A designer pipeline as a document a person can follow (issue 20, item 3)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from helpers.walkfacts import scanned

from amlport.lineage.designer import (
    NotAPipeline,
    describe_pipeline,
    designer_pipelines,
    find_pipeline,
    to_markdown,
)
from amlport.model.inventory import InputRef, Inventory, Loc, Output, Run
from amlport.model.workspace import WorkspaceDescriptor
from amlport.walk.designer import column_summary, decode_parameter, display_name, modules

PARENT = "a186e29d-388b-46bb-b111-726e328be005"
SEVEN = [
    "Select Columns in Dataset",
    "Clean Missing Data",
    "Split Data",
    "Linear Regression",
    "Train Model",
    "Score Model",
    "Evaluate Model",
]


def _doc() -> dict[str, Any]:
    inv, _ = scanned("designer-autoprice")
    return describe_pipeline(inv, find_pipeline(inv, PARENT))


def _settings(step: dict[str, Any]) -> dict[str, Any]:
    return {p["label"]: p for p in step["parameters"]}


def test_designer_autoprice_reads_as_the_seven_studio_modules() -> None:
    doc = _doc()
    assert [s["name"] for s in doc["steps"]] == SEVEN
    select, clean, split, linreg, train, score, evaluate = doc["steps"]
    col = _settings(select)["Select columns"]
    assert col["kind"] == "column_selector"
    assert col["summary"] == "all columns except column normalized-losses"
    assert col["rules"][1] == {
        "exclude": True,
        "ruleType": "ColumnNames",
        "columns": ["normalized-losses"],
    }
    mode = _settings(clean)["Cleaning mode"]
    assert (mode["value"], mode["raw"]) == ("Remove entire row", "%22Remove+entire+row%22")
    assert _settings(clean)["Columns to be cleaned"]["summary"] == "columns horsepower, price"
    assert _settings(split)["Fraction of rows in the first output dataset"]["value"] == 0.7
    assert _settings(split)["Randomized split"]["value"] is True
    assert _settings(linreg)["Solution method"]["value"] == "Ordinary Least Squares"
    assert _settings(train)["Label column"]["summary"] == "column price"
    assert [i["from"] for i in train["inputs"]] == [
        {"step": "4. Linear Regression", "port": "Untrained_model"},
        {"step": "3. Split Data", "port": "Results_dataset1"},
    ]
    # every output port, consumed or not
    assert [o["port"] for o in clean["outputs"]] == ["Cleaned_dataset", "Cleaning_transformation"]
    assert clean["outputs"][1]["consumed_by"] == []
    assert evaluate["outputs"][0]["port"] == "Evaluation_results"
    assert score["outputs"][0]["consumed_by"] == ["7. Evaluate Model (Scored_dataset)"]
    [dataset] = doc["datasets"]
    assert dataset["name"] == "Automobile price data (Raw)"
    assert dataset["read_by"] == ["1. Select Columns in Dataset"]
    assert doc["facts"]["started"] == "2022-10-05T18:00:18Z" and doc["facts"]["steps"] == 7
    assert doc["facts"]["experiment"] is None
    assert "the experiment" in doc["storage_cannot_show"]


def test_designer_autoprice_markdown_top_to_bottom() -> None:
    text = to_markdown(_doc())
    headings = re.findall(r"^### \d+\. (.+)$", text, flags=re.M)
    assert headings == SEVEN
    assert "| Cleaning mode | Remove entire row | `%22Remove+entire+row%22` |" in text
    assert "- Cleaning_transformation (TransformationDirectory) → not consumed" in text
    assert "```mermaid\nflowchart TD\n" in text
    assert '  s4 -->|"Untrained_model → Untrained_model"| s5' in text
    assert text.index("## What storage cannot show") > text.index("```mermaid")


def test_designer_find_pipeline_by_prefix_and_refusals() -> None:
    inv, _ = scanned("designer-history")
    runs = designer_pipelines(inv)
    assert len(runs) == 4 and runs[0].started.startswith("2021-")  # type: ignore[union-attr]
    assert find_pipeline(inv, runs[0].run_id[:8]) is runs[0]
    with pytest.raises(NotAPipeline):
        find_pipeline(inv, "")
    with pytest.raises(NotAPipeline):
        find_pipeline(inv, "nope")


def test_designer_wave_description_lists_all_24_steps() -> None:
    inv, _ = scanned("designer-history")
    wave = next(r for r in designer_pipelines(inv) if len(r.children) == 24)
    doc = describe_pipeline(inv, wave)
    names = [s["name"] for s in doc["steps"]]
    assert names.count("Train Model") == 6 and names.count("Evaluate Model") == 3
    pos = {n: i for i, n in enumerate(names)}
    assert pos["Split Data"] < names.index("Train Model")
    off = [o for s in doc["steps"] for o in s["outputs"] if not o["in_this_copy"]]
    assert len(off) == 1 and off[0]["location"].startswith("designer_models/")


# --------------------------------------------------------------------------- the pieces


@pytest.mark.parametrize(
    ("raw", "value", "kind"),
    [
        ("%22Remove+entire+row%22", "Remove entire row", "text"),
        ("True", True, "boolean"),
        ("0.001", 0.001, "number"),
        ("42", 42, "number"),
        ("nan", "nan", "text"),
        ("%5B1%2C2%5D", [1, 2], "json"),
        ("%7Bbroken", "{broken", "text"),
        ("%5B" * 5000 + "%5D" * 5000, "[" * 5000 + "]" * 5000, "text"),  # nesting bomb
        ("%00%1B%5B31m", "\x00\x1b[31m", "text"),
    ],
)
def test_designer_parameter_decoding(raw: str, value: object, kind: str) -> None:
    p = decode_parameter("k", raw)
    assert (p.value, p.kind, p.raw) == (value, kind, raw)


def test_designer_column_selector_rule_kinds() -> None:
    rules = (
        {"exclude": False, "ruleType": "ColumnTypes", "columnTypes": ["Numeric"]},
        {"exclude": True, "ruleType": "ColumnIndexes", "columns": "1-3"},
    )
    assert column_summary(rules) == "columns of type Numeric except column indexes 1-3"
    assert column_summary(()) == "no columns"


def test_designer_module_table_and_unknown_modules() -> None:
    table = modules()
    assert len(table) >= 16 and all(
        m.path.startswith("azureml.studio.modules.") for m in table.values()
    )
    assert display_name(next(iter(table))) == next(iter(table.values())).name
    assert display_name("my_company.custom.module") == "my_company.custom.module"


def _hostile_inventory() -> Inventory:
    inv = Inventory(source=WorkspaceDescriptor(account="a", blobstore_container="b"))
    evil = "x|y]<script>`\n# ![i](http://e)"
    parent = Run("p", kind="pipeline_run", children=["s1", "s2"])
    s1 = Run("s1", kind="step_run", parent_id="p", module="azureml.studio.evil" + "a" * 1024)
    s2 = Run(
        "s2",
        kind="step_run",
        parent_id="p",
        module="azureml.studio.modules.ml.train.train_generic_model.train_generic_model",
        parameters={"label-column": "%3Cscript%3E%7C"},
    )
    out = Output(Loc("ds", f"azureml/s1/{evil}"), "s1", evil, format="files")
    s2.inputs = [InputRef(out.loc, evil)]
    inv.runs = {"p": parent, "s1": s1, "s2": s2}
    inv.outputs = {out.loc: out}
    return inv


def test_designer_markdown_escapes_hostile_names() -> None:
    inv = _hostile_inventory()
    doc = describe_pipeline(inv, inv.runs["p"])
    text = to_markdown(doc)
    assert not re.search(r"(?<!\\)<script", text) and not re.search(r"(?<!\\)\]\(http", text)
    assert "port x|y" not in text and "port e)" not in text  # the producer port, whole
    for row in (x for x in text.splitlines() if x.startswith("| ") and "script" in x):
        assert len(re.findall(r"(?<!\\)\|", row)) == 4  # three cells, nothing broke out
    mermaid = text.split("```mermaid", 1)[1].split("```", 1)[0]
    assert "<" not in mermaid and "\n# " not in mermaid
    for edge in (x for x in mermaid.splitlines() if "-->" in x):
        assert edge.count("|") == 2
