"""Log lines from the storage layout reference (§2.2) and what the walker learns from them."""

from __future__ import annotations

from amlport.walk import logs


def test_executionlogs_children_with_node_ids() -> None:
    text = (
        "[2022-07-22 11:45:38Z] Submitting 2 runs, first five are: "
        "1ee5f43f:8cf2e387-e7ec-44cc-9615-2108891153f7,"
        "7d81aeeb:c8b837a9-1f79-4971-aae3-3191b29b42e8\n"
        "[2022-07-22 11:47:02Z] Completing processing run id "
        "c8b837a9-1f79-4971-aae3-3191b29b42e8.\n"
    )
    facts = logs.read_log(text)
    assert facts.children == [
        ("1ee5f43f", "8cf2e387-e7ec-44cc-9615-2108891153f7"),
        ("7d81aeeb", "c8b837a9-1f79-4971-aae3-3191b29b42e8"),
    ]


def test_55_mount_line() -> None:
    line = (
        "2021/05/22 15:06:35 Mounting azureml-blobstore-6e64c585-4845-4356-b1e0-a28ca62f252a "
        "container from ddsmleast9411768689 account at /mnt/batch/tasks/shared/LS_root/jobs/"
        "dds-ml-east/azureml/fastai-custom-image_1621695915_a4bb441e/mounts/workspaceblobstore"
    )
    facts = logs.read_log(line)
    assert facts.mounts == [
        (
            "azureml-blobstore-6e64c585-4845-4356-b1e0-a28ca62f252a",
            "ddsmleast9411768689",
            "workspaceblobstore",
        )
    ]


def test_data_capability_uri_with_input_port() -> None:
    line = (
        "WARN  06:17:47  Failed to mount URI azureml://subscriptions/93044a08-0000/resourcegroups/"
        "rg/workspaces/ws/datastores/mlops_blob/paths/azureml/ddc39112-d368-452b-88c2-c087c7063dd0"
        "/champion_model/ to /mnt/azureml/cr/j/f91687126d3744229274c6ecbe85b820/cap/"
        "data-capability/wd/INPUT_phaseb_champion due to exception of type ExecutionError"
    )
    facts = logs.read_log(line)
    assert facts.locations == [
        (
            "mlops_blob",
            "azureml/ddc39112-d368-452b-88c2-c087c7063dd0/champion_model",
            "phaseb_champion",
        )
    ]


def test_classic_command_line_ports_module_and_parameters() -> None:
    mount = "/mnt/batch/tasks/shared/LS_root/jobs/ws/azureml/r2/mounts/workspaceblobstore"
    line = (
        "[2021-05-05T06:41:42.237729] Command=python -m azureml.studio.modulehost.module_invoker "
        "--module-name=azureml.studio.modules.datatransform.split_data --fraction=0.7 "
        f"--dataset={mount}/azureml/r1/Results_dataset --results-dataset1={mount}/azureml/r2/Out1"
    )
    facts = logs.read_log(line)
    assert facts.module == "azureml.studio.modules.datatransform.split_data"
    assert facts.parameters == {"fraction": "0.7"}
    assert ("workspaceblobstore", "azureml/r1/Results_dataset", "dataset") in facts.locations
    assert ("workspaceblobstore", "azureml/r2/Out1", "results-dataset1") in facts.locations


def test_lineage_log_selection() -> None:
    assert logs.is_lineage_log("logs/azureml/executionlogs.txt")
    assert logs.is_lineage_log("azureml-logs/55_azureml-execution-tvmps_ab_d.txt")
    assert logs.is_lineage_log("azureml-logs/70_driver_log_0.txt")
    assert logs.is_lineage_log("system_logs/data_capability/data-capability.log")
    assert not logs.is_lineage_log("user_logs/std_log.txt")


def _lines_of_the_fixtures() -> list[str]:
    """Every line of every lineage log of the checked-in workspaces (real forms)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "fixtures" / "workspaces"
    from amlport.walk.classify import classify_artifact

    lines: list[str] = []
    for container in sorted(root.glob("*/azureml")):
        for path in sorted(container.glob("ExperimentRun/*/**/*")):
            ap = classify_artifact(path.relative_to(container).as_posix())
            if path.is_file() and ap is not None and logs.is_lineage_log(ap.rest):
                lines += path.read_text("utf-8", "replace").splitlines()
    return sorted(set(lines))


_REAL = _lines_of_the_fixtures()
_PIECES = [
    "Submitting 1 runs, first five are: ", "Completing processing run id ", "Job finished",
    ", job RunId is ", "Mounting ", " container from ", " account at ", "--module-name=",
    "--port=", "$AZURE_ML_INPUT_", "${AZURE_ML_OUTPUT_", "$AZUREML_DATAREFERENCE_",
    "parent_run_id", "azureml.pipelineRunId", "AZUREML_ROOT_RUN_ID", "moduleNodeId",
    "azureml.nodeid", "azureml.reusedrunid", "azureml.isreused", "AZUREML.ISREUSED",
    "Experiment: ", "Run target: ", "/wd/INPUT_", '"environment_names": ["', "URI ",
    "azureml://datastores/ds/paths/p", "AZUREML://datastores/ds/paths/p", "azuremldatastore://",
    "wasbs://c@a.blob.core.windows.net/p", "/mnt/batch/tasks/shared/LS_root/jobs/w/azureml/",
    "/scratch/azureml/cr/j/x/", "mlflow-art\u0131facts:/x", "\u017f", ": ", "=", '"', "'", " ",
    "0123abcd", "run-1", "\n", "\r\n", "\x0b", "\u2028", "[2022-07-22 11:45:38Z] ",
    # the literals each line is checked for before a search (walk/logs.py, ``gated``)
    "URI azureml://datastores/ds/paths/p to /mnt/x", "azuremldatareference://ds/p",
    '"environment_names": ["in"]', "--in=", "--", "Eligible to reuse a previous run's output",
    "AZUREML.ISREUSED: true", "\u212a", "\u0130", "parent_run_id: run-2",
]  # fmt: skip


def test_the_expressions_skipped_for_a_log_change_no_fact() -> None:
    """``read_log`` skips, on every line, each expression whose substrings the whole log
    lacks: the facts are those of searching every expression on every line, for every
    real log line of the fixtures and for mixtures of the forms the expressions look for."""
    import random

    def facts(text: str, on: frozenset[str] | None) -> object:
        return logs.read_log(text, on).__dict__

    assert _REAL  # the fixtures have lineage logs
    rnd = random.Random(18)
    texts = ["\n".join(_REAL[i : i + 40]) for i in range(0, len(_REAL), 40)]
    texts += ["".join(rnd.choice(_PIECES + _REAL[:50]) for _ in range(12)) for _ in range(3000)]
    for text in texts:
        assert facts(text, None) == facts(text, logs.ALL_GATES), text


def _huge_lines() -> list[str]:
    """Single lines of a megabyte: forms far from the line's start, after many ``--``, after
    a folded character, and none at all."""
    uri = "azureml://datastores/workspaceblobstore/paths/azureml/abc/out/"
    filler = "x" * (1 << 20)
    return [
        filler + " --input=" + uri,
        "--a " * (1 << 18) + "--port=" + uri,
        filler + " URI " + uri + " to /mnt/x",
        filler + " azuremldatastore://ds/p " + "\u212a" + " parent_run_id=run-1",
        "\u017f" + filler + " AZUREML_ROOT_RUN_ID=run-9 moduleNodeId: 0123abcd",
        filler + ' "environment_names": ["in"] /wd/INPUT_in ' + uri,
        filler,
    ]


def test_huge_single_lines_give_the_facts_of_every_expression() -> None:
    for line in _huge_lines():
        for text in (line, line + "\n" + _REAL[0]):
            assert logs.read_log(text).__dict__ == logs.read_log(text, logs.ALL_GATES).__dict__
    facts = logs.read_log(_huge_lines()[1])
    assert facts.locations == [("workspaceblobstore", "azureml/abc/out", "port")]
