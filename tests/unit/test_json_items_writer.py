"""A ``--json`` document with an array written item by item (``common.JsonItems``, used by
``ls --json``) is byte for byte the document ``json.dumps`` writes of the same values, hostile
strings included, and is escaped for the terminal as the whole document is."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from amlport.cli import common
from amlport.plaintext import document_text

HOSTILE = [
    "[",
    "]",
    "..",
    "../../etc/passwd",
    "a/../b",
    "esc\x1b[31mred",
    "nul\x00 del\x7f c1\x9b",
    "tab\tnew\nline\rcr",
    "sep\u2028par\u2029bidi\u202e\u2066",
    'quote" back\\slash',
    "café ünïcödé 日本語 😀",
    "x" * 1024,
    "/".join(["d" * 200] * 5) + "/" + "é" * 24,
    "",
]


def _files(names: list[str]) -> list[dict[str, Any]]:
    return [
        {"path": f"files/store/{n}", "size": i * 1000, "digest": "sha256:" + "ab" * 32}
        for i, n in enumerate(names)
    ]


def _doc(files: Any) -> dict[str, Any]:
    return {
        "repository": "/tmp/r[e]po\x1b",
        "snapshot": "0" * 64,
        "created": "2026-12-07T10:00:00Z",
        "path": None,
        "files": files,
        "assets": [{"kind": "model", "name": "m]\u2028", "id": "x", "files": 2}],
        "nested": {"b": [1, {"c": []}], "a": {}, "empty": []},
        "schema": "amlport.ls/1",
        "exit_code": 0,
    }


@pytest.mark.parametrize("names", [HOSTILE, [], ["only one"]], ids=["hostile", "empty", "one"])
def test_streamed_text_is_what_json_dumps_writes(names: list[str]) -> None:
    whole = json.dumps(_doc(_files(names)), indent=2, sort_keys=True, ensure_ascii=False)
    streamed = "".join(common.json_chunks(_doc(common.JsonItems(iter(_files(names))))))
    assert streamed == whole


def test_an_empty_document_and_documents_without_items() -> None:
    assert "".join(common.json_chunks({})) == json.dumps({}, indent=2)
    doc = {"z": "\x1b", "a": [[], {}], "m": None}
    assert "".join(common.json_chunks(doc)) == json.dumps(
        doc, indent=2, sort_keys=True, ensure_ascii=False
    )


def test_write_json_streams_the_same_escaped_document_in_batches(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    names = HOSTILE * 40  # more than one batch
    expected = json.dumps(_doc(_files(names)), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    writes: list[str] = []

    class Sink(io.StringIO):
        def write(self, text: str) -> int:
            writes.append(text)
            return super().write(text)

    sink = Sink()
    monkeypatch.setattr("sys.stdout", sink)
    common.write_json(_doc(common.JsonItems(_files(names))), None)
    assert sink.getvalue() == document_text(expected, is_json=True)
    assert len(writes) > 1  # written as it goes, not as one text
    assert "\x1b" not in sink.getvalue() and "\u2028" not in sink.getvalue()
    assert json.loads(sink.getvalue())["files"] == _files(names)  # decodes to the same values
    out = tmp_path / "doc.json"
    common.write_json(_doc(common.JsonItems(_files(names))), out)
    assert out.read_text(encoding="utf-8") == expected  # an -o file: as write_json writes it
