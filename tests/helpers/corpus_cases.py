"""The bad-input corpus: each case is a small workspace made by a generator function (nothing
large is checked in), with the exit codes and the message that ``scan`` and ``export`` must
give. ``test_corpus.py`` runs every case; the table is also the documentation.

| case | scan | says | export | says |
|---|---|---|---|---|
| malformed_pointer_json | 1 | invalid JSON at line 1 | 1 | rewritten as plain text |
| truncated_pointer_with_sas | 1 | invalid JSON at line 1 | 1 | rewritten as plain text |
| invalid_mlmodel_yaml | 1 | invalid YAML at line 1 | 1 | rewritten as plain text |
| yaml_alias_bomb | 1 | aliases expand to more than 100000 | 1 | alias bomb |
| yaml_doubling_chain | 1 | aliases expand to more than 100000 | 1 | alias bomb |
| escaped_quote_nested_pointer | 1 | nested deeper than 64 levels | 1 | nested deeper than 64 |
| deeply_nested_pointer_json | 1 | nested deeper than 64 levels | 1 | nested deeper than 64 |
| deeply_nested_json_artifact | 0 | | 0 | |
| non_utf8_text | 1 | not valid UTF-8; read as Latin-1 | 0 | |
| odd_blob_names | 0 | | 0 | |
| symlinks_out_of_the_workspace | 0 | | 0 | |
| special_files (FIFO, socket) | 0 | | 0 | |
| empty_files | 1 | MLmodel without a 'flavors' mapping | 0 | |

The 100 MB single-line log is generated at test time (``test_corpus.py``), never checked in.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass

from helpers.data import long_name as long_name
from helpers.rel_workspace import BLOBSTORE, Workspace

SIG = "c3VwZXJzZWNyZXRzaWduYXR1cmV2YWx1ZTEyMzQ1Ng%3D%3D"  # a fake SAS signature


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Workspace], None]
    scan_code: int
    scan_says: str  # in a finding of ``scan --json`` ("" when the scan is clean)
    export_code: int
    export_says: str = ""  # in a warning of ``export --json``
    never_exported: tuple[str, ...] = ()  # strings no exported byte may contain


def malformed_pointer_json(ws: Workspace) -> None:
    ws.put_run_file("bad_ptr", "Trained_model", f'{{"Container": "{BLOBSTORE}", "RelativePath": "a')


def truncated_pointer_with_sas(ws: Workspace) -> None:
    ws.put_run_file(
        "cut_ptr",
        "Trained_model",
        f'{{"Container":"{BLOBSTORE}","SasToken":"sv=2021-08-06&sp=rl&sig={SIG}","Uri":"wasbs://',
    )


def invalid_mlmodel_yaml(ws: Workspace) -> None:
    ws.put_run_file("bad_mlmodel", "model/MLmodel", "flavors: {python_function: : :}\nrun_id: [\n")


def yaml_alias_bomb(ws: Workspace) -> None:
    """Billion laughs: 9 levels of 9 aliases would expand to 9**9 strings."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(8):
        prev, cur = chr(97 + i), chr(98 + i)
        lines.append(f"{cur}: &{cur} [{','.join([f'*{prev}'] * 9)}]")
    ws.put_run_file("bomb", "outputs/environment.yml", "\n".join(lines) + "\n")


def yaml_doubling_chain(ws: Workspace) -> None:
    """Two aliases a level (under the old 64-alias limit): 2**26 nodes if expanded."""
    lines = ["x0: &a0 [lol]"] + [f"x{i}: &a{i} [*a{i - 1}, *a{i - 1}]" for i in range(1, 26)]
    ws.put_run_file("chain", "outputs/environment.yml", "\n".join(lines) + "\n")


def escaped_quote_nested_pointer(ws: Workspace) -> None:
    """An escaped quote before deep nesting once hid it from the nesting check."""
    text = '{"RelativePath": "x\\"' + "]" * 3000 + '", "AmlDataStoreName": '
    ws.put_run_file("esc_ptr", "Esc_port", text + "[" * 3000 + "]" * 3000 + "}")


def deeply_nested_pointer_json(ws: Workspace) -> None:
    ws.put_run_file("deep_ptr", "Deep_port", '{"RelativePath": ' + "[" * 20000 + "]" * 20000 + "}")


def deeply_nested_json_artifact(ws: Workspace) -> None:
    ws.put_run_file(
        "deep_json", "outputs/metrics.json", '{"a": ' + "[" * 200000 + "]" * 200000 + "}"
    )


def non_utf8_text(ws: Workspace) -> None:
    ws.put_run_file("latin1", "user_logs/std_log.txt", b"Temp\xe9rature 25\xb0C \x80\x81\xfe\xff\n")
    ws.put_run_file("latin1", "outputs/conda.yml", b"name: caf\xe9\ndependencies: [python=3.10]\n")


ODD_NAMES = (
    "100% done.txt",
    "%41%42 not decoded.txt",
    "naïve café/ünïcödé ☃ 日本語.txt",
    "with  two  spaces /trailing space .txt",
    "query?and#hash&amp+plus=eq.txt",
    "a..b/..dots../x.txt",
)


def odd_blob_names(ws: Workspace) -> None:
    for i, name in enumerate(ODD_NAMES):
        ws.put_run_file("names", f"outputs/{name}", f"file {i}\n")
    prefix = f"{ws.artifacts.name}/ExperimentRun/dcid.names/outputs/"
    ws.put(long_name(prefix), "the longest name Azure allows\n")


def symlinks_out_of_the_workspace(ws: Workspace) -> None:
    outside = ws.root.parent / f"{ws.root.name}-outside"
    outside.mkdir(exist_ok=True)
    (outside / "secret.txt").write_text(f"AccountKey={SIG}\n", encoding="utf-8")
    run = ws.run("links")
    (run / "outputs").mkdir(parents=True, exist_ok=True)
    (run / "outputs" / "real.txt").write_text("real\n", encoding="utf-8")
    (run / "outputs" / "to_secret.txt").symlink_to(outside / "secret.txt")
    (run / "outputs" / "to_dir").symlink_to(outside, target_is_directory=True)
    (run / "outputs" / "to_root").symlink_to("/", target_is_directory=True)


def special_files(ws: Workspace) -> None:
    """A FIFO (reading it would block forever) and a socket: not blobs, never read."""
    run = ws.run("special") / "outputs"
    run.mkdir(parents=True, exist_ok=True)
    (run / "real.txt").write_text("real\n", encoding="utf-8")
    os.mkfifo(run / "pipe.log")
    cwd = os.getcwd()
    os.chdir(run)  # AF_UNIX paths are limited to ~100 bytes: bind a relative one
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("sock.yml")
    finally:
        os.chdir(cwd)


def empty_files(ws: Workspace) -> None:
    ws.put_run_file("empty", "model/MLmodel", b"")
    ws.put_run_file("empty", "Empty_port", b"")
    ws.put_run_file("empty", "outputs/spec.yml", b"   \n")
    ws.put_run_file("empty", "user_logs/std_log.txt", b"")


CASES = (
    Case("malformed_pointer_json", malformed_pointer_json, 1, "invalid JSON at line 1", 1,
         "rewritten as plain text"),
    Case("truncated_pointer_with_sas", truncated_pointer_with_sas, 1, "invalid JSON at line 1", 1,
         "rewritten as plain text", never_exported=(SIG,)),
    Case("invalid_mlmodel_yaml", invalid_mlmodel_yaml, 1, "invalid YAML at line 1", 1,
         "rewritten as plain text"),
    Case("yaml_alias_bomb", yaml_alias_bomb, 1, "aliases expand to more than 100000", 1,
         "alias bomb"),
    Case("yaml_doubling_chain", yaml_doubling_chain, 1, "aliases expand to more than 100000", 1,
         "alias bomb"),
    Case("escaped_quote_nested_pointer", escaped_quote_nested_pointer, 1,
         "nested deeper than 64 levels", 1, "nested deeper than 64"),
    Case("deeply_nested_pointer_json", deeply_nested_pointer_json, 1,
         "nested deeper than 64 levels", 1, "nested deeper than 64"),
    Case("deeply_nested_json_artifact", deeply_nested_json_artifact, 0, "", 0),
    Case("non_utf8_text", non_utf8_text, 1, "not valid UTF-8; read as Latin-1", 0),
    Case("odd_blob_names", odd_blob_names, 0, "", 0),
    Case("symlinks_out_of_the_workspace", symlinks_out_of_the_workspace, 0, "", 0,
         never_exported=(SIG,)),
    Case("special_files", special_files, 0, "", 0),
    Case("empty_files", empty_files, 1, "MLmodel without a 'flavors' mapping", 0),
)  # fmt: skip
