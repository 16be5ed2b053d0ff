"""MLmodel ``signature`` (inputs, outputs, params): read through the bounded loader, checked
against mlflow's own reading, shown in scan, lineage and the export manifest; hostile
signatures give a finding, never a crash. And an MLmodel without ``run_id`` inside
``ExperimentRun/dcid.<run>/`` is linked to that run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers.exportsink import PathSink

from amlport.lineage import build_graph
from amlport.model import findings as F
from amlport.model.inventory import Inventory, Loc
from amlport.storage.local import LocalSource
from amlport.walk import walk
from amlport.walk.parsers import MAX_SIGNATURE_ENTRIES, parse_mlmodel

mlflow_models = pytest.importorskip("mlflow.models")
mlflow_types = pytest.importorskip("mlflow.types")
mlflow_schema = pytest.importorskip("mlflow.types.schema")

REPO = Path(__file__).resolve().parents[2]
WS = REPO / "fixtures" / "workspaces"
CORPUS = REPO / "fixtures" / "corpus" / "azureml-examples"
RUN = "gentle_koala_6tq1mw8dx3"  # an sdk-bikeshare run
ART = "workspaceartifactstore"


def _mlflow_type(t: Any) -> str:
    """The text amlport gives a type, computed from mlflow's own objects."""
    if isinstance(t, mlflow_schema.Array):
        return f"array<{_mlflow_type(t.dtype)}>"
    if isinstance(t, mlflow_schema.Map):
        return f"map<string,{_mlflow_type(t.value_type)}>"
    if isinstance(t, mlflow_schema.Object):
        return f"object<{len(t.properties)} properties>"
    return str(t.name)


def _mlflow_entries(schema: Any) -> list[str]:
    out = []
    for spec in schema.inputs if hasattr(schema, "inputs") else schema.params:
        if isinstance(spec, mlflow_types.TensorSpec):
            text = f"tensor<{spec.type}>[{','.join(str(d) for d in spec.shape)}]"
        elif isinstance(spec, mlflow_types.ParamSpec):
            text = str(spec.dtype.name)
        else:
            text = _mlflow_type(spec.type)
        if spec.name is not None:
            text = f"{spec.name}: {text}"
        if getattr(spec, "required", True) is False:
            text += " (optional)"
        out.append(text)
    return out


def _mlflow_signature(mlmodel: Path) -> dict[str, list[str]]:
    sig = mlflow_models.Model.load(str(mlmodel)).signature
    parts = {"inputs": sig.inputs, "outputs": sig.outputs, "params": sig.params}
    return {k: _mlflow_entries(v) for k, v in parts.items() if v is not None}


def _ours(mlmodel: Path) -> dict[str, list[str]]:
    doc = parse_mlmodel(mlmodel.read_text(encoding="utf-8"), str(mlmodel))
    assert doc.signature is not None and not doc.signature.problems
    return doc.signature.to_dict()


def _written_by_mlflow(folder: Path) -> Path:
    """An MLmodel as mlflow 3 writes one with ``save_model`` (no run_id): a column, an
    optional array column, an object column, a tensor output and a parameter."""
    import numpy as np

    T, S = mlflow_types, mlflow_schema
    sig = mlflow_models.ModelSignature(
        inputs=T.Schema(
            [
                T.ColSpec("double", "tenure"),
                T.ColSpec(S.Array("string"), "tags", required=False),
                T.ColSpec(S.Object([S.Property("x", "long")]), "obj"),
            ]
        ),
        outputs=T.Schema([T.TensorSpec(np.dtype("float32"), (-1, 4))]),
        params=T.ParamSchema([T.ParamSpec("temperature", "float", 0.5)]),
    )
    model = mlflow_models.Model(signature=sig)
    model.add_flavor("python_function", loader_module="mlflow.sklearn", env={"conda": "conda.yaml"})
    folder.mkdir(parents=True, exist_ok=True)
    model.save(str(folder / "MLmodel"))
    return folder / "MLmodel"


def _real_mlmodels() -> list[Path]:
    found = sorted(CORPUS.rglob("MLmodel")) + sorted(WS.rglob("MLmodel"))
    return [p for p in found if "messy_i_mlmodel_invalid_yaml" not in str(p)]


@pytest.mark.parametrize("mlmodel", _real_mlmodels(), ids=lambda p: str(p.relative_to(REPO)))
def test_signature_reads_as_mlflow_reads_it(mlmodel: Path) -> None:
    assert _ours(mlmodel) == _mlflow_signature(mlmodel)


def test_signature_of_every_spec_kind_mlflow_writes(tmp_path: Path) -> None:
    mlmodel = _written_by_mlflow(tmp_path)
    ours = _ours(mlmodel)
    assert ours == _mlflow_signature(mlmodel)
    assert ours == {
        "inputs": ["tenure: double", "tags: array<string> (optional)", "obj: object<1 properties>"],
        "outputs": ["tensor<float32>[-1,4]"],
        "params": ["temperature: float"],
    }


# --- the workspace: scan, lineage, export attrs, the run edge ----------------------------------


def _workspace_with(tmp_path: Path, mlmodels: dict[str, bytes]) -> Path:
    """sdk-bikeshare plus MLmodel files at artifact-container paths."""
    root = tmp_path / "ws"
    shutil.copytree(WS / "sdk-bikeshare", root)
    for name, data in mlmodels.items():
        path = root / "azureml" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _model(inv: Inventory, folder: str) -> Any:
    return inv.models[Loc(ART, folder)]


def test_mlmodel_without_run_id_is_linked_to_its_dcid_folder(tmp_path: Path) -> None:
    written = _written_by_mlflow(tmp_path / "saved")
    text = written.read_text(encoding="utf-8")
    assert "run_id" not in text  # the real form: save_model leaves it out
    folder = f"ExperimentRun/dcid.{RUN}/outputs/saved_model"
    inv = walk(LocalSource(_workspace_with(tmp_path, {f"{folder}/MLmodel": text.encode()})))
    model = _model(inv, folder)
    assert model.run_id == RUN
    lg = build_graph(inv)
    edges = lg.g.get_edge_data(f"run:{RUN}", f"model:{ART}/{folder}")
    assert edges and any(d["kind"] == "logged_model" for d in edges.values())


def test_signature_in_scan_lineage_and_export_attrs(tmp_path: Path) -> None:
    from amlport.exporters.base import ExportContext, ExportItem
    from amlport.exporters.mlflow_model import MlflowModelExporter

    inv = walk(LocalSource(WS / "sdk-bikeshare"))
    folder = f"ExperimentRun/dcid.{RUN}/model"
    model = _model(inv, folder)
    expected = _mlflow_signature(WS / "sdk-bikeshare" / "azureml" / folder / "MLmodel")
    assert model.signature == expected
    row = next(m for m in inv.to_dict()["models"] if m["loc"] == f"{ART}/{folder}")
    assert row["signature"] == expected  # scan --json
    node = build_graph(inv).g.nodes[f"model:{ART}/{folder}"]
    assert node["signature_inputs"] == "; ".join(expected["inputs"])
    assert node["signature_outputs"] == "; ".join(expected["outputs"])

    ctx = ExportContext(inv, build_graph(inv), PathSink(), warn=lambda _: None)
    node_id = f"model:{ART}/{folder}"
    entry = MlflowModelExporter().export(ExportItem("model", node_id, "model"), ctx)
    assert entry.attrs["signature"] == expected


def test_scan_output_shows_the_signature() -> None:
    import io

    from amlport.cli.scan_view import render_scan
    from amlport.cli.terminal import SafeConsole

    buf = io.StringIO()
    console = SafeConsole(file=buf, width=400, color_system=None)
    inv = walk(LocalSource(WS / "sdk-bikeshare"))
    render_scan(console, inv, build_graph(inv), "sdk-bikeshare")
    line = next(x for x in buf.getvalue().splitlines() if f"dcid.{RUN}/model " in x)
    assert "inputs: " in line and " -> outputs: " in line


# --- hostile signatures ------------------------------------------------------------------------


def _mlmodel_text(signature: dict[str, Any]) -> bytes:
    import yaml

    doc = {
        "artifact_path": "model",
        "flavors": {"python_function": {"loader_module": "mlflow.sklearn", "env": "conda.yaml"}},
        "run_id": RUN,
        "signature": signature,
    }
    return yaml.safe_dump(doc, width=1 << 30).encode()


def _scan_one(tmp_path: Path, data: bytes) -> tuple[Inventory, str]:
    folder = f"ExperimentRun/dcid.{RUN}/hostile"
    inv = walk(LocalSource(_workspace_with(tmp_path, {f"{folder}/MLmodel": data})))
    return inv, folder


def _findings_for(inv: Inventory, folder: str) -> list[F.Finding]:
    return [f for f in inv.findings if f.path.endswith(f"{folder}/MLmodel")]


def test_deeply_nested_signature_is_a_finding_and_the_model_is_kept(tmp_path: Path) -> None:
    deep = "[" * 5000 + "]" * 5000
    inv, folder = _scan_one(
        tmp_path, _mlmodel_text({"inputs": deep, "outputs": '[{"type": "long"}]'})
    )
    model = _model(inv, folder)
    assert model.signature == {"outputs": ["long"]}
    (finding,) = _findings_for(inv, folder)
    assert finding.code == F.MALFORMED_FILE
    assert "signature inputs not read" in finding.message and "nested deeper" in finding.message


def test_a_huge_single_line_signature_is_summarised(tmp_path: Path) -> None:
    columns = [{"type": "double", "name": f"c{i}"} for i in range(100_000)]
    columns[0]["name"] = "n" * 1_000_000  # a 1 MB column name
    huge = json.dumps(columns)  # one line of about 4 MB (the parse limit is 8 MiB)
    inv, folder = _scan_one(tmp_path, _mlmodel_text({"inputs": huge}))
    signature = _model(inv, folder).signature
    assert signature is not None
    entries = signature["inputs"]
    assert len(entries) == MAX_SIGNATURE_ENTRIES + 1
    assert entries[-1] == f"… {100_000 - MAX_SIGNATURE_ENTRIES} more"
    assert max(len(e) for e in entries) <= 120 and entries[1] == "c1: double"
    assert not _findings_for(inv, folder)
    node = build_graph(inv).g.nodes[f"model:{ART}/{folder}"]
    assert len(node["signature_inputs"]) < 10_000


def test_signature_alias_bomb_is_refused_with_a_finding(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = "\n".join(lines) + "\nflavors: {python_function: {env: conda.yaml}}\n"
    bomb += "signature: {inputs: *a8}\n"
    inv, folder = _scan_one(tmp_path, bomb.encode())
    assert Loc(ART, folder) not in inv.models  # the document is refused before it is built
    (finding,) = _findings_for(inv, folder)
    assert finding.code == F.MALFORMED_FILE and "alias" in finding.message


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ({"inputs": "not json ["}, "invalid JSON"),
        ({"inputs": '{"type": "double"}'}, "not a list"),
        ("a string", "not a mapping"),
    ],
)
def test_malformed_signatures_are_findings(tmp_path: Path, signature: Any, reason: str) -> None:
    inv, folder = _scan_one(tmp_path, _mlmodel_text(signature))
    assert _model(inv, folder).run_id == RUN
    (finding,) = _findings_for(inv, folder)
    assert finding.code == F.MALFORMED_FILE and reason in finding.message


def test_hostile_names_in_a_signature_stay_data(tmp_path: Path) -> None:
    names = ["[bold]x[/]", "\x1b]0;title\x07", "../../etc", "é" * 1024]
    cols = json.dumps([{"type": "string", "name": n} for n in names])
    inv, folder = _scan_one(tmp_path, _mlmodel_text({"inputs": cols}))
    entries = _model(inv, folder).signature["inputs"]
    assert entries[:3] == [f"{n}: string" for n in names[:3]]
    assert entries[3].endswith("…") and len(entries[3]) == 120
